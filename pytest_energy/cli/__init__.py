"""``pytest-energy`` and ``python -m pytest_energy``: reports from results files.

Nothing here runs tests or reads meters; every command works on a results
file written by ``pytest --energy-json=...``, so CI jobs (including the
privileged one that comments on pull requests) can render without running the
pull request's code.

Commands live in :data:`COMMANDS`, a list of :class:`Command` entries. To add
one, append an entry whose ``add_arguments`` and ``run`` are callables or
``"module:function"`` strings; strings are imported only when that command
is used, so a missing optional module breaks only its own command::

    COMMANDS.append(Command(
        "history", "Show a test's energy over past runs.",
        "pytest_energy.history_cli:add_arguments", "pytest_energy.history_cli:run",
    ))

``run(args) -> int`` returns the exit status. User errors are raised as
:class:`CommandError` (or :class:`~pytest_energy.results.ResultsError`) with a
one-line message; :func:`main` prints ``pytest-energy: error: ...`` and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from pytest_energy import __version__
from pytest_energy.record import ResultsError, RunRecord, load, write_atomic

__all__ = [
    "COMMANDS",
    "USAGE_ERROR",
    "Command",
    "CommandError",
    "add_output_argument",
    "add_results_argument",
    "load_results",
    "main",
    "register",
    "write_output",
]

PROG = "pytest-energy"
#: The exit status for anything the user can fix (pytest's usage-error code).
USAGE_ERROR = 2

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A problem the user can fix; the message is one line."""


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, one-line help, and how to parse and run it."""

    name: str
    help: str
    add_arguments: AddArguments | str
    run: Run | str


def _resolve(target: Callable[..., Any] | str) -> Callable[..., Any]:
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), attribute)
    return function


# -- helpers shared by commands -------------------------------------------------------


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
    """The record at ``path``; bad files raise ResultsError with a one-line message."""
    return load(path)


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


# -- the built-in commands -------------------------------------------------------------


def _report_arguments(parser: argparse.ArgumentParser) -> None:
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


#: Points per sparkline taken from the history.
HISTORY_POINTS = 20


def _history_from_json(path: Path, text: str) -> dict[str, list[float]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"history file {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CommandError(f"history file {path} must hold an object of test id -> numbers")
    series: dict[str, list[float]] = {}
    for key, values in data.items():
        if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        ):
            raise CommandError(f"history file {path}: {key!r} must map to a list of numbers")
        series[str(key)] = [float(v) for v in values]
    return series


def load_history(path: Path, record: RunRecord) -> dict[str, list[float]]:
    """Sparkline series per test id from a SQLite history or a JSON mapping."""
    try:
        head = path.read_bytes()[:16]
    except FileNotFoundError:
        raise CommandError(f"history file {path} does not exist") from None
    except OSError as exc:
        raise CommandError(f"cannot read history file {path}: {exc.strerror or exc}") from None
    if head != b"SQLite format 3\x00":
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CommandError(f"history file {path} is neither SQLite nor JSON") from None
        return _history_from_json(path, text)
    import sqlite3

    from pytest_energy.storage.history import History, HistoryError

    try:
        return History(path).last_runs(record.session.machine.hardware_class, None, HISTORY_POINTS)
    except (HistoryError, sqlite3.Error) as exc:
        raise CommandError(f"cannot read history {path}: {exc}") from None


def _report(args: argparse.Namespace) -> int:
    from pytest_energy.report.html import render_html

    record = load_results(args.results)
    history = load_history(args.history, record) if args.history else None
    write_output(render_html(record, history=history), args.output)
    return 0


def _summary_arguments(parser: argparse.ArgumentParser) -> None:
    add_results_argument(parser)
    parser.add_argument(
        "--format",
        choices=["markdown"],
        default="markdown",
        help="output format (default: %(default)s)",
    )
    add_output_argument(parser, "summary (append to $GITHUB_STEP_SUMMARY with >>)")


def _summary(args: argparse.Namespace) -> int:
    from pytest_energy.report.markdown import summary_markdown

    write_output(summary_markdown(load_results(args.results)), args.output)
    return 0


def _annotate_arguments(parser: argparse.ArgumentParser) -> None:
    add_results_argument(parser)
    parser.add_argument(
        "--max-per-kind",
        metavar="N",
        type=int,
        default=10,
        help="errors and warnings to emit before one summarising notice "
        "(default: %(default)s, GitHub's per-step limit)",
    )


def _annotate(args: argparse.Namespace) -> int:
    from pytest_energy.report.annotations import github_annotations

    if args.max_per_kind < 0:
        raise CommandError("--max-per-kind must be 0 or more")
    lines = github_annotations(load_results(args.results), limit=args.max_per_kind)
    write_output("".join(line + "\n" for line in lines), None)
    return 0


def _comment_body_arguments(parser: argparse.ArgumentParser) -> None:
    add_results_argument(parser)
    add_output_argument(parser, "comment body")
    parser.add_argument(
        "--marker",
        default="<!-- pytest-energy -->",
        help="hidden first line used to find and update the comment (default: %(default)s)",
    )


def _comment_body(args: argparse.Namespace) -> int:
    from pytest_energy.report.markdown import comment_body

    if not (args.marker.startswith("<!--") and args.marker.endswith("-->")) or "\n" in args.marker:
        raise CommandError("--marker must be one HTML comment, like '<!-- pytest-energy -->'")
    write_output(comment_body(load_results(args.results), marker=args.marker), args.output)
    return 0


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    add_results_argument(parser)
    parser.add_argument(
        "--format",
        required=True,
        choices=["github-action-benchmark", "csv"],
        help="github-action-benchmark (customSmallerIsBetter JSON) or csv",
    )
    add_output_argument(parser, "export")


def _export(args: argparse.Namespace) -> int:
    from pytest_energy.report.export import export

    write_output(export(load_results(args.results), args.format), args.output)
    return 0


COMMANDS: list[Command] = [
    Command("report", "Render the self-contained HTML report.", _report_arguments, _report),
    Command("summary", "Print the Markdown job summary.", _summary_arguments, _summary),
    Command(
        "annotate", "Print GitHub annotations for regressions.", _annotate_arguments, _annotate
    ),
    Command(
        "comment-body",
        "Print the pull-request comment (Markdown).",
        _comment_body_arguments,
        _comment_body,
    ),
    Command(
        "export",
        "Export results as github-action-benchmark JSON or CSV.",
        _export_arguments,
        _export,
    ),
    Command(
        "compare",
        "Gate HEAD results against BASE results; exit 1 on a regression.",
        "pytest_energy.cli.compare:add_compare_arguments",
        "pytest_energy.cli.compare:run_compare",
    ),
    Command(
        "history",
        "Show tests' energy over past runs from the SQLite history.",
        "pytest_energy.cli.compare:add_history_arguments",
        "pytest_energy.cli.compare:run_history",
    ),
    Command(
        "comment",
        "Create or update the pull-request comment on GitHub.",
        "pytest_energy.cli.comment:add_comment_arguments",
        "pytest_energy.cli.comment:run_comment",
    ),
]


def register(command: Command) -> None:
    """Add ``command``, replacing any command of the same name."""
    COMMANDS[:] = [c for c in COMMANDS if c.name != command.name] + [command]


# -- parsing and running -----------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error here."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def _selected(argv: Sequence[str]) -> str | None:
    # The top level takes only -h and --version, so the first word is the command.
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the ``selected`` command's arguments are set up (and imported)."""
    parser = _Parser(
        prog=PROG,
        description="Reports from pytest-energy results files (no tests are run).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        if command.name != selected:
            continue
        try:
            _resolve(command.add_arguments)(sub)
        except ImportError as exc:
            # The command still parses (and then explains) instead of breaking the CLI.
            sub.set_defaults(unavailable=f"the '{command.name}' command is not available: {exc}")
        sub.set_defaults(handler=command.run)
    return parser


def _fail(message: str) -> int:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    return USAGE_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 usage or input error)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_selected(arguments))
    try:
        args, unknown = parser.parse_known_args(arguments)
        # An unavailable command's own options are unknown here; its error says why.
        if unknown and not getattr(args, "unavailable", None):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else USAGE_ERROR
    if args.command is None:
        return _fail(f"choose a command: {', '.join(c.name for c in COMMANDS)}")
    if getattr(args, "unavailable", None):
        return _fail(args.unavailable)
    try:
        handler: Run = _resolve(args.handler)
    except ImportError as exc:
        return _fail(f"the '{args.command}' command is not available: {exc}")
    try:
        return handler(args)
    except (CommandError, ResultsError) as exc:
        return _fail(str(exc))
    except BrokenPipeError:
        # The reader went away (`pytest-energy summary ... | head`): not our error.
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
