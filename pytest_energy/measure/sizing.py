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


def time_per_call(call: Callable[[], object], target_s: float) -> float:
    """Wall time of one call, from doubling batches until a batch lasts a tenth of a round."""
    batch = 1
    while True:
        start = time.perf_counter()
        for _ in range(batch):
            call()
        elapsed = time.perf_counter() - start
        if elapsed >= target_s / 10 or batch >= MAX_CALLS_PER_ROUND:
            return elapsed / batch
        batch *= 2 if elapsed <= 0 else max(2, min(10, math.ceil(target_s / 10 / elapsed)))
