"""The per-test rule: a regression must be both material and certain.

A gated test's energies are compared as ``ratio = current / baseline`` of J per
unit of work, on the log scale. With a ``threshold`` (material size) and a
``margin`` (certainty), a test is a ``regression`` when the estimate is above
``1 + threshold`` *and* its Holm-adjusted one-sided p-value against
``ratio <= 1 + margin`` is at most ``alpha``; ``improvement`` symmetrically;
``unchanged`` when the 95 % interval stays below ``1 + threshold``;
``inconclusive`` otherwise; ``not_gated`` for a structural reason. The why of
every figure is in ``docs/gate.md``.

Pure functions over numbers: no pytest, no files, no meters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pytest_energy.record import FLAGS, Verdict, VerdictStatus
from pytest_energy.stats import LogRatio, history_log_ratio, welch_log_ratio

#: The displayed interval; "unchanged" means it lies below 1 + threshold.
DISPLAY_CONFIDENCE = 0.95

BaselineKind = Literal["rounds", "history"]


#: Measurement flags that forbid gating; "wrapped" is corrected, so it does not.
_BLOCKING_FLAGS = (
    "concurrent",
    "meter_failed",
    "counter_stalled",
    "below_resolution",
    "gpu_shared",
    "unstable",
)


@dataclass(frozen=True)
class GateInput:
    """One gated test: its baseline and current energies per unit of work.

    ``current`` holds this session's screening rounds (or all of its rounds
    when no screen ran, as in ``pytest-energy compare``); ``confirmation``
    the fresh rounds run after :func:`screen` flagged the test. ``threshold``
    and ``margin`` override the run's settings for this test (the
    ``max_regression`` marker). ``weight`` scales the test's mean in the suite
    total (1: J per unit; units per call: J per call).

    >>> GateInput("t", baseline=[1.0, 1.1], current=[1.2]).baseline
    (1.0, 1.1)
    """

    test_id: str
    baseline: Sequence[float]
    current: Sequence[float]
    confirmation: Sequence[float] = ()
    threshold: float | None = None
    margin: float | None = None
    method: str = "measured"
    #: Method of the stored baseline; None means the same as ``method``.
    baseline_method: str | None = None
    baseline_kind: BaselineKind = "rounds"
    weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("baseline", "current", "confirmation"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if self.threshold is not None and not self.threshold > 0:
            raise ValueError(f"{self.test_id}: threshold must be > 0, got {self.threshold!r}")
        if self.margin is not None and not self.margin >= 0:
            raise ValueError(f"{self.test_id}: margin must be >= 0, got {self.margin!r}")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"{self.test_id}: weight must be > 0, got {self.weight!r}")
        if self.baseline_kind not in ("rounds", "history"):
            raise ValueError(f"{self.test_id}: unknown baseline_kind {self.baseline_kind!r}")

    @property
    def deciding_rounds(self) -> tuple[float, ...]:
        """The rounds the decision uses: fresh confirmation rounds when there are any."""
        return tuple(self.confirmation or self.current)


def gate_problem(test: GateInput) -> str | None:
    """Why ``test`` cannot be gated, as one line, or None when it can.

    >>> gate_problem(GateInput("t", baseline=[1.0], current=[0.0]))
    'current energy 0.0 J per unit is not positive: a ratio needs positive energies'
    """
    if not test.baseline:
        return "no baseline for this test"
    if not test.current:
        return "no current rounds"
    baseline_method = test.baseline_method or test.method
    if baseline_method != test.method:
        return (
            f"baseline is {baseline_method}, this run is {test.method}: "
            "the gate never compares different methods"
        )
    for side, values in (
        ("baseline", test.baseline),
        ("current", test.current),
        ("confirmation", test.confirmation),
    ):
        for value in values:
            if not math.isfinite(value):
                return f"{side} energy {value!r} is not a finite number"
            if value <= 0:
                return (
                    f"{side} energy {value!r} J per unit is not positive: "
                    "a ratio needs positive energies"
                )
    if test.baseline_kind == "history" and len(test.baseline) < 2:
        return "the baseline history holds 1 run; 2 or more are needed to see run-to-run spread"
    return None


def not_gated(
    reason: str,
    *,
    method: str = "",
    threshold: float | None = None,
    baseline: float | None = None,
    current: float | None = None,
    kind: str = "baseline",
) -> Verdict:
    """The verdict for a test the gate does not judge, with the reason shown to users.

    >>> not_gated("no baseline for this test").status
    'not_gated'
    """
    return Verdict(
        status="not_gated",
        reason=reason,
        baseline=baseline,
        current=current,
        threshold=threshold,
        method=method,
        kind=kind,
    )


def not_gated_for_flags(flags: Sequence[str], *, method: str = "") -> Verdict | None:
    """A ``not_gated`` verdict when a measurement flag forbids gating, else None.

    >>> not_gated_for_flags(["wrapped"]) is None
    True
    >>> not_gated_for_flags(["concurrent"]).reason
    'concurrent: tests ran in parallel (pytest-xdist): counters are machine-wide'
    """
    for flag in _BLOCKING_FLAGS:
        if flag in flags:
            return not_gated(f"{flag}: {FLAGS[flag]}", method=method)
    return None


# --- the evidence of one comparison -----------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """One gateable test's comparison, before the multiplicity correction."""

    test: GateInput
    log_ratio: LogRatio
    threshold: float
    margin: float
    p_regression: float
    p_improvement: float


