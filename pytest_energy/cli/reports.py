"""``report``, ``summary``, ``annotate``, ``comment-body`` and ``export``: reports from results.

Each renders a results file written by ``pytest --energy-json=...``; nothing is
run or measured, so CI jobs (including the privileged one that comments on pull
requests) can render without running the pull request's code.
"""

from __future__ import annotations

import argparse
import dataclasses
import posixpath
import sys
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
        metavar="PATH|URL",
        default=None,
        help="draw sparklines from this history: the SQLite history "
        "(.energy/history.sqlite), a postgresql:// one, "
        "or a JSON object mapping test ids to lists of numbers",
    )


def load_history(text: str, record: RunRecord) -> dict[str, list[float]]:
    """Sparkline series per test id, for ``report --history``."""
    from pytest_energy.cli.history import history_location
    from pytest_energy.storage.history_store import trend_series

    location = history_location(text)
    hardware_class = record.session.machine.hardware_class
    try:
        if isinstance(location, str):
            return trend_series(None, location, hardware_class) or {}
        return load_series(location, hardware_class)
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
    parser.add_argument(
        "--trend",
        metavar="HISTORY",
        default=None,
        help="add a chart of --trend-branch's last runs from this SQLite history "
        "(Mermaid; skipped with a note when the history cannot be read)",
    )
    parser.add_argument(
        "--trend-branch",
        metavar="NAME",
        default="main",
        help="the branch charted by --trend (default: %(default)s)",
    )
    parser.add_argument(
        "--trend-runs",
        metavar="N",
        type=int,
        default=20,
        help="runs charted by --trend (default: %(default)s)",
    )


def summary(args: argparse.Namespace) -> int:
    from pytest_energy.report.markdown import summary_markdown

    if args.trend_runs < 2:
        raise CommandError("--trend-runs must be 2 or more")
    record = load_results(args.results)
    text = summary_markdown(record)
    if args.trend is not None:
        text = text.rstrip("\n") + "\n\n" + _trend_section(args, record)
    write_output(text, args.output)
    return 0


def _trend_section(args: argparse.Namespace, record: RunRecord) -> str:
    """The trend chart, or one line saying why there is none: the summary always shows."""
    from pytest_energy.cli.history import history_location
    from pytest_energy.report.escape import markdown_text, terminal_text
    from pytest_energy.report.trend_summary import trend_chart
    from pytest_energy.storage.history_store import open_history

    location = history_location(args.trend)
    branch = str(args.trend_branch)
    if isinstance(location, Path) and not location.is_file():
        return f"_No energy trend yet: no history at {markdown_text(str(location))}._\n"
    history = open_history(None, location) if isinstance(location, str) else open_history(location)
    assert history is not None
    try:
        points = history.trend(
            None,
            limit=args.trend_runs,
            hardware_class=record.session.machine.hardware_class,
            branch=branch,
        )
    except HistoryError as exc:
        # The summary matters more than the chart: say why, keep going.
        print(f"pytest-energy: warning: no trend chart: {terminal_text(str(exc))}", file=sys.stderr)
        return f"_No energy trend: {markdown_text(str(exc))[:300]}._\n"
    chart = trend_chart(points, branch=branch, runs=args.trend_runs)
    if not chart:
        return (
            f"_No energy trend yet: fewer than two comparable runs of "
            f"{markdown_text(branch)} in the history._\n"
        )
    return chart


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
    parser.add_argument(
        "--path-prefix",
        metavar="DIR",
        default="",
        help="folder of the pytest rootdir inside the repository, put before each test "
        "file so annotations land on the right file (the action's working-directory)",
    )


def _path_prefix(value: str) -> str:
    """``value`` as a clean relative POSIX folder; "" for the repository root."""
    prefix = posixpath.normpath(value.replace("\\", "/")) if value.strip() else "."
    if prefix.startswith(("/", "../")) or prefix == "..":
        raise CommandError(
            f"--path-prefix {value!r}: expected a folder inside the repository, "
            "relative to its root"
        )
    return "" if prefix == "." else prefix


def with_path_prefix(record: RunRecord, prefix: str) -> RunRecord:
    """``record`` with each test's file under ``prefix`` (annotations name repository paths)."""
    if not prefix:
        return record
    tests = [
        dataclasses.replace(t, file=posixpath.join(prefix, t.file)) if t.file else t
        for t in record.tests
    ]
    return dataclasses.replace(record, tests=tests)


def annotate(args: argparse.Namespace) -> int:
    from pytest_energy.report.annotations import github_annotations

    if args.max_per_kind < 0:
        raise CommandError("--max-per-kind must be 0 or more")
    prefix = _path_prefix(str(args.path_prefix))
    record = with_path_prefix(load_results(args.results), prefix)
    lines = github_annotations(record, limit=args.max_per_kind)
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
