"""``pytest-energy compare`` and ``pytest-energy history``: the gate outside pytest.

``compare BASE.json HEAD.json`` gives the verdicts an in-run gate would give
for the same rounds (screening rounds and confirmation rounds are read back
from HEAD), prints the regressions section, and exits 1 when the gate fails.
``-o`` writes HEAD with its verdicts, for ``summary``, ``annotate`` and
``comment-body``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_energy.cli import CommandError, add_output_argument, load_results, write_output
from pytest_energy.config.options import parse_percent
from pytest_energy.config.settings import SettingError, Settings


def _percent(text: str) -> float:
    try:
        return parse_percent(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", metavar="BASE.json", type=Path, help="results of the base")
    parser.add_argument("current", metavar="HEAD.json", type=Path, help="results of the change")
    parser.add_argument(
        "--fail",
        type=_percent,
        default=0.05,
        metavar="PERCENT",
        help="material regression threshold (default: 5%%)",
    )
    parser.add_argument(
        "--margin",
        type=_percent,
        default=0.01,
        metavar="PERCENT",
        help="certainty margin on the ratio's lower bound (default: 1%%)",
    )
    parser.add_argument(
        "--alpha",
        type=_percent,
        default=0.01,
        metavar="PERCENT",
        help="family-wise false-alarm rate (default: 1%%)",
    )
    add_output_argument(parser, "HEAD results with the gate's verdicts (JSON)")


def run_compare(args: argparse.Namespace) -> int:
    from pytest_energy.gate.run_gate import Gatekeeper
    from pytest_energy.report.terminal import write_regressions

    if args.margin >= args.fail:
        raise CommandError("--margin must be below --fail")
    baseline, current = load_results(args.baseline), load_results(args.current)
    settings = Settings(fail=args.fail, margin=args.margin, alpha=args.alpha)
    try:
        gate = Gatekeeper.from_record(settings, baseline, current)
    except SettingError as exc:
        raise CommandError(str(exc)) from None
    gate.label = str(args.baseline)
    calibration = current.session.calibration or {}
    record, failed = gate.decide(current, calibration)
    write_regressions(_Printer(), record)
    if args.output is not None:
        write_output(record.to_json(), args.output)
    return 1 if failed else 0


class _Printer:
    """The terminal writer the regressions section expects, on standard output."""

    def write_sep(self, sep: str, title: str | None = None, **markup: bool) -> None:
        text = f" {title} " if title else ""
        sys.stdout.write(text.center(78, sep) + "\n")

    def write_line(self, line: str, **markup: bool) -> None:
        sys.stdout.write(line + "\n")


def add_history_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "test", nargs="?", default=None, metavar="TEST", help="a test id (default: every test)"
    )
    parser.add_argument(
        "--history",
        type=Path,
        default=Path(".energy/history.sqlite"),
        metavar="PATH",
        help="the history file (default: .energy/history.sqlite)",
    )
    parser.add_argument(
        "--limit", type=int, default=20, metavar="N", help="runs shown per test (default: 20)"
    )


def run_history(args: argparse.Namespace) -> int:
    from pytest_energy.storage.history import History, HistoryError, format_trend

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
