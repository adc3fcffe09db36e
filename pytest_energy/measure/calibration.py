"""The calibration workload: fixed work whose energy should not change within a session.

Two uses: interleaved with a benchmark's calls, its energy normalizes the
benchmark's (the model meter on a shared VM, where CPU speed moves by half
within seconds); measured at the start and the end of a gated session, a change
says the machine drifted.
"""

from __future__ import annotations


def calibration_work() -> int:
    """A fixed, deterministic CPU workload: the same instructions every time.

    About 1 ms here. Much smaller calls normalize worse (measured: 2 % round-to-round
    CV at 0.1 ms against 0.6 % at 1 ms), as call overhead starts to dominate them.
    """
    total = 0
    for i in range(20_000):
        total += i * i % 7
    return total
