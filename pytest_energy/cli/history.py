"""``pytest-energy history``: tests' energy over past runs, from SQLite or PostgreSQL."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_energy.cli.common import CommandError, write_output
from pytest_energy.config import defaults

if TYPE_CHECKING:
    from pytest_energy.storage.history_base import RunHistory

#: The plugin's variable for ``--energy-history``; the command reads the same history.
HISTORY_ENV = "PYTEST_ENERGY_HISTORY"


def add_history_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "test", nargs="?", default=None, metavar="TEST", help="a test id (default: every test)"
    )
    parser.add_argument(
        "--history",
        default=None,
        metavar="PATH|URL",
        help="the history: an SQLite file, sqlite:///PATH or postgresql://USER@HOST/DB "
        f"(default: ${HISTORY_ENV}, else {defaults.HISTORY_PATH})",
    )
    parser.add_argument(
        "--limit", type=int, default=20, metavar="N", help="runs shown per test (default: 20)"
    )
    parser.add_argument(
        "--branch", default=None, metavar="NAME", help="only the runs of this branch"
    )
    parser.add_argument(
        "--export",
        default=None,
        metavar="CSV",
        help="write the runs shown as CSV to this file ('-': standard output) instead of the table",
    )


def history_location(text: str) -> Path | str:
    """A ``--history`` value: an SQLite path, or a server URL (returned as text)."""
    from pytest_energy.config.options import parse_history

    try:
        location = parse_history(text)
    except ValueError as exc:
        raise CommandError(f"--history: {exc}") from None
    if location is None:
        raise CommandError("--history: the history is off; give a path or a URL")
    return location


def open_cli_history(text: str | None) -> RunHistory:
    """The history a command reads; an SQLite file must exist (reading never creates one)."""
    from pytest_energy.storage.history_store import open_history

    location = history_location(text or os.environ.get(HISTORY_ENV) or str(defaults.HISTORY_PATH))
    if isinstance(location, str):
        history = open_history(None, location)
    else:
        if not location.exists():
            raise CommandError(f"no history at {location}; run pytest --energy first")
        history = open_history(location)
    assert history is not None
    return history


def run_history(args: argparse.Namespace) -> int:
    from pytest_energy.report.trend import format_trend, trend_csv
    from pytest_energy.storage.history_base import HistoryError

    if args.limit < 1:
        raise CommandError("--limit must be 1 or more")
    history = open_cli_history(args.history)
    try:
        rows = history.trend(args.test, limit=args.limit, branch=args.branch)
    except HistoryError as exc:
        raise CommandError(str(exc)) from None
    if not rows:
        raise CommandError(
            f"no runs of {args.test!r} in {history.where}"
            if args.test
            else f"{history.where} holds no runs yet"
        )
    if args.export is not None:
        write_output(trend_csv(rows), _export_path(args.export, history))
        return 0
    write_output(format_trend(rows) + "\n", None)
    return 0


def _export_path(text: str, history: RunHistory) -> Path | None:
    """Where ``--export`` writes (None: standard output); never over the history it reads."""
    from pytest_energy.config.settings import KeptPath
    from pytest_energy.storage.history import History

    if text == "-":
        return None
    path = Path(text)
    if isinstance(history, History) and KeptPath("", history.path, "family").covers(path):
        raise CommandError(
            f"--export: {path} is the history being read; writing there would destroy it"
        )
    return path
