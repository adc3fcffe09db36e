"""``pytest-energy ab``: measure the base commit and the head in one job, interleaved.

::

    pytest-energy ab --base origin/main [--head REF|PATH] [--json PATH] [--html PATH]
        [--markdown PATH] [--budget SECONDS] [--processes N] [--setup "CMD"]
        [--fail PCT] [-k EXPR] [-m MARKEXPR] [--repo PATH] [-- PYTEST ARGS...]

Exit status: 0 no regression; 1 an energy regression or a test that failed on
one side; 2 a usage error (an unknown revision, a dirty working tree, a side
whose tests do not collect), one line on stderr. Worker processes and
worktrees are removed on every way out, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from pytest_energy.ab import trees as git_trees
from pytest_energy.ab.comparison import Plan, compare
from pytest_energy.ab.controller import Controller
from pytest_energy.ab.results import build_record, now
from pytest_energy.cli.common import CommandError, write_output
from pytest_energy.cli.compare import _percent, _Printer
from pytest_energy.config import defaults
from pytest_energy.record import RunRecord

#: Worker processes per side for the screen; the screen's flagged tests may use
#: as many again in fresh pairs.
PROCESSES = defaults.AB_PROCESSES
EXTRA_FACTOR = 2
#: The whole comparison's default time budget, in seconds.
BUDGET_S = 600.0
#: Exit status after Ctrl-C or SIGTERM, as a shell reports a signal.
INTERRUPTED = 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, metavar="REF", help="base commit-ish")
    parser.add_argument(
        "--head",
        metavar="REF|PATH",
        help="head commit-ish or directory (default: the working tree, which must be clean)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results JSON")
    parser.add_argument("--html", type=Path, metavar="PATH", help="write the HTML report")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="write the Markdown summary")
    parser.add_argument(
        "--budget",
        type=_positive(float),
        default=BUDGET_S,
        metavar="SECONDS",
        help=f"time budget of the whole comparison (default: {BUDGET_S:.0f})",
    )
    parser.add_argument(
        "--processes",
        type=_positive(int),
        default=PROCESSES,
        metavar="N",
        help=f"worker processes per side, at least 2 (default: {PROCESSES}); tests the "
        "screen flags get as many again in fresh processes",
    )
    parser.add_argument("--setup", metavar="CMD", help="run CMD in each tree first")
    parser.add_argument(
        "--fail",
        type=_percent,
        default=defaults.THRESHOLD,
        metavar="PCT",
        help="material regression threshold (default: 5%%)",
    )
    parser.add_argument("-k", dest="keyword", metavar="EXPR", help="select tests (pytest -k)")
    parser.add_argument("-m", dest="markexpr", metavar="MARKEXPR", help="select by marker")
    parser.add_argument("--repo", type=Path, default=Path(), metavar="PATH")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- PYTEST ARGS")


def _positive(kind: type[float] | type[int]) -> argparse._ActionType:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text!r}")
        return value

    return parse


class Terminated(BaseException):
    """SIGTERM, raised where the controller is so that every ``finally`` runs."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_outputs(args: argparse.Namespace) -> None:
    """Output paths that cannot be written are refused before anything is measured."""
    for option in ("json", "html", "markdown"):
        path: Path | None = getattr(args, option)
        if path is None:
            continue
        if path.is_dir():
            raise CommandError(f"--{option} {path}: is a directory")
        if not path.parent.is_dir():
            raise CommandError(f"--{option} {path}: no directory {path.parent}")


def _pytest_arguments(args: argparse.Namespace) -> list[str]:
    rest = list(args.pytest_args)
    if rest and rest[0] == "--":
        rest = rest[1:]
    if args.keyword:
        rest += ["-k", args.keyword]
    if args.markexpr:
        rest += ["-m", args.markexpr]
    return rest


def _progress(line: str) -> None:
    stream = sys.stdout
    if stream.isatty():
        stream.write("\r\x1b[2K" + line[:200])
    else:
        stream.write(line + "\n")
    stream.flush()


def run(args: argparse.Namespace) -> int:
    if args.processes < 2:
        raise CommandError("--processes must be at least 2: the process is the unit of replication")
    _check_outputs(args)
    root = git_trees.repository_root(args.repo)
    subdir = (
        args.repo.resolve().relative_to(root.resolve())
        if args.repo.resolve() != root.resolve()
        else Path()
    )
    base_commit = git_trees.resolve(root, args.base, "--base")
    head_path = Path(args.head) if args.head else None
    head_is_path = head_path is not None and head_path.is_dir()
    head_commit = (
        "" if args.head is None or head_is_path else git_trees.resolve(root, args.head, "--head")
    )
    if args.head is None:
        head_tree = git_trees.working_tree(root)
    elif head_is_path:
        assert head_path is not None
        head_tree = git_trees.path_tree(head_path)
    else:
        head_tree = None
    plan = Plan(
        processes=args.processes,
        max_processes=args.processes * EXTRA_FACTOR,
        budget_s=args.budget,
        threshold=args.fail,
        margin=min(defaults.MARGIN, args.fail),
    )
    started, stamp = time.monotonic(), now()
    folder = Path(tempfile.mkdtemp(prefix="pytest-energy-ab-"))
    made: list[git_trees.Tree] = []
    controller: Controller | None = None
    try:
        with _sigterm_raises():
            base_tree = git_trees.checkout(root, "base", args.base, base_commit, folder)
            made.append(base_tree)
            if head_tree is None:
                head_tree = git_trees.checkout(root, "head", args.head, head_commit, folder)
                made.append(head_tree)
            trees = {"base": base_tree, "head": head_tree}
            if args.setup:
                for tree in trees.values():
                    _progress(f"ab: --setup in the {tree.side} tree ({tree.short})")
                    git_trees.run_setup(tree, args.setup, folder / f"setup-{tree.side}.log")
            controller = Controller(
                trees,
                subdir=subdir,
                arguments=_pytest_arguments(args),
                folder=folder,
                say=_progress,
            )
            measured = compare(controller, plan, started=started, progress=_progress)
            controller.stop()
            if sys.stdout.isatty():
                sys.stdout.write("\n")
            if not measured.runs and not measured.new and not measured.removed:
                raise CommandError(
                    "no energy_benchmark tests were collected in either tree "
                    "(plain tests are not compared; check -k/-m and the test paths)"
                )
            record = build_record(
                measured,
                plan,
                trees,
                controller.collected.meters,
                alpha=defaults.ALPHA,
                started=stamp,
                notices=controller.notices,
            )
    except (KeyboardInterrupt, Terminated):
        sys.stderr.write("pytest-energy: ab interrupted: worker processes and worktrees removed\n")
        return INTERRUPTED
    finally:
        if controller is not None:
            controller.kill()
        for tree in made:
            git_trees.remove(root, tree)
        _remove(folder)
    return _report(record, args)


def _report(record: RunRecord, args: argparse.Namespace) -> int:
    from pytest_energy.report.terminal import write_ab_report

    write_ab_report(_Printer(), record)
    if args.json is not None:
        write_output(record.to_json(), args.json)
    if args.markdown is not None:
        from pytest_energy.report.markdown import summary_markdown

        write_output(summary_markdown(record), args.markdown)
    if args.html is not None:
        from pytest_energy.report.html import render_html

        write_output(render_html(record), args.html)
    return 1 if record.gate is not None and record.gate.failed else 0


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(folder)
