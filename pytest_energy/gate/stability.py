"""Session stability: was the machine steady enough for its energies to fail a build?

The drift check measures the calibration workload in the meter's own domain (a
CPU loop for RAPL and the model, a GPU matmul for NVML) at the start and the
end of the session. An unstable session does not switch the gate off: a
regression whose 95 % lower bound clears the threshold even after allowing for
the measured drift still fails the build (:func:`survives_drift`).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pytest_energy.config import defaults
from pytest_energy.gate.rule import pct, percent
from pytest_energy.record import Verdict


@dataclass(frozen=True)
class Stability:
    """Whether the session was steady enough for its energies to fail a build."""

    unstable: bool
    reason: str
    #: Relative change of the calibration workload's energy, end over start.
    drift: float | None
    #: Tests whose round-to-round CV exceeded the limit (gate them as not_gated).
    noisy_tests: tuple[str, ...] = ()


def session_stability(
    calibration_start: Sequence[float],
    calibration_end: Sequence[float],
    round_cvs: Mapping[str, float],
    *,
    max_drift: float = defaults.MAX_DRIFT,
    max_cv: float = defaults.CV_LIMIT,
) -> Stability:
    """Judge the session from its calibration workload and its tests' round CVs.

    The session is unstable when the calibration workload's energy (median of
    its repetitions) moved by more than ``max_drift`` between the start and the
    end of the session (thermal state, clocks or background load changed), or
    when the median round-to-round CV of the tests exceeds ``max_cv`` (the
    machine was noisy throughout). Single tests above ``max_cv`` are listed in
    ``noisy_tests`` without making the session unstable.

    >>> s = session_stability([100.0, 100.4], [103.1, 102.9], {"t": 0.01})
    >>> s.unstable, round(s.drift, 3)
    (True, 0.028)
    >>> s.reason
    'calibration workload drifted +2.8% between session start and end (limit 2%)'
    """
    reasons = []
    drift: float | None = None
    if calibration_start and calibration_end:
        start = statistics.median(calibration_start)
        end = statistics.median(calibration_end)
        if start > 0 and end > 0:
            drift = end / start - 1.0
            if abs(drift) > max_drift:
                reasons.append(
                    f"calibration workload drifted {percent(1.0 + drift)} between session "
                    f"start and end (limit {pct(max_drift)})"
                )
        else:
            reasons.append(
                f"calibration workload read {start:g} J at the start and {end:g} J at the end: "
                "not positive, the meter is suspect"
            )
    noisy = tuple(name for name, cv in round_cvs.items() if not cv <= max_cv)
    if round_cvs:
        typical = statistics.median(round_cvs.values())
        if not typical <= max_cv:
            reasons.append(
                f"median round-to-round CV {100 * typical:.1f}% across {len(round_cvs)} "
                f"tests exceeds the {pct(max_cv)} limit"
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
