"""One A/B comparison from start to verdicts: screen every test, confirm the flagged ones.

The time budget covers the whole comparison (workers starting included). The
screen gets :data:`SCREEN_SHARE` of it, shared fairly among the tests (each
test's share is what is left over the tests still to measure); tests the screen
flags are measured again in fresh process pairs with what remains, up to
``max_processes`` per side, and decided on those pairs alone. Every test gets at
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
    # Fresh pairs only when the budget holds their start and the flagged tests' minimum.
    confirm_s = startup_s + sum(run.least_s for run in flagged)
    if flagged and extra_slots and time.monotonic() + confirm_s <= end:
        progress(
            f"ab: {len(flagged)} test(s) flagged by the screen; measuring them again in "
            f"{len(extra_slots)} fresh process pair(s)"
        )
        controller.start_pairs(extra_slots)
        _measure_all(controller, flagged, extra_slots, end, progress, "confirm")
        for run in flagged:
            run.extra_slots = extra_slots
    elif flagged:
        why = "no time budget left" if extra_slots else "--processes is at its cap"
        notices.append(
            f"{len(flagged)} test(s) flagged by the screen were decided on the screen's "
            f"pairs ({why} for fresh pairs)"
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
    """The comparable tests the screen flags; each run keeps the screen's word."""
    comparable = [r for r in runs if comparable_run(r)]
    tests = [PairedTest(r.nodeid, r.pairs(r.screen_slots)) for r in comparable]
    flagged = []
    for run, result in zip(
        comparable, screen(tests, threshold=plan.threshold, margin=plan.margin), strict=True
    ):
        run.screen_note = result.reason
        if result.flagged:
            flagged.append(run)
    return flagged


def comparable_run(run: TestRun) -> bool:
    """Both sides passed and nothing stopped the measurement."""
    return not run.problem and run.base.outcome == "passed" and run.head.outcome == "passed"