@dataclass(frozen=True)
class SuiteEvidence(Evidence):
    baseline_j: float = 0.0
    current_j: float = 0.0
    tests: int = 0


def weigh(test: GateInput, threshold: float, margin: float) -> Evidence | Verdict:
    problem = gate_problem(test)
    limit_threshold, limit_margin = limits(test, threshold, margin)
    if problem is not None:
        return not_gated(problem, method=test.method, threshold=limit_threshold)
    log_ratio = log_ratio_of(test, test.deciding_rounds)
    p_regression, p_improvement = p_values(log_ratio, limit_margin)
    return Evidence(
        test=test,
        log_ratio=log_ratio,
        threshold=limit_threshold,
        margin=limit_margin,
        p_regression=p_regression,
        p_improvement=p_improvement,
    )


def p_values(log_ratio: LogRatio, margin: float) -> tuple[float, float]:
    """One-sided p-values against "no regression beyond margin" and its mirror image.

    An improvement's p-value is shown only on improvement verdicts; when the
    estimate is not even below the improvement limit it is above 1/2 and is
    reported as 1, which changes no other test's Holm-adjusted value and
    saves the gate a t-tail evaluation per test.
    """
    improvement_limit = 1.0 / (1.0 + margin)
    if log_ratio.ratio < improvement_limit:
        p_improvement = log_ratio.p_below(improvement_limit)
    else:
        p_improvement = 1.0
    return log_ratio.p_above(1.0 + margin), p_improvement


def judge(evidence: Evidence, p_up: float, p_down: float, alpha: float, family: int) -> Verdict:
    """Classify one comparison, given its Holm-adjusted p-values."""
    ratio = evidence.log_ratio.ratio
    low, high = evidence.log_ratio.interval(DISPLAY_CONFIDENCE)
    material_up = 1.0 + evidence.threshold
    shown = f"{percent(ratio)} [{percent(low)}, {percent(high)}]"
    holm = f"Holm p={p_up:.2g} over {family}"
    status: VerdictStatus
    if ratio > material_up and p_up <= alpha:
        status, p_value = "regression", p_up
        reason = (
            f"{shown}: above the {pct(evidence.threshold)} threshold and certainly above "
            f"+{pct(evidence.margin)} ({holm} <= {alpha:g})"
        )
    elif ratio < 1.0 / material_up and p_down <= alpha:
        status, p_value = "improvement", p_down
        reason = (
            f"{shown}: below {percent(1.0 / material_up)} and certainly below "
            f"{percent(1.0 / (1.0 + evidence.margin))} "
            f"(Holm p={p_down:.2g} over {family} <= {alpha:g})"
        )
    elif high < material_up:
        status, p_value = "unchanged", p_up
        reason = f"{shown}: the 95% interval stays below the {pct(evidence.threshold)} threshold"
    else:
        status, p_value = "inconclusive", p_up
        reason = f"{shown}: {_missing_evidence(evidence, p_up, alpha, holm)}"
    baseline, current = _centres(evidence)
    return Verdict(
        status=status,
        reason=f"{reason}; {_sizes(evidence)}",
        ratio=ratio,
        ci_low=low,
        ci_high=high,
        baseline=baseline,
        current=current,
        threshold=evidence.threshold,
        method=evidence.test.method,
        p_value=p_value,
    )


