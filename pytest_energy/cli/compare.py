"""``pytest-energy compare``: the gate outside pytest, on two results files.

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

from pytest_energy.cli.common import CommandError, add_output_argument, load_results, write_output
from pytest_energy.config import defaults
from pytest_energy.config.options import parse_percent
from pytest_energy.config.settings import MAX_ALPHA, SettingError, Settings
from pytest_energy.report.escape import terminal_text


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
        default=defaults.THRESHOLD,
        metavar="PERCENT",
        help="material regression threshold (default: 5%%)",
    )
    parser.add_argument(
        "--margin",
        type=_percent,
        default=defaults.MARGIN,
        metavar="PERCENT",
        help="certainty margin on the ratio's lower bound (default: 1%%)",
    )
    parser.add_argument(
        "--alpha",
        type=_percent,
        default=defaults.ALPHA,
        metavar="PERCENT",
        help="family-wise false-alarm rate, at most 5%% (default: 1%%)",
    )
    add_output_argument(parser, "HEAD results with the gate's verdicts (JSON)")


def run_compare(args: argparse.Namespace) -> int:
    from pytest_energy.gate.baseline import from_results
    from pytest_energy.gate.run_gate import RunGate
    from pytest_energy.report.terminal import write_regressions

    if args.margin >= args.fail:
        raise CommandError("--margin must be below --fail")
    if args.alpha > MAX_ALPHA:
        # As in the plugin: the screen decides unflagged tests at p >= 5 %.
        raise CommandError(f"--alpha must be at most {MAX_ALPHA:.0%}")
    baseline, current = load_results(args.baseline), load_results(args.current)
    settings = Settings(fail=args.fail, margin=args.margin, alpha=args.alpha)
    try:
        compared = from_results(baseline, current)
    except SettingError as exc:
        raise CommandError(str(exc)) from None
    compared.label = str(args.baseline)
    record, failed = RunGate(settings, compared).decide(current, current.session.calibration)
    write_regressions(_Printer(), record)
    if args.output is not None:
        write_output(record.to_json(), args.output)
    return 1 if failed else 0


class _Printer:
    """The terminal writer the regressions section expects, on standard output.

    Lines quote both results files (hardware classes, test ids, the baseline's
    path): each is escaped for the terminal, so a newline in a file cannot start
    a line of its own (a ``::error::`` workflow command in a CI log).
    """

    def write_sep(self, sep: str, title: str | None = None, **markup: bool) -> None:
        text = f" {terminal_text(title)} " if title else ""
        sys.stdout.write(text.center(78, sep) + "\n")

    def write_line(self, line: str, **markup: bool) -> None:
        sys.stdout.write(terminal_text(line) + "\n")
