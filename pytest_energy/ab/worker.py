"""The pytest plugin of an A/B worker: ``python -m pytest --energy -p pytest_energy.ab.worker``.

A worker collects its own tree's tests, says which ``energy_benchmark`` tests it
has, then runs only what the controller asks for: a test is started, warmed up
and sized as usual, and then its benchmark waits inside the test body and runs
one round each time the controller says ``round`` (:data:`ROUND_DRIVER`), so the
controller can alternate base and head rounds across processes.

Each worker must import its own tree's code even when the project is installed
in the shared environment (an editable install points at one tree): the tree's
import roots go first on ``sys.path`` as this module is imported (``-p`` loads it
before any conftest), and after collection and after each test the tree's
top-level modules that were imported are checked to come from inside the tree.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_energy.ab.plain import measure_plain
from pytest_energy.ab.protocol import FD_ENV, SIDE_ENV, TREE_ENV, Channel, ChannelClosed
from pytest_energy.measure.driver import ROUND_DRIVER
from pytest_energy.measure.recorder import SessionRecorder
from pytest_energy.measure.rounds import paired_value
from pytest_energy.record import Round, to_plain

#: Files at an import root that are not the project's code.
_NOT_CODE = {"conftest", "setup", "noxfile", "tasks", "fabfile"}


def import_roots(tree: Path, configured: list[Path]) -> list[Path]:
    """Where the tree's code is imported from: its root, ``src/``, and ``pythonpath``."""
    roots = [tree, *([tree / "src"] if (tree / "src").is_dir() else [])]
    roots += [p for p in configured if _inside(p, tree) and p not in roots]
    return roots


#: Folders never searched for the tree's packages.
_SKIPPED = {"node_modules", "site-packages", "build", "dist", "venv", "env"}


def tree_modules(tree: Path, roots: list[Path]) -> Iterator[str]:
    """Top-level module names the tree provides: modules and packages at its import
    roots, and packages one folder down (``lib/mypkg``) that an installed copy may shadow."""
    folders = [*roots, *(p for p in _folders(tree) if p not in roots)]
    for folder in folders:
        for entry in _folders(folder) if folder not in roots else _entries(folder):
            if entry.suffix == ".py" and entry.stem.isidentifier() and entry.stem not in _NOT_CODE:
                yield entry.stem
            elif entry.is_dir() and entry.name.isidentifier() and (entry / "__init__.py").is_file():
                yield entry.name


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _folders(folder: Path) -> list[Path]:
    return [
        p
        for p in _entries(folder)
        if p.is_dir() and not p.name.startswith((".", "_")) and p.name not in _SKIPPED
    ]


def foreign_module(tree: Path, roots: list[Path]) -> str | None:
    """The first of the tree's modules that was imported from outside the tree, as one line."""
    for name in tree_modules(tree, roots):
        module = sys.modules.get(name)
        if module is None:
            continue
        places = [getattr(module, "__file__", None), *getattr(module, "__path__", [])]
        found = [Path(p) for p in places if p]
        if found and not any(_inside(p, tree) for p in found):
            side = os.environ.get(SIDE_ENV, "this")
            return (
                f"the {side} tree's module {name!r} was imported from {found[0]}, not from the "
                f"tree {tree}: the environment's installed copy shadows it; use --setup "
                "\"python -m pip install -e .\" or a src/ layout or the pytest 'pythonpath' "
                "setting so that each tree imports its own code"
            )
    return None


def _inside(path: Path, tree: Path) -> bool:
    try:
        return path.resolve().is_relative_to(tree.resolve())
    except OSError:
        return False


def uses_benchmark(item: pytest.Item) -> bool:
    return "energy_benchmark" in getattr(item, "fixturenames", ())


def is_ab_test(item: pytest.Item) -> bool:
    """A/B compares the tests that use ``energy_benchmark``, and plain tests only when
    they carry the ``energy`` marker (each round then runs the whole test)."""
    return uses_benchmark(item) or item.get_closest_marker("energy") is not None


