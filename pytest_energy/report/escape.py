"""Untrusted text made inert for each medium it is printed to: one place for every rule.

Test ids, parametrize values, family and variant names, hardware classes and
notices come from the code under test or from a results file anyone can write.
Each medium has its own way to be tricked, and its own escape:

* a terminal (:func:`terminal_text`): ANSI and OSC-8 sequences start with ESC
  (or the C1 CSI, U+009B), a newline starts a line a CI runner reads as a
  ``::error::`` workflow command, and bidi overrides reorder what follows them
  on screen ("Trojan Source", CVE-2021-42574) so a test id can display as another;
* a GitHub workflow command (:func:`workflow_data`, :func:`workflow_property`):
  ``%``, CR and LF, and in properties ``:`` and ``,``, as ``@actions/core`` does;
* Markdown rendered by GitHub (:func:`markdown_text`): inline syntax, HTML,
  table pipes, mentions, and GFM's autolinks;
* HTML (:func:`html_text`, :func:`html_json`): Jinja's autoescape handles the
  syntax; what is left are bidi overrides and control characters, which would
  reorder a tooltip or a label.

Every escape is visible and reversible by eye: ``\\x1b``, ``\\n``, ``\\u202e``.
The terminal, workflow-data and HTML escapes write no character they escape, so
text a lower layer already escaped passes through them unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "html_json",
    "html_text",
    "markdown_text",
    "terminal_text",
    "workflow_data",
    "workflow_property",
]

# The patterns are strings, compiled by ``re``'s own cache on first use: a terminal
# run needs only the terminal's, and compiling all eight at import cost ~1 ms of
# every ``--energy`` session's start-up. Every character the terminal and HTML patterns
# match is one ``str.isprintable`` refuses (tests/test_untrusted.py checks each), so
# printable text skips them: most runs print only such text and compile none (issue 16).

# Bidirectional formatting characters: the embeddings and overrides (U+202A-202E),
# the isolates (U+2066-2069), and the marks (U+200E, U+200F, U+061C).
_BIDI = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# C0 controls, DEL, C1 controls (U+009B is a one-character CSI on some terminals),
# and the Unicode line and paragraph separators, which some viewers break lines on.
_CONTROLS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"

_TERMINAL = rf"[{_CONTROLS}{_BIDI}]"
# A workflow command escapes CR and LF itself (%0D, %0A), so a newline in a test
# id still reads as one in the annotation; every other control is made visible.
_WORKFLOW = rf"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]"
# Tab, LF and CR are ordinary whitespace in HTML (a newline in a tooltip is a
# line break); the other controls are not allowed in an HTML document.
_HTML = rf"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]"
_JSON_RAW = rf"[\x7f-\x9f\u2028\u2029{_BIDI}]"
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


# -- terminals ------------------------------------------------------------------------


def terminal_text(text: str) -> str:
    """``text`` for a terminal or a CI log: one line, no escape sequences, no bidi.

    Control characters (newline, ESC, the C1 CSI, ...) and bidi controls become
    visible escapes, so a hardware class ``"x\\n::error::y"`` prints as
    ``x\\n::error::y`` on one line and a test id cannot colour, retitle or link
    the terminal.
    """
    if text.isprintable():  # the usual test id: nothing to escape, no pattern to compile
        return text
    return re.sub(_TERMINAL, _visible, text)


# -- GitHub workflow commands ---------------------------------------------------------


def workflow_data(value: str) -> str:
    """The message of a workflow command (``@actions/core``'s ``escapeData``).

    Other controls and bidi characters are made visible first: the runner's log
    renders ANSI sequences and GitHub's annotation view renders bidi overrides.
    """
    value = re.sub(_WORKFLOW, _visible, value)
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def workflow_property(value: str) -> str:
    """A property value of a workflow command (``file=``, ``title=``): ``:`` and ``,``
    would end it (``@actions/core``'s ``escapeProperty``)."""
    return workflow_data(value).replace(":", "%3A").replace(",", "%2C")


# -- Markdown (GitHub) ----------------------------------------------------------------

# CommonMark lets any ASCII punctuation be backslash-escaped; these are the ones
# that mean something inside a line (code, emphasis, links, cells, strikethrough,
# emoji shortcodes and URL autolinks (the ``:`` of ``http:``), math). Line-start
# syntax (#, -, +, 1.) cannot occur because untrusted text never starts a line.
_MARKDOWN_SPECIAL = r"[\\`*_\[\]|~:$]"
# ``<``, ``>`` and ``&`` become entities instead, which GitHub never turns into tags.
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# GFM links ``www.host`` and bare domains are linked by some renderers; a dot
# backslash-escaped before a letter ends the domain for the parser, while the
# page (and a copy of it) still reads ``example.com``. Decimal numbers keep their dots.
_DOMAIN_DOT = r"(?<=[\w-])\.(?=[A-Za-z])"
# GFM links ``user@host.tld`` even when its characters are escaped or written as
# entities (the autolinker reads the parsed text). Inside a code span it does not,
# and a code span copies exactly what it shows.
_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
# GitHub links @user and #123 after rendering, so backslashes cannot stop it; a
# word joiner (U+2060, invisible) between the sign and the name does. A hostile
# test id must not ping people or cross-reference issues from a bot comment.
_MENTION = r"([@#])(?=[\w-])"


def markdown_text(text: str) -> str:
    """Untrusted ``text`` as inert, readable Markdown, safe inside a table cell.

    Control characters become visible escapes (one line, so a table row stays
    one row), Markdown punctuation is backslash-escaped (``|`` cannot split a
    cell, ``*`` cannot start emphasis, ``[`` cannot start a link), ``<``, ``>``
    and ``&`` become entities so nothing is read as HTML, URLs and domains are
    not linked (``http\\://``, ``example\\.com``), and an e-mail address is a code
    span. The page shows the text as it was.
    """
    text = terminal_text(text)
    parts: list[str] = []
    start = 0
    for email in re.finditer(_EMAIL, text):
        parts.append(_inline_markdown(text[start : email.start()]))
        # An address holds only word characters and . + - @: nothing to fence.
        parts.append(f"`{email.group()}`")
        start = email.end()
    parts.append(_inline_markdown(text[start:]))
    return "".join(parts)


def _inline_markdown(text: str) -> str:
    text = re.sub(_MARKDOWN_SPECIAL, lambda m: "\\" + m.group(), text)
    text = re.sub(_DOMAIN_DOT, r"\\.", text)
    text = re.sub(r"[&<>]", lambda m: _ENTITIES[m.group()], text)
    return re.sub(_MENTION, "\\1\u2060", text)


# -- HTML -------------------------------------------------------------------------------


def html_text(text: str) -> str:
    """Text for an HTML element or attribute, before Jinja's autoescape.

    Bidi controls and the control characters HTML does not allow become visible
    escapes, so a tooltip or a chart label cannot reorder itself; tabs and
    newlines stay (a tooltip shows them as they are).
    """
    if text.isprintable():
        return text
    return re.sub(_HTML, _visible, text)


def html_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` for a data block inside the page: bidi and separator characters
    are written as ``\\uXXXX`` escapes, which JSON reads back as the same characters,
    so the page's source holds none of them raw."""
    text = json.dumps(value, **kwargs)
    return re.sub(_JSON_RAW, lambda m: f"\\u{ord(m.group()):04x}", text)
