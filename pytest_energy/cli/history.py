"""``pytest-energy history``: tests' energy over past runs, from the SQLite history."""

from __future__ import annotations

import argparse
from pathlib import Path

from pytest_energy.cli.common import CommandError, write_output
from pytest_energy.config import defaults


def add_history_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "test", nargs="?", default=None, metavar="TEST", help="a test id (default: every test)"
    )
    parser.add_argument(
        "--history",
        type=Path,
        default=defaults.HISTORY_PATH,
        metavar="PATH",
        help="the history file (default: %(default)s)",
    )
    parser.add_argument(
        "--limit", type=int, default=20, metavar="N", help="runs shown per test (default: 20)"
    )


def run_history(args: argparse.Namespace) -> int:
    from pytest_energy.report.trend import format_trend
    from pytest_energy.storage.history import History, HistoryError

    if not args.history.exists():
        raise CommandError(f"no history at {args.history}; run pytest --energy first")
    try:
        rows = History(args.history).trend(args.test, limit=args.limit)
    except HistoryError as exc:
        raise CommandError(str(exc)) from None
    if not rows:
        raise CommandError(
            f"no runs of {args.test!r} in {args.history}"
            if args.test
            else f"{args.history} holds no runs yet"
        )
    write_output(format_trend(rows) + "\n", None)
    return 0