class Worker:
    """One worker's side of the protocol, and the round driver of its benchmarks."""

    def __init__(self, channel: Channel, tree: Path, config: pytest.Config) -> None:
        self.channel = channel
        self.tree = tree
        configured = [Path(p) for p in config.getini("pythonpath")]
        self.roots = import_roots(tree, configured)
        self.collect_errors: list[str] = []
        self.outcome = "passed"
        self.message = ""

    # -- the round driver (measure.driver.RoundDriver) ------------------------------

    def drive(
        self, nodeid: str, one_round: Callable[[], Round | None], units: float, unit: str
    ) -> list[Round] | None:
        measured = self.serve_rounds(nodeid, one_round, units, unit)
        if measured == []:
            # The other side stopped before the first round: nothing to record.
            pytest.skip("pytest-energy ab: the comparison stopped before any round")
        return measured

    def serve_rounds(
        self,
        nodeid: str,
        one_round: Callable[[], Round | None],
        units: float,
        unit: str,
        failed: Callable[[], bool] = lambda: False,
    ) -> list[Round] | None:
        """Say the test is ready, then run a round per ``round`` until ``done``.

        Returns early, without a word, when ``failed()`` says the test failed in a
        round: the ``finished`` event that follows tells the controller.
        """
        self.channel.send({"event": "sized", "nodeid": nodeid, "units": units, "unit": unit})
        measured: list[Round] = []
        while self._receive().get("cmd") == "round":
            one = one_round()
            if one is None:
                self.channel.send({"event": "meter_failed"})
                return None
            if failed():
                return measured
            measured.append(one)
            value = paired_value(one, units)
            self.channel.send({"event": "round", "value": value, "round": to_plain(one)})
        return measured

    def _receive(self) -> dict[str, object]:
        try:
            return self.channel.receive()
        except ChannelClosed:
            # The controller is gone (Ctrl-C, a crash): nothing left to measure for.
            pytest.exit("pytest-energy ab: the controller went away", returncode=3)

    # -- the session (hooks of the registered plugin) ---------------------------------

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(f"{report.nodeid or 'collection'}: {_first_line(report)}")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.channel.send(
            {
                "event": "collected",
                "tests": [item.nodeid for item in session.items if is_ab_test(item)],
                "errors": self.collect_errors,
                "foreign": foreign_module(self.tree, self.roots),
                **_meters(session.config),
            }
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        """Run the tests the controller names until it says ``quit``."""
        if self.collect_errors:
            return True  # the controller was told and stops
        items = {item.nodeid: item for item in session.items}
        while True:
            command = self._receive()
            if command.get("cmd") != "test":
                return True
            item = items[str(command["nodeid"])]
            after = command.get("next")
            self.outcome, self.message = "passed", ""
            nextitem = items.get(str(after)) if after else None
            if not uses_benchmark(item):
                measure_plain(self, item, _recorder(session.config))
            item.ihook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            self.channel.send(
                {
                    "event": "finished",
                    "outcome": self.outcome,
                    "message": self.message,
                    "foreign": foreign_module(self.tree, self.roots),
                }
            )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed and self.outcome != "failed":
            self.outcome, self.message = "failed", _first_line(report)
        elif report.skipped and self.outcome == "passed":
            self.outcome, self.message = "skipped", _first_line(report)


def _recorder(config: pytest.Config) -> SessionRecorder | None:
    """The energy plugin's recorder: its meters and settings."""
    for plugin in config.pluginmanager.get_plugins():
        recorder = getattr(plugin, "recorder", None)
        if isinstance(recorder, SessionRecorder):
            return recorder
    return None


def _meters(config: pytest.Config) -> dict[str, object]:
    """What the session's recorder measures with, for the controller's results file."""
    recorder = _recorder(config)
    if recorder is not None:
        return {
            "method": recorder.method,
            "machine": to_plain(recorder.machine) if recorder.machine else None,
            "meters": [to_plain(m) for m in recorder.meter_records],
            "notices": list(recorder.notices),
            "failure": recorder.failure,
        }
    return {"failure": "the energy plugin is not active in the worker (is --energy refused?)"}


def _first_line(report: pytest.TestReport | pytest.CollectReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or str(report.longrepr or "")
    if isinstance(report.longrepr, tuple):  # a skip: (path, line, reason)
        text = str(report.longrepr[2])
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else report.outcome


# -- active only in a process the controller started -------------------------------

_TREE = os.environ.get(TREE_ENV)
if _TREE and os.environ.get(FD_ENV):
    for _root in reversed(import_roots(Path(_TREE), [])):
        sys.path.insert(0, str(_root))


def pytest_configure(config: pytest.Config) -> None:
    if not (_TREE and os.environ.get(FD_ENV)):
        return
    worker = Worker(Channel.inherited(), Path(_TREE), config)
    config.stash[ROUND_DRIVER] = worker
    config.pluginmanager.register(worker, "pytest-energy-ab-worker")
