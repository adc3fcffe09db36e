"""Session stability: was the machine steady enough for its energies to fail a build?

The drift check measures the calibration workload in the meter's own domain (a
CPU loop for RAPL and the model, a GPU matmul for NVML) at the start and the
end of the session. An unstable session does not switch the gate off: a
regression whose 95 % lower bound clears the threshold even after allowing for
the measured drift still fails the build (:func:`survives_drift`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from pytest_energy.config import defaults
from pytest_energy.frozen import frozen
from pytest_energy.gate.rule import percent
from pytest_energy.record import Verdict
from pytest_energy.stats import percentage, welch_log_ratio


@frozen
class Stability:
    """Whether the session was steady enough for its energies to fail a build."""

    unstable: bool
    reason: str
    #: Relative change of the calibration workload's energy, end over start.
    drift: float | None
    #: Tests whose round-to-round CV exceeded the limit (gate them as not_gated).
    noisy_tests: tuple[str, ...] = ()


#: A drift is believed only when start and end differ beyond their windows' own noise
#: at this two-sided level: one 2-s GPU window in five read ~5 % high on an H200
#: (benchmarks/gpu_check.py), enough to fake a drift out of three windows' median.
DRIFT_SIGNIFICANCE = 0.05


def session_stability(
    calibration_start: Sequence[float],
    calibration_end: Sequence[float],
    round_cvs: Mapping[str, float],
    *,
    max_drift: float = defaults.MAX_DRIFT,
    max_cv: float = defaults.CV_LIMIT,
) -> Stability:
    """Judge the session from its calibration workload and its tests' round CVs.

    The session is unstable when the calibration workload's energy moved by more
    than ``max_drift`` between the start and the end of the session (thermal
    state, clocks or background load changed) *and* by more than its windows'
    own noise explains (Welch's t on log energies, two-sided p below
    :data:`DRIFT_SIGNIFICANCE`), or when the median round-to-round CV of the tests
    exceeds ``max_cv`` (the machine was noisy throughout). Single tests above
    ``max_cv`` are listed in ``noisy_tests`` without making the session unstable.

    >>> s = session_stability([100.0, 100.4, 100.2], [103.1, 102.9, 103.0], {"t": 0.01})
    >>> s.unstable, round(s.drift, 3)
    (True, 0.028)
    >>> s.reason
    'calibration workload drifted +2.8% between session start and end (limit 2%)'
    >>> session_stability([100.0, 105.0, 100.0], [100.0, 100.0, 104.0], {}).unstable
    False
    """
    reasons = []
    drift: float | None = None
    if calibration_start and calibration_end:
        if min(calibration_start) > 0 and min(calibration_end) > 0:
            change = welch_log_ratio(calibration_start, calibration_end)
            drift = change.ratio - 1.0
            # Single windows show no noise of their own: the limit alone decides then.
            chance = 2.0 * min(change.p_above(1.0), change.p_below(1.0))
            beyond_noise = math.isinf(change.se) or chance < DRIFT_SIGNIFICANCE
            if abs(drift) > max_drift and beyond_noise:
                reasons.append(
                    f"calibration workload drifted {percent(1.0 + drift)} between session "
                    f"start and end (limit {percentage(max_drift)})"
                )
        else:
            reasons.append(
                f"calibration workload read {min(calibration_start):g} J at the start and "
                f"{min(calibration_end):g} J at the end: not positive, the meter is suspect"
            )
    noisy = tuple(name for name, cv in round_cvs.items() if not cv <= max_cv)
    if round_cvs:
        typical = statistics.median(round_cvs.values())
        if not typical <= max_cv:
            reasons.append(
                f"median round-to-round CV {100 * typical:.1f}% across {len(round_cvs)} "
                f"tests exceeds the {percentage(max_cv)} limit"
            )
    return Stability(
        unstable=bool(reasons), reason="; ".join(reasons), drift=drift, noisy_tests=noisy
    )


def drift_allowance(threshold: float, drift: float | None) -> float:
    """The ratio a regression's lower bound must clear in an unstable session.

    >>> round(drift_allowance(0.05, -0.10), 3)
    1.155
    """
    return (1.0 + threshold) * (1.0 + abs(drift or 0.0))


def survives_drift(verdict: Verdict, drift: float | None) -> bool:
    """Whether a regression is proven even if the whole measured drift were against it."""
    if verdict.status != "regression" or verdict.ci_low is None or verdict.threshold is None:
        return False
    return verdict.ci_low > drift_allowance(verdict.threshold, drift)
