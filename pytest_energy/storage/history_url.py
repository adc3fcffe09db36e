"""A history server's URL as it may be shown: never with its password.

``--energy-history=postgresql://user:secret@host/db`` carries a password, and
every place that names the history (a terminal line, a notice in the results
file, the HTML report, an error from the driver, which may quote the DSN) must
show ``postgresql://user:***@host/db`` instead. :func:`redact` gives that form;
:func:`scrub` cleans any text that might contain the URL or its password.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["HIDDEN", "redact", "scrub"]

HIDDEN = "***"
#: Query keys libpq reads a secret from (``?password=...``, ``?sslpassword=...``).
_SECRET_KEYS = ("password", "sslpassword")
#: A URL of any scheme with a password in its user part, anywhere in a text.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]*@")
#: ``password=...`` in a libpq keyword string or a query string.
_KEYWORD = re.compile(r"(?P<key>\b(?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s&']+)", re.I)


def redact(url: str) -> str:
    """``url`` with its password, and any password in its query, replaced by ``***``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises here, not later while printing)
    except ValueError:
        return scrub(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = quote(unquote(parts.username or ""), safe="")
        netloc = f"{user}:{HIDDEN}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, HIDDEN if k.lower() in _SECRET_KEYS else v) for k, v in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub(text: str, url: str | None = None) -> str:
    """``text`` with every password hidden: ``url``'s own, and any URL's or keyword's.

    For messages of the database driver, which may quote the connection string
    in either form, or the password alone.
    """
    for secret in _secrets(url):
        text = text.replace(secret, HIDDEN)
    text = _USERINFO.sub(lambda m: f"{m['head']}:{HIDDEN}@", text)
    return _KEYWORD.sub(lambda m: f"{m['key']}{HIDDEN}", text)


def _secrets(url: str | None) -> list[str]:
    """The password of ``url`` in every spelling it may be quoted in, longest first."""
    if not url:
        return []
    found: set[str] = set()
    try:
        parts = urlsplit(url)
        if parts.password:
            found.update({parts.password, unquote(parts.password)})
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key.lower() in _SECRET_KEYS and value:
                found.update({value, quote(value, safe="")})
    except ValueError:
        pass
    # A one-letter password would hide every such letter: still hidden, if unreadable.
    return sorted((s for s in found if s), key=len, reverse=True)
