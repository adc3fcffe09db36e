"""``pytest-energy`` and ``python -m pytest_energy``: commands over results files.

Nothing here runs tests or reads meters. Commands live in :data:`COMMANDS`, one
module per group: :mod:`.reports` (report, summary, annotate, comment-body,
export), :mod:`.compare`, :mod:`.history` and :mod:`.comment`. To add one,
append a :class:`Command` whose ``add_arguments`` and ``run`` are callables or
``"module:function"`` strings; strings are imported only when that command is
used, so a missing optional module breaks only its own command::

    register(Command(
        "trend", "Plot a test's energy.", "mypkg.trend:add_arguments", "mypkg.trend:run",
    ))

``run(args) -> int`` returns the exit status. User errors are raised as
:class:`CommandError` (or :class:`~pytest_energy.record.ResultsError`) with a
one-line message; :func:`main` prints ``pytest-energy: error: ...`` and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from pytest_energy import __version__
from pytest_energy.cli.common import (
    PROG,
    USAGE_ERROR,
    CommandError,
    add_output_argument,
    add_results_argument,
    load_results,
    write_output,
)
from pytest_energy.frozen import frozen
from pytest_energy.record import ResultsError
from pytest_energy.report.escape import terminal_text

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

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


@frozen
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


COMMANDS: list[Command] = [
    Command(
        "report",
        "Render the self-contained HTML report.",
        "pytest_energy.cli.reports:report_arguments",
        "pytest_energy.cli.reports:report",
    ),
    Command(
        "summary",
        "Print the Markdown job summary.",
        "pytest_energy.cli.reports:summary_arguments",
        "pytest_energy.cli.reports:summary",
    ),
    Command(
        "annotate",
        "Print GitHub annotations for regressions.",
        "pytest_energy.cli.reports:annotate_arguments",
        "pytest_energy.cli.reports:annotate",
    ),
    Command(
        "comment-body",
        "Print the pull-request comment (Markdown).",
        "pytest_energy.cli.reports:comment_body_arguments",
        "pytest_energy.cli.reports:comment_body",
    ),
    Command(
        "export",
        "Export results as github-action-benchmark JSON or CSV.",
        "pytest_energy.cli.reports:export_arguments",
        "pytest_energy.cli.reports:export",
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
        "pytest_energy.cli.history:add_history_arguments",
        "pytest_energy.cli.history:run_history",
    ),
    Command(
        "comment",
        "Create or update the pull-request comment on GitHub.",
        "pytest_energy.cli.comment:add_comment_arguments",
        "pytest_energy.cli.comment:run_comment",
    ),
    Command(
        "ab",
        "Measure the base commit and the head in one job, interleaved; exit 1 on a regression.",
        "pytest_energy.ab.command:add_arguments",
        "pytest_energy.ab.command:run",
    ),
]


def register(command: Command) -> None:
    """Add ``command``, replacing any command of the same name."""
    COMMANDS[:] = [c for c in COMMANDS if c.name != command.name] + [command]


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error here."""

    def error(self, message: str) -> NoReturn:
        message = terminal_text(message)  # it quotes the command line
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
    # Messages quote files and their contents: one line, no escape sequences.
    sys.stderr.write(f"{PROG}: error: {terminal_text(message)}\n")
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
