"""Plain tests in an A/B comparison: a test with the ``energy`` marker but no benchmark.

Such a test is compared only when marked; a round then runs the whole test
(setup, call, teardown) as many times as fill one window of the meter, each
round its own energy window, and the unit is "test". Unmarked plain tests are
not compared: one short window per process says little about a change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import pytest
from _pytest.runner import runtestprotocol

from pytest_energy.measure.rounds import RoundRunner
from pytest_energy.measure.sizing import calls_for_window, target_window
from pytest_energy.record import Round

if TYPE_CHECKING:
    from pytest_energy.measure.recorder import SessionRecorder


class RoundServer(Protocol):
    """The worker's side of the protocol (:meth:`pytest_energy.ab.worker.Worker.serve_rounds`)."""

    def serve_rounds(
        self,
        nodeid: str,
        one_round: Callable[[], Round | None],
        units: float,
        unit: str,
        failed: Callable[[], bool] = ...,
    ) -> list[Round] | None: ...


def measure_plain(worker: RoundServer, item: pytest.Item, recorder: SessionRecorder | None) -> None:
    """Warm up, size and serve the rounds of a plain test; the caller then runs it once
    more the usual way (its report, its teardown, the ``finished`` event)."""
    if recorder is None or recorder.meters is None:
        return
    failures: list[str] = []

    def run_once() -> None:
        reports = runtestprotocol(item, nextitem=item, log=False)
        failures.extend(r.nodeid for r in reports if r.failed)

    started = time.perf_counter()
    run_once()
    if failures:
        return  # the run that follows reports the failure
    elapsed = time.perf_counter() - started
    calls = calls_for_window(elapsed, target_window(recorder.meters.update_period_s, None))
    runner = RoundRunner(recorder, 1)
    worker.serve_rounds(
        item.nodeid,
        lambda: runner.round(run_once, calls, "candidate"),
        1.0,
        "test",
        failed=lambda: bool(failures),
    )
