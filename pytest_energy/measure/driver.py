"""Rounds driven from outside the test: the hook ``pytest-energy ab`` workers use.

A plugin that sets :data:`ROUND_DRIVER` in ``config.stash`` takes over a
benchmark's rounds: after the usual warm-up and sizing, the benchmark hands it a
function that runs one round, and the driver calls it as often as it is told
(an A/B worker, told by its controller, so that base and head rounds alternate
across processes). Without a driver, nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import pytest

from pytest_energy.measure.rounds import RoundRunner
from pytest_energy.record import Round


class RoundDriver(Protocol):
    """Runs a benchmark's rounds when told to.

    ``drive`` calls ``one_round`` once per round it is asked for and returns the
    rounds measured, or None when the meter failed.
    """

    def drive(
        self, nodeid: str, one_round: Callable[[], Round | None], units: float, unit: str
    ) -> list[Round] | None: ...


#: Set in ``config.stash`` by a plugin that drives rounds itself (an A/B worker).
ROUND_DRIVER = pytest.StashKey[RoundDriver]()


def round_by_round(
    runner: RoundRunner,
    call: Callable[[], object],
    calls: int,
    setup: Callable[[], object] | None,
    pause: Callable[[], None],
) -> Callable[[], Round | None]:
    """One candidate round per call, run as the benchmark's own rounds are."""
    done = [0]

    def one_round() -> Round | None:
        if setup is not None and done[0] > 0:
            setup()  # pedantic: the first round's setup ran before its first call
        done[0] += 1
        pause()
        return runner.round(call, calls, "candidate")

    return one_round
