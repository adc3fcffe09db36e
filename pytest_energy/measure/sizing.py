"""How long a measurement window must be for a meter, and how many calls fill it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

#: At least this many counter periods per round window (window.RESOLUTION_PERIODS
#: says what 10 buy; 20 keep quantisation under ~1 % per round at steady power).
ROUND_PERIODS = 20
#: Rounds shorter than this are dominated by the cost of reading the meters.
MIN_ROUND_S = 0.1
MAX_CALLS_PER_ROUND = 10_000_000


def target_window(update_period_s: float, window: float | None) -> float:
    """How long one round should last for this meter."""
    if window is not None:
        return window
    return max(ROUND_PERIODS * update_period_s, MIN_ROUND_S)


def calls_for_window(per_call_s: float, target_s: float) -> int:
    """Calls per round so that a round lasts at least ``target_s``."""
    if per_call_s <= 0:
        return MAX_CALLS_PER_ROUND
    return max(1, min(MAX_CALLS_PER_ROUND, math.ceil(target_s / per_call_s)))


#: The pilot's last batch is timed this many times and the fastest timing kept.
PILOT_TIMINGS = 3


def time_per_call(call: Callable[[], object], target_s: float) -> float:
    """Wall time of one call, from growing batches until a batch lasts a tenth of a round."""
    batch = 1
    while True:
        elapsed = _timed(call, batch)
        if elapsed >= target_s / 10 or batch >= MAX_CALLS_PER_ROUND:
            return _fastest(call, batch, elapsed) / batch
        batch *= 2 if elapsed <= 0 else max(2, min(10, math.ceil(target_s / 10 / elapsed)))


def _timed(call: Callable[[], object], batch: int) -> float:
    start = time.perf_counter()
    for _ in range(batch):
        call()
    return time.perf_counter() - start


def _fastest(call: Callable[[], object], batch: int, elapsed: float) -> float:
    """The fastest of :data:`PILOT_TIMINGS` timings of the final batch.

    On an oversubscribed machine the process is descheduled for milliseconds at a
    time: that makes a batch slow, never fast. A 20-ms pilot batch that lost 50 ms
    sizes the model meter's 0.2-s rounds at 57 ms, below its 0.1-s resolution, so
    every round is flagged ``below_resolution`` and the test is not gated. A batch
    of one call is a call long enough for that not to matter, and timing it again
    would cost whole calls, so it is timed once.
    """
    if batch == 1:
        return elapsed
    for _ in range(PILOT_TIMINGS - 1):
        elapsed = min(elapsed, _timed(call, batch))
    return elapsed
