"""A small GitHub REST client: retries, pagination, and a token that never shows.

Standard library only, so the privileged comment job installs nothing. The
token is redacted from everything printed, including what a server sends back.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from email.message import Message
from http.client import HTTPMessage
from typing import IO, Any

from pytest_energy.frozen import frozen
from pytest_energy.record_json import parse_json
from pytest_energy.report.escape import terminal_text

MAX_ATTEMPTS = 4
#: A rate limit that resets later than this is reported, not waited out: a job that
#: sleeps for most of an hour costs more than a missing comment.
MAX_WAIT_S = 120.0
TIMEOUT_S = 30.0
#: 100 pages of 100 items; bounds the walk if a server keeps sending rel="next".
MAX_PAGES = 100
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="([^"]*)"')
_RETRIED_STATUSES = frozenset({500, 502, 503, 504})
#: What http.client refuses in a request target (it raises InvalidURL on these).
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
#: A server message quoted in an error is cut to this many characters, after redaction.
MESSAGE_CHARS = 200


class GitHubError(Exception):
    """The GitHub API failed; the message is one line with the token redacted."""


class Redactor:
    """Replaces the token in any text that may be printed or raised."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __call__(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text


def _origin(url: str) -> tuple[str, str]:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # "Invalid IPv6 URL" in a Link header
        raise GitHubError("refusing a malformed URL from the server") from None
    return parts.scheme.lower(), parts.netloc.lower()


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects within the API host only.

    urllib copies the Authorization header onto every redirect, whatever the
    host; refusing cross-origin ones keeps the token from leaving the API.
    """

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if _origin(newurl) != _origin(req.full_url):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@frozen
class Response:
    """A decoded API answer: status, JSON data and the rel="next" page, if any."""

    status: int
    data: Any
    next_url: str | None


class RestClient:
    """A minimal GitHub REST client: JSON, retries, Link pagination, redaction.

    ``sleep`` and ``clock`` are injectable so retry behaviour is tested without
    waiting and without reading the wall clock.
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.redact = Redactor(token)
        self._sleep = sleep
        self._clock = clock
        self._max_attempts = max_attempts
        self._opener = urllib.request.build_opener(_SameOriginRedirects())

    def request(self, method: str, path_or_url: str, payload: Any = None) -> Response:
        """Send one request, retrying server errors and rate limits."""
        url = self._url(path_or_url)
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        where = f"{method} {urllib.parse.urlsplit(url).path}"
        for attempt in range(1, self._max_attempts + 1):
            request = urllib.request.Request(url, data=data, method=method)
            request.add_header("Accept", "application/vnd.github+json")
            request.add_header("X-GitHub-Api-Version", "2022-11-28")
            request.add_header("User-Agent", "pytest-energy")
            request.add_header("Authorization", f"Bearer {self._token}")
            if data is not None:
                request.add_header("Content-Type", "application/json")
            try:
                with self._opener.open(request, timeout=TIMEOUT_S) as answer:
                    status, headers, raw = answer.status, answer.headers, answer.read()
            except urllib.error.HTTPError as exc:
                status, headers = exc.code, exc.headers
                raw = _error_body(exc)
                wait = self._retry_wait(status, headers, attempt)
                if wait is None or attempt == self._max_attempts:
                    raise GitHubError(self._describe(where, status, headers, raw)) from None
                self._sleep(wait)
                continue
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                # Connection refused, reset or timed out, a garbled status line, an
                # answer cut short (IncompleteRead): all worth another try.
                if attempt == self._max_attempts:
                    raise GitHubError(
                        self.redact(f"{where} failed: {_transport_reason(exc)}")
                    ) from None
                self._sleep(self._backoff(attempt))
                continue
            return Response(status, self._decode(where, raw), self._next_link(headers))
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def paginate(self, path: str) -> Iterator[Any]:
        """Yield the items of a list endpoint, following Link rel="next" lazily."""
        url: str | None = path
        for _ in range(MAX_PAGES):
            if url is None:
                return
            answer = self.request("GET", url)
            if not isinstance(answer.data, list):
                raise GitHubError(f"GET {urllib.parse.urlsplit(url).path}: expected a list")
            yield from answer.data
            url = answer.next_url
        raise GitHubError(f"GET {urllib.parse.urlsplit(path).path}: over {MAX_PAGES} pages")

    def _url(self, path_or_url: str) -> str:
        if not path_or_url.startswith(("http://", "https://")):
            url = self.api_url + path_or_url
        # Pagination links come from the server; never send the token elsewhere.
        elif _origin(path_or_url) != _origin(self.api_url):
            raise GitHubError("refusing to follow a link to another host than --api-url")
        else:
            url = path_or_url
        if _URL_UNSAFE.search(url):
            # A Link header or an argument with a space or a control character:
            # http.client would raise InvalidURL deep inside the request.
            raise GitHubError(
                f"refusing the URL {terminal_text(self.redact(url))[:MESSAGE_CHARS]!r}: "
                "it holds a space or a control character"
            )
        return url

    @staticmethod
    def _backoff(attempt: int) -> float:
        return float(2 ** (attempt - 1))

    def _retry_wait(self, status: int, headers: Message, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when the failure is final."""
        if status in _RETRIED_STATUSES:
            return self._backoff(attempt)
        retry_after = headers.get("Retry-After")
        exhausted = headers.get("x-ratelimit-remaining") == "0"
        # A 403 without rate-limit headers is a permission error: retrying won't help.
        if status not in {403, 429} or (status == 403 and not (retry_after or exhausted)):
            return None
        wait = self._backoff(attempt)
        if retry_after and retry_after.strip().isdigit():
            wait = float(retry_after)
        elif exhausted:
            reset = headers.get("x-ratelimit-reset", "")
            if reset.strip().isdigit():
                wait = max(0.0, float(reset) - self._clock()) + 1.0
        return wait if wait <= MAX_WAIT_S else None

    def _describe(self, where: str, status: int, headers: Message, raw: bytes) -> str:
        message = ""
        try:
            decoded = parse_json(raw.decode("utf-8", "replace"))
        except ValueError:
            decoded = None
        if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
            message = decoded["message"]
        text = f"{where} failed: HTTP {status}"
        if message:
            # Redact before cutting: a cut through the token would leave most of it.
            text += f": {self.redact(' '.join(message.split()))[:MESSAGE_CHARS]}"
        if status in {403, 429} and headers.get("x-ratelimit-remaining") == "0":
            text += " (rate limit exhausted; retry later)"
        elif status in {401, 403, 404}:
            text += " (check the token's permissions: pull-requests: write)"
        return self.redact(text)

    def _decode(self, where: str, raw: bytes) -> Any:
        if not raw.strip():
            return None
        try:
            # Depth-limited: a proxy or a server could answer with anything.
            return parse_json(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise GitHubError(f"{where}: the answer is not JSON") from None

    @staticmethod
    def _next_link(headers: Message) -> str | None:
        for target, rels in _LINK.findall(headers.get("Link", "")):
            if "next" in rels.split():
                # Spaces inside the brackets are padding; any left inside the URL
                # are refused by ``_url`` with one line.
                return str(target).strip()
        return None


def _error_body(exc: urllib.error.HTTPError) -> bytes:
    """The body of an error answer; empty when it cannot be read in full."""
    try:
        return exc.read() if exc.fp is not None else b""
    except (OSError, http.client.HTTPException):
        return b""
    finally:
        exc.close()


def _transport_reason(exc: BaseException) -> str:
    """One line for a failure below HTTP: refused, timed out, cut short, garbled."""
    if isinstance(exc, http.client.IncompleteRead):
        return f"the answer was cut short ({len(exc.partial)} bytes read)"
    if isinstance(exc, http.client.BadStatusLine):
        return "the server sent a malformed status line"
    reason = getattr(exc, "reason", None) or exc
    text = " ".join(str(reason).split()) or type(reason).__name__
    return terminal_text(text)[:MESSAGE_CHARS]
