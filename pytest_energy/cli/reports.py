"""``report``, ``summary``, ``annotate``, ``comment-body`` and ``export``: reports from results.

Each renders a results file written by ``pytest --energy-json=...``; nothing is
run or measured, so CI jobs (including the privileged one that comments on pull
requests) can render without running the pull request's code.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pytest_energy.cli.common import (
    CommandError,
    add_output_argument,
    add_results_argument,
    load_results,
    write_output,
)
from pytest_energy.config import defaults
from pytest_energy.record import RunRecord
from pytest_energy.storage.history import HistoryError, load_series

#: The first bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"


def report_arguments(parser: argparse.ArgumentParser) -> None:
    add_results_argument(parser)
    add_output_argument(parser, "HTML report")
    parser.add_argument(
        "--history",
        metavar="PATH",
        type=Path,
        default=None,
        help="draw sparklines from this history: the SQLite history "
        "(.energy/history.sqlite) or a JSON object mapping test ids to lists of numbers",
    )


def load_history(path: Path, record: RunRecord) -> dict[str, list[float]]:
    """Sparkline series per test id, for ``report --history``."""
    try:
        return load_series(path, record.session.machine.hardware_class)
    except HistoryError as exc:
        raise CommandError(str(exc)) from None


def report(args: argparse.Namespace) -> int:
    from pytest_energy.report.html import render_html

    record = load_results(args.results)
    history = load_history(args.history, record) if args.history else None
    write_output(render_html(record, history=history), args.output)
    return 0


def summary_arguments(parser: argparse.ArgumentParser) -> None:
    add_results_argument(parser)
    parser.add_argument(
        "--format",
        choices=["markdown"],
        default="markdown",
        help="output format (default: %(default)s)",
    )
    add_output_argument(parser, "summary (append to $GITHUB_STEP_SUMMARY with >>)")


def summary(args: argparse.Namespace) -> int:
    from pytest_energy.report.markdown import summary_markdown

    write_output(summary_markdown(load_results(args.results)), args.output)
    return 0


def annotate_arguments(parser: argparse.ArgumentParser) -> None:
    add_results_argument(parser)
    parser.add_argument(
        "--max-per-kind",
        metavar="N",
        type=int,
        default=10,
        help="errors and warnings to emit before one summarising notice "
        "(default: %(default)s, GitHub's per-step limit)",
    )


def annotate(args: argparse.Namespace) -> int:
    from pytest_energy.report.annotations import github_annotations

    if args.max_per_kind < 0:
        raise CommandError("--max-per-kind must be 0 or more")
    lines = github_annotations(load_results(args.results), limit=args.max_per_kind)
    write_output("".join(line + "\n" for line in lines), None)
    return 0


def comment_body_arguments(parser: argparse.ArgumentParser) -> None:
    add_results_argument(parser)
    add_output_argument(parser, "comment body")
    parser.add_argument(
        "--marker",
        default=defaults.COMMENT_MARKER,
        help="hidden first line used to find and update the comment (default: %(default)s)",
    )


def comment_body(args: argparse.Namespace) -> int:
    from pytest_energy.report.markdown import comment_body

    if not (args.marker.startswith("<!--") and args.marker.endswith("-->")) or "\n" in args.marker:
        raise CommandError("--marker must be one HTML comment, like '<!-- pytest-energy -->'")
    write_output(comment_body(load_results(args.results), marker=args.marker), args.output)
    return 0


def export_arguments(parser: argparse.ArgumentParser) -> None:
    add_results_argument(parser)
    parser.add_argument(
        "--format",
        required=True,
        choices=["github-action-benchmark", "csv"],
        help="github-action-benchmark (customSmallerIsBetter JSON) or csv",
    )
    add_output_argument(parser, "export")


def export(args: argparse.Namespace) -> int:
    from pytest_energy.report.export import export

    write_output(export(load_results(args.results), args.format), args.output)
    return 0
