"""What every ``pytest-energy`` command shares: the error type, arguments, input and output."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_energy.output_files import write_atomic
from pytest_energy.record import ResultsError, RunRecord
from pytest_energy.record_json import read_results_data

PROG = "pytest-energy"
#: The exit status for anything the user can fix (pytest's usage-error code).
USAGE_ERROR = 2


class CommandError(Exception):
    """A problem the user can fix; the message is one line."""


def add_results_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        metavar="RESULTS.json",
        type=Path,
        help="results file written by pytest --energy-json",
    )


def add_output_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        type=Path,
        default=None,
        help=f"write the {what} to PATH (default: standard output)",
    )


def load_results(path: Path) -> RunRecord:
    """The record at ``path``; bad files raise ResultsError with a one-line message.

    The file is untrusted (a pull request's job wrote it): it is parsed with a
    depth limit and every field's type is checked before any report reads it.
    """
    data = read_results_data(path)
    try:
        return RunRecord.from_dict(data)
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None


def write_output(text: str, path: Path | None) -> None:
    """Write ``text`` to ``path`` atomically, or to standard output when ``path`` is None."""
    if path is None:
        _stdout(text)
        return
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None


def _stdout(text: str) -> None:
    try:
        sys.stdout.write(text)
    except UnicodeEncodeError:
        # A non-UTF-8 locale cannot print µ or ✓; the bytes are still right.
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()
