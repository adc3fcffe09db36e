"""One A/B comparison from start to verdicts: screen every test, confirm the flagged ones.

The time budget covers the whole comparison (workers starting included). The
screen gets :data:`SCREEN_SHARE` of it, shared fairly among the tests (each
test's share is what is left over the tests still to measure); tests the screen
flags are measured again in fresh process pairs with what remains, up to
``max_processes`` per side, strongest suspects first when the rest cannot hold
them all, and decided on the screen's pairs and the fresh ones together
(:attr:`~pytest_energy.ab.judge.PairedTest.deciding`). Every test gets at
least :data:`~pytest_energy.ab.controller.MIN_CYCLES` rounds per side and pair,
even when that overruns the budget (said in a notice).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import field

from pytest_energy.ab.controller import Controller, TestRun
from pytest_energy.ab.judge import PairedTest, screen
from pytest_energy.frozen import frozen

#: The share of the time budget the screen may use; the rest confirms flagged tests.
SCREEN_SHARE = 0.7


@frozen
class Plan:
    """How much to measure: processes per side, the cap, the budget, the rule."""

    processes: int
    max_processes: int
    budget_s: float
    threshold: float
    margin: float


@frozen
class Measured:
    """What a comparison measured, before the verdicts."""

    runs: list[TestRun]
    new: list[str]
    removed: list[str]
    wall_s: float
    notices: list[str] = field(default_factory=list)


def compare(
    controller: Controller,
    plan: Plan,
    *,
    started: float,
    progress: Callable[[str], None],
) -> Measured:
    """Start the workers, measure the tests in both trees, confirm what the screen flags."""
    screen_slots = list(range(plan.processes))
    starting = time.monotonic()
    controller.start_pairs(screen_slots)
    startup_s = time.monotonic() - starting
    base = controller.collected.tests.get("base", [])
    head = controller.collected.tests.get("head", [])
    in_base = set(base)
    common = [t for t in head if t in in_base]
    runs = [TestRun(nodeid) for nodeid in common]
    notices: list[str] = []
    screen_end = started + plan.budget_s * SCREEN_SHARE
    _measure_all(controller, runs, screen_slots, screen_end, progress, "screen")
    for run in runs:
        run.screen_slots = screen_slots
    flagged = _flag(runs, plan)
    extra_slots = list(range(plan.processes, plan.max_processes))
    end = started + plan.budget_s
    confirmed = _fitting(flagged, startup_s, end) if extra_slots else []
    if confirmed:
        progress(
            f"ab: {len(flagged)} test(s) flagged by the screen; measuring "
            f"{len(confirmed)} of them again in {len(extra_slots)} fresh process pair(s)"
        )
        controller.start_pairs(extra_slots)
        _measure_all(controller, confirmed, extra_slots, end, progress, "confirm")
        for run in confirmed:
            run.extra_slots = extra_slots
    unconfirmed = [run for run in flagged if run not in confirmed]
    if unconfirmed:
        why = "no time budget left" if extra_slots else "--processes is at its cap"
        for run in unconfirmed:
            run.screen_note = run.screen_note.replace(
                "measured again in fresh process pairs", f"flagged, but {why} for fresh pairs"
            )
        notices.append(
            f"{len(unconfirmed)} test(s) flagged by the screen were decided on the screen's "
            f"pairs alone ({why} for fresh pairs; raise --budget to confirm them)"
        )
    wall = time.monotonic() - started
    if wall > plan.budget_s * 1.1 and wall - plan.budget_s > 5.0:
        notices.append(
            f"the comparison took {wall:.0f} s, over its {plan.budget_s:.0f} s budget: every "
            "test gets at least two rounds per side and process pair"
        )
    new = [t for t in head if t not in in_base]
    removed = [t for t in base if t not in set(head)]
    return Measured(runs=runs, new=new, removed=removed, wall_s=wall, notices=notices)


def _measure_all(
    controller: Controller,
    runs: Sequence[TestRun],
    slots: list[int],
    end: float,
    progress: Callable[[str], None],
    phase: str,
) -> None:
    for index, run in enumerate(runs):
        left = len(runs) - index
        share = max(end - time.monotonic(), 0.0) / left
        progress(
            f"ab: {phase} [{index + 1}/{len(runs)}] {run.nodeid} "
            f"({len(slots)} process pairs, about {share:.0f} s)"
        )
        after = runs[index + 1].nodeid if index + 1 < len(runs) else None
        controller.measure(run, slots, after, share)


def _flag(runs: Sequence[TestRun], plan: Plan) -> list[TestRun]:
    """The comparable tests the screen flags, strongest evidence first (lowest p, then
    highest ratio); each run keeps the screen's word."""
    comparable = [r for r in runs if comparable_run(r)]
    tests = [PairedTest(r.nodeid, r.pairs(r.screen_slots)) for r in comparable]
    flagged = []
    for run, result in zip(
        comparable, screen(tests, threshold=plan.threshold, margin=plan.margin), strict=True
    ):
        run.screen_note = result.reason
        if result.flagged:
            flagged.append((result.p_value or 0.0, -(result.ratio or 1.0), run))
    return [run for _, _, run in sorted(flagged, key=lambda f: f[:2])]


def _fitting(flagged: Sequence[TestRun], startup_s: float, end: float) -> list[TestRun]:
    """The flagged tests, strongest first, whose fresh pairs fit in the budget left.

    Fresh pairs cost their start (as long as the screen's took) and each test at
    least what it took on the screen at the fewest rounds. When not all fit, the
    ones the screen found most likely to have regressed go first: a small budget
    then still confirms the clearest suspect rather than nothing at all.
    """
    room = end - time.monotonic() - startup_s
    fitting = []
    for run in flagged:
        if run.least_s > room:
            break
        room -= run.least_s
        fitting.append(run)
    return fitting


def comparable_run(run: TestRun) -> bool:
    """Both sides passed and nothing stopped the measurement."""
    return not run.problem and run.base.outcome == "passed" and run.head.outcome == "passed"