def _missing_evidence(evidence: Evidence, p_up: float, alpha: float, holm: str) -> str:
    if math.isinf(evidence.log_ratio.se):
        return "one value on each side leaves no spread to judge the change by"
    if evidence.log_ratio.ratio > 1.0 + evidence.threshold:
        return (
            f"above the {pct(evidence.threshold)} threshold but not certain "
            f"({holm} > {alpha:g}); more rounds or a quieter machine would decide"
        )
    return (
        f"the 95% interval reaches the {pct(evidence.threshold)} threshold; "
        "too little evidence to call it unchanged"
    )


# --- Holm's step-down procedure ----------------------------------------------------------------


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order: reject where adjusted p <= alpha.

    The k-th smallest of m p-values is multiplied by m - k + 1, then made
    non-decreasing in that order (the step-down stops at the first failure).

    >>> holm_adjust([0.01, 0.04, 0.03, 0.005])
    [0.03, 0.06, 0.06, 0.02]
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def holm_reject(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Which hypotheses Holm's procedure rejects at family-wise level ``alpha``.

    >>> holm_reject([0.01, 0.04, 0.03, 0.005], 0.05)
    [True, False, False, True]
    """
    return [p <= alpha for p in holm_adjust(p_values)]


# --- helpers -----------------------------------------------------------------------------------


def check_settings(*, alpha: float, threshold: float, margin: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be within (0, 1), got {alpha!r}")
    if not threshold > 0.0:
        raise ValueError(f"threshold must be > 0, got {threshold!r}")
    if not margin >= 0.0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")


def limits(test: GateInput, threshold: float, margin: float) -> tuple[float, float]:
    """The test's threshold and margin; a margin never exceeds its threshold."""
    limit_threshold = test.threshold if test.threshold is not None else threshold
    limit_margin = test.margin if test.margin is not None else margin
    return limit_threshold, min(limit_margin, limit_threshold)


def log_ratio_of(test: GateInput, rounds: Sequence[float]) -> LogRatio:
    if test.baseline_kind == "history":
        return history_log_ratio(test.baseline, rounds)
    return welch_log_ratio(test.baseline, rounds)


def _centres(evidence: Evidence) -> tuple[float, float]:
    """Geometric means, so that current / baseline equals the reported ratio."""
    if isinstance(evidence, SuiteEvidence):
        return evidence.baseline_j, evidence.current_j
    test = evidence.test
    baseline = math.exp(sum([math.log(v) for v in test.baseline]) / len(test.baseline))
    return baseline, baseline * evidence.log_ratio.ratio


def _sizes(evidence: Evidence) -> str:
    if isinstance(evidence, SuiteEvidence):
        return f"total of {count(evidence.tests, 'test')}"
    test = evidence.test
    stored = count(len(test.baseline), "run" if test.baseline_kind == "history" else "round")
    if test.confirmation:
        return f"baseline {stored} vs {count(len(test.confirmation), 'confirmation round')}"
    return f"baseline {stored} vs {count(len(test.current), 'round')}"


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def percent(ratio: float) -> str:
    """A ratio as a signed change: 1.123 -> '+12.3%'."""
    if math.isinf(ratio):
        return "+inf%"
    return f"{100.0 * (ratio - 1.0):+.1f}%"


def pct(fraction: float) -> str:
    return f"{100.0 * fraction:g}%"
