"""The A/B controller: worker processes per tree, and the interleaved rounds of each test.

Workers are started in pairs, one per side, alternately (base 1, head 1, base 2,
...). For each test every worker of the pairs in use enters the test (fixtures,
warm-up and sizing as in a normal run) and then waits inside its benchmark; the
controller runs the rounds in the order base, head, head, base, ... across the
pairs, one round at a time (counters are machine-wide), until the test's share
of the time budget is spent, then lets the workers finish the test. A worker
that dies costs the test it was running (not gated, one line) and is replaced
for the next tests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_energy.ab.trees import Tree
from pytest_energy.ab.workers import START_TIMEOUT_S, WorkerGone, WorkerProcess
from pytest_energy.cli.common import CommandError
from pytest_energy.measure.rounds import interleaved_order
from pytest_energy.record import Round, from_plain

#: Every pair measures at least this many rounds per side: one base-first, one head-first.
MIN_CYCLES = 2
#: And at most this many, however much budget is left.
MAX_CYCLES = 20
#: A round may take this many times the longest round so far before its worker is
#: declared stuck (and at least ROUND_FLOOR_S).
ROUND_FACTOR = 20.0
ROUND_FLOOR_S = 60.0
#: Restarts of crashed workers per side before the comparison stops measuring.
RESTARTS_PER_SIDE = 6

SIDES = ("base", "head")


@dataclass
class SideResult:
    """What one side measured of one test: rounds per process pair, and how it ended."""

    rounds: dict[int, list[Round]] = field(default_factory=dict)
    values: dict[int, list[float]] = field(default_factory=dict)
    outcome: str = "passed"
    message: str = ""
    units: float = 1.0
    unit: str = "call"

    def end(self, outcome: str, message: str) -> None:
        if outcome != "passed" and self.outcome == "passed":
            self.outcome, self.message = outcome, message


@dataclass
class TestRun:
    """One compared test: both sides, the pairs of the screen and the extra pairs."""

    __test__ = False

    nodeid: str
    base: SideResult = field(default_factory=SideResult)
    head: SideResult = field(default_factory=SideResult)
    screen_slots: list[int] = field(default_factory=list)
    extra_slots: list[int] = field(default_factory=list)
    #: A worker crashed, a meter failed or the budget ran out: why it is not compared.
    problem: str = ""
    screen_note: str = ""
    #: Seconds the test takes at the fewest rounds (entering it, and MIN_CYCLES cycles),
    #: as measured: what fresh pairs would cost at least.
    least_s: float = 0.0

    def side(self, name: str) -> SideResult:
        return self.base if name == "base" else self.head

    def pairs(self, slots: Sequence[int]) -> list[tuple[list[float], list[float]]]:
        """(base values, head values) of each slot in ``slots`` that measured both sides."""
        return [
            (self.base.values[s], self.head.values[s])
            for s in slots
            if self.base.values.get(s) and self.head.values.get(s)
        ]


@dataclass
class Collected:
    """What the first workers of each side reported after collecting."""

    tests: dict[str, list[str]] = field(default_factory=dict)
    meters: dict[str, Any] = field(default_factory=dict)


class Controller:
    """Starts, drives and stops the workers of one comparison."""

    def __init__(
        self,
        trees: dict[str, Tree],
        *,
        subdir: Path,
        arguments: list[str],
        folder: Path,
        say: Callable[[str], None],
    ) -> None:
        self.trees = trees
        self.subdir = subdir
        self.arguments = arguments
        self.folder = folder
        self.say = say
        self.workers: dict[tuple[str, int], WorkerProcess] = {}
        self.collected = Collected()
        self.notices: list[str] = []
        self._generation = 0
        self._restarts = dict.fromkeys(SIDES, 0)
        self._longest_round = 0.0
        #: Workers inside the test being measured (they wait for "round" or "done").
        self._inside: list[WorkerProcess] = []

    # -- workers -------------------------------------------------------------------

    def start_pairs(self, slots: Sequence[int]) -> None:
        """Start one worker per side for each slot, alternately, and wait for each to collect."""
        started = []
        for slot in slots:
            for side in SIDES if slot % 2 == 0 else SIDES[::-1]:
                started.append(self._spawn(side, slot))
        for worker in started:
            self._collected(worker)

    def _spawn(self, side: str, slot: int) -> WorkerProcess:
        tree = self.trees[side]
        self._generation += 1
        worker = WorkerProcess.start(
            tree,
            slot,
            cwd=tree.path / self.subdir,
            arguments=self.arguments,
            folder=self.folder,
            generation=self._generation,
        )
        self.workers[side, slot] = worker
        return worker

    def _collected(self, worker: WorkerProcess) -> None:
        side, tree = worker.tree.side, worker.tree
        try:
            report = worker.expect("collected", timeout=START_TIMEOUT_S)
        except WorkerGone as exc:
            raise CommandError(
                f"the {side} tree ({tree.short}) could not start its tests: {exc}"
            ) from None
        errors = report.get("errors") or []
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise CommandError(
                f"the {side} tree ({tree.short}) fails to collect: {errors[0]}{more}"
            )
        if report.get("foreign"):
            raise CommandError(str(report["foreign"]))
        if report.get("failure"):
            raise CommandError(f"the {side} worker cannot measure: {report['failure']}")
        self.collected.tests.setdefault(side, list(report.get("tests") or []))
        if not self.collected.meters:
            self.collected.meters = {k: report.get(k) for k in ("method", "machine", "meters")}
            self.notices.extend(str(n) for n in report.get("notices") or [])

    def worker(self, side: str, slot: int) -> WorkerProcess:
        """The live worker of ``side`` in ``slot``, started afresh if the last one died."""
        worker = self.workers.get((side, slot))
        if worker is not None and worker.alive:
            return worker
        if self._restarts[side] >= RESTARTS_PER_SIDE:
            raise WorkerGone(f"{side} workers kept crashing ({RESTARTS_PER_SIDE} restarts)")
        self._restarts[side] += 1
        self.say(f"ab: starting a fresh {side} worker {slot + 1} in place of one that stopped")
        fresh = self._spawn(side, slot)
        self._collected(fresh)
        return fresh

    def stop(self) -> None:
        """Stop every worker: politely when it is idle, by signal otherwise."""
        for worker in self.workers.values():
            worker.quit()

    def kill(self) -> None:
        for worker in self.workers.values():
            worker.kill()

    # -- one test ------------------------------------------------------------------

    def measure(
        self, run: TestRun, slots: Sequence[int], next_test: str | None, share_s: float
    ) -> None:
        """Measure ``run`` on the process pairs ``slots`` within about ``share_s`` seconds."""
        self._inside = []
        began = time.monotonic()
        try:
            if self._enter(run, slots, next_test):
                entered = time.monotonic() - began
                per_cycle = self._rounds(run, slots, share_s)
                run.least_s = entered + MIN_CYCLES * per_cycle
        except WorkerGone as exc:
            run.problem = f"a worker process crashed while measuring it: {exc}"
        finally:
            self._leave(run)

    def _enter(self, run: TestRun, slots: Sequence[int], next_test: str | None) -> bool:
        """Start the test in every worker; False when a side ended it before its rounds."""
        for slot in slots:
            for side in SIDES if slot % 2 == 0 else SIDES[::-1]:
                worker = self.worker(side, slot)
                worker.send({"cmd": "test", "nodeid": run.nodeid, "next": next_test})
                message = worker.expect("sized", "finished")
                result = run.side(side)
                if message["event"] == "finished":
                    self._finished(run, side, message)
                    if result.outcome == "passed":
                        # Not a failure: this side has nothing to measure (a condition
                        # in the test, a plain test that is not marked).
                        result.end("skipped", "it did not call energy_benchmark")
                    return False
                self._inside.append(worker)
                result.units = float(message.get("units") or 1.0)
                result.unit = str(message.get("unit") or "call")
        return True

    def _rounds(self, run: TestRun, slots: Sequence[int], share_s: float) -> float:
        """Cycles of rounds until the share is spent; returns the seconds per cycle."""
        started = time.monotonic()
        cycle = 0
        while True:
            for k, slot in enumerate(slots):
                for role in interleaved_order(cycle + k):
                    side = "base" if role == "reference" else "head"
                    if not self._one_round(run, side, slot):
                        return (time.monotonic() - started) / max(cycle, 1)
            cycle += 1
            elapsed = time.monotonic() - started
            if cycle >= MAX_CYCLES or (cycle >= MIN_CYCLES and elapsed + elapsed / cycle > share_s):
                return elapsed / cycle

    def _one_round(self, run: TestRun, side: str, slot: int) -> bool:
        worker = self.workers[side, slot]
        timeout = max(ROUND_FLOOR_S, ROUND_FACTOR * self._longest_round)
        began = time.monotonic()
        worker.send({"cmd": "round"})
        message = worker.expect("round", "meter_failed", "finished", timeout=timeout)
        self._longest_round = max(self._longest_round, time.monotonic() - began)
        result = run.side(side)
        if message["event"] == "finished":
            # The function raised inside a round: the test failed on this side.
            self._inside.remove(worker)
            self._finished(run, side, message)
            return False
        if message["event"] == "meter_failed":
            # The benchmark gave up; the worker finishes the test on its own.
            run.problem = f"the meter failed in the {side} worker {slot + 1}"
            self._inside.remove(worker)
            self._finished(run, side, worker.expect("finished"))
            return False
        one = from_plain(Round, message["round"])
        value = float(message["value"])
        if not (math.isfinite(value) and value > 0):
            run.problem = f"the {side} side measured {value!r} J per {result.unit}"
            return False
        result.rounds.setdefault(slot, []).append(one)
        result.values.setdefault(slot, []).append(value)
        return True

    def _leave(self, run: TestRun) -> None:
        """Let every worker still inside the test finish it, and hear how it ended."""
        inside, self._inside = self._inside, []
        for worker in inside:
            if not worker.alive:
                continue
            try:
                worker.send({"cmd": "done"})
                self._finished(run, worker.tree.side, worker.expect("finished"))
            except WorkerGone as exc:
                run.problem = run.problem or f"a worker process crashed while finishing it: {exc}"

    def _finished(self, run: TestRun, side: str, message: dict[str, Any]) -> None:
        if message.get("foreign"):
            raise CommandError(str(message["foreign"]))
        run.side(side).end(str(message.get("outcome")), str(message.get("message") or ""))
