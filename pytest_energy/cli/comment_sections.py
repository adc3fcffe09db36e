"""The pull-request comment's body, rendered from a folder of downloaded artifacts.

The comment job downloads one artifact per energy job (or matrix entry), each
holding a ``results.json`` that the pull request's own job wrote: untrusted data.
Every file becomes one section; a file that is missing, oversized, a symlink or
unreadable becomes one line saying so, and never stops the other sections.
Standard library only, like the rest of the comment poster.
"""

from __future__ import annotations

import contextlib
import stat
from dataclasses import dataclass, field
from pathlib import Path

from pytest_energy.record import RunRecord
from pytest_energy.record_json import parse_json
from pytest_energy.report.escape import markdown_text, terminal_text

__all__ = [
    "MAX_RESULTS_BYTES",
    "NO_RESULTS",
    "Sections",
    "find_hint",
    "render_sections",
]

#: A results file this large is not one the plugin wrote; it is skipped, and said so.
MAX_RESULTS_BYTES = 20 * 1024 * 1024
RESULTS_NAME = "results.json"
HINT_NAME = "pr.json"
#: The body that replaces an earlier comment when the run wrote no results at all.
NO_RESULTS = (
    "### ⚠️ No energy results\n\n"
    "The energy run uploaded no results file (tests may have failed before pytest-energy "
    "wrote one, or the artifact expired). Earlier figures in this comment no longer "
    "apply; see the workflow run's log.\n"
)


@dataclass
class Sections:
    """The rendered sections, and what the comment job should know about them."""

    #: Markdown for the comment, without the marker; empty when nothing was found.
    body: str = ""
    #: Results files found (rendered or not).
    found: int = 0
    #: A section regressed, failed, is inconclusive or incomplete, or a file was bad.
    alert: bool = False
    #: One line per skipped or unreadable file, for the job's log.
    problems: list[str] = field(default_factory=list)


def _candidates(directory: Path) -> list[Path]:
    """``results.json`` in ``directory`` and in each folder directly below it, sorted."""
    found = [directory / RESULTS_NAME]
    with contextlib.suppress(OSError):  # unreadable folder: the top-level file only
        found += [child / RESULTS_NAME for child in sorted(directory.iterdir())]
    return [path for path in found if path.exists() or path.is_symlink()]


def _label(path: Path, directory: Path) -> str:
    """The artifact's name: the folder the results file came in."""
    return directory.name if path.parent == directory else path.parent.name


def _read(path: Path) -> RunRecord:
    """The record in ``path``; any problem is a ValueError with a one-line message."""
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("not a regular file (a symlink or something else): skipped")
    if info.st_size > MAX_RESULTS_BYTES:
        raise ValueError(
            f"{info.st_size / 1e6:.0f} MB is over the {MAX_RESULTS_BYTES // 2**20} MiB limit "
            "for a results file: skipped"
        )
    with path.open("rb") as handle:
        raw = handle.read(MAX_RESULTS_BYTES + 1)
    if len(raw) > MAX_RESULTS_BYTES:
        raise ValueError("grew over the size limit while being read: skipped")
    data = parse_json(raw.decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return RunRecord.from_dict(data)


def _alerting(record: RunRecord) -> bool:
    from pytest_energy.report.overview import overview

    ov = overview(record)
    return ov.state == "failed" or bool(ov.inconclusive) or ov.incomplete


def render_sections(directory: Path) -> Sections:
    """One section per results file under ``directory`` (see the module docstring)."""
    from pytest_energy.report.markdown import comment_body

    sections = Sections()
    parts: list[str] = []
    candidates = _candidates(directory)
    sections.found = len(candidates)
    for path in candidates:
        label = _label(path, directory)
        try:
            record = _read(path)
            part = comment_body(record, marker="")
            alert = _alerting(record)
        except (OSError, ValueError, UnicodeError, RecursionError) as exc:
            # ResultsError and JSONInputError are ValueErrors. The message quotes
            # the untrusted file: one line, escaped for where it is shown.
            reason = " ".join(str(exc).split()) or type(exc).__name__
            sections.problems.append(f"{terminal_text(label)}: {terminal_text(reason)[:300]}")
            part = (
                f"### ⚠️ Energy results of artifact {markdown_text(label)[:120]} "
                "could not be shown\n\n"
                f"{markdown_text(reason)[:300]}\n"
            )
            alert = True
        sections.alert = sections.alert or alert
        parts.append(part.rstrip("\n") + "\n")
    # Each section is rendered without the marker; the poster adds it once.
    sections.body = "\n".join(parts)
    return sections


def find_hint(directory: Path) -> Path | None:
    """The first ``pr.json`` beside a results file, as a regular file, or None."""
    for results in _candidates(directory):
        hint = results.with_name(HINT_NAME)
        try:
            if stat.S_ISREG(hint.lstat().st_mode):
                return hint
        except OSError:
            continue
    return None
