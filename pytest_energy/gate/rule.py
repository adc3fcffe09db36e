"""The per-test rule: a regression must be both material and certain, judged per process.

A gated test's energies are compared as ``ratio = current / baseline`` of J per
unit of work, on the log scale. The unit of replication is the *process*: each
process carries its own offset (memory layout, hash seed, GPU state) that more
rounds inside it cannot shrink, so a test's observations are its processes'
mean log energies, and the spread that decides is the spread *between
processes* (``docs/gate.md``). With a ``threshold`` (material size) and a
``margin`` (certainty), a test is a ``regression`` when the estimate is above
``1 + threshold`` *and* its Holm-adjusted one-sided p-value against
``ratio <= 1 + margin`` is at most ``alpha``; ``improvement`` symmetrically;
``unchanged`` when the 95 % interval stays below ``1 + threshold``;
``inconclusive`` otherwise; ``not_gated`` for a structural reason.

Pure functions over numbers: no pytest, no files, no meters.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from pytest_energy.frozen import frozen
from pytest_energy.record import FLAGS, Verdict, VerdictStatus
from pytest_energy.stats import LogRatio, percentage, sample_variance

#: The displayed interval; "unchanged" means it lies below 1 + threshold.
DISPLAY_CONFIDENCE = 0.95

#: Measurement flags that forbid gating; "wrapped" is corrected, so it does not.
_BLOCKING_FLAGS = (
    "concurrent",
    "meter_failed",
    "counter_stalled",
    "below_resolution",
    "gpu_shared",
)

Processes = tuple[tuple[float, ...], ...]


def _processes(value: object, name: str) -> Processes:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise TypeError(f"{name} must be a sequence of processes, each a sequence of values")
    groups = tuple(tuple(float(v) for v in group) for group in value)
    if any(not group for group in groups):
        raise ValueError(f"{name}: a process must have at least one value")
    return groups


@frozen
class GateInput:
    """One gated test: its energies per unit of work, grouped by the process that measured them.

    ``baseline`` holds the stored processes (or one single-value "process" per
    earlier run of the history), ``current`` this session's screening process(es),
    ``confirmation`` the fresh processes started after the screen flagged the test.
    ``threshold`` and ``margin`` override the run's settings for this test (the
    ``max_regression`` marker). ``weight`` scales the test's energy in the suite total.

    >>> GateInput("t", baseline=[[1.0, 1.1], [1.05]], current=[[1.2]]).baseline
    ((1.0, 1.1), (1.05,))
    """

    test_id: str
    #: Tuples of tuples once built; any sequence of sequences of floats is accepted.
    baseline: Sequence[Sequence[float]]
    current: Sequence[Sequence[float]]
    confirmation: Sequence[Sequence[float]] = ()
    threshold: float | None = None
    margin: float | None = None
    method: str = "measured"
    #: Method of the stored baseline; None means the same as ``method``.
    baseline_method: str | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("baseline", "current", "confirmation"):
            object.__setattr__(self, name, _processes(getattr(self, name), name))
        if self.threshold is not None and not self.threshold > 0:
            raise ValueError(f"{self.test_id}: threshold must be > 0, got {self.threshold!r}")
        if self.margin is not None and not self.margin >= 0:
            raise ValueError(f"{self.test_id}: margin must be >= 0, got {self.margin!r}")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"{self.test_id}: weight must be > 0, got {self.weight!r}")

    @property
    def deciding(self) -> Sequence[Sequence[float]]:
        """The processes the decision uses: fresh confirmation processes when there are any."""
        return self.confirmation or self.current


def gate_problem(test: GateInput) -> str | None:
    """Why ``test`` cannot be gated, as one line, or None when it can.

    >>> gate_problem(GateInput("t", baseline=[[1.0]], current=[[0.0]]))
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
    for side, groups in (
        ("baseline", test.baseline),
        ("current", test.current),
        ("confirmation", test.confirmation),
    ):
        for value in (v for group in groups for v in group):
            if not math.isfinite(value):
                return f"{side} energy {value!r} is not a finite number"
            if value <= 0:
                return (
                    f"{side} energy {value!r} J per unit is not positive: "
                    "a ratio needs positive energies"
                )
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


# --- the spread between processes -------------------------------------------------------------


def log_means(groups: Sequence[Sequence[float]]) -> list[float]:
    """Each process's mean log energy: the observation the gate counts once per process."""
    return [statistics.fmean(math.log(v) for v in group) for group in groups]


@frozen
class Spread:
    """The variance of process means (log scale), and its degrees of freedom."""

    variance: float
    df: float

    @classmethod
    def of(cls, *sides: Sequence[float]) -> Spread:
        """Pooled over sides whose process means may differ in level (baseline, current)."""
        squares, df = 0.0, 0
        for means in sides:
            if len(means) > 1:
                squares += sample_variance(means) * (len(means) - 1)
                df += len(means) - 1
        return cls(squares / df if df else math.nan, float(df))

    @classmethod
    def pooled(cls, spreads: Sequence[Spread]) -> Spread:
        known = [s for s in spreads if s.df > 0]
        df = sum(s.df for s in known)
        if not df:
            return cls(math.nan, 0.0)
        return cls(sum(s.variance * s.df for s in known) / df, df)


# --- the evidence of one comparison -----------------------------------------------------------


@frozen
class Evidence:
    """One gateable test's comparison, before the multiplicity correction."""

    test: GateInput
    log_ratio: LogRatio
    threshold: float
    margin: float
    p_regression: float
    p_improvement: float
    #: "its own" when the test's spread between processes was larger than the others'.
    spread_source: str = "pooled"


@frozen
class SuiteEvidence(Evidence):
    baseline_j: float = 0.0
    current_j: float = 0.0
    tests: int = 0


def process_ratio(
    baseline: Sequence[Sequence[float]], current: Sequence[Sequence[float]], spread: Spread
) -> LogRatio:
    """The log ratio of current to baseline process means, with the spread that applies.

    >>> r = process_ratio(((10.0,), (10.2,), (9.8,)), ((11.0,),), Spread(0.0004, 8))
    >>> round(r.ratio, 3), round(r.se, 4), r.df
    (1.1, 0.0231, 8)
    """
    base, cur = log_means(baseline), log_means(current)
    estimate = statistics.fmean(cur) - statistics.fmean(base)
    if spread.df <= 0 or not math.isfinite(spread.variance):
        return LogRatio(estimate=estimate, se=math.inf, df=math.inf)
    se = math.sqrt(spread.variance * (1.0 / len(base) + 1.0 / len(cur)))
    if se == 0.0:
        return LogRatio(estimate=estimate, se=0.0, df=math.inf)
    return LogRatio(estimate=estimate, se=se, df=spread.df)


def weigh(
    test: GateInput, threshold: float, margin: float, spread: Spread, source: str = "pooled"
) -> Evidence | Verdict:
    """The evidence of one test under ``spread``, or its not-gated verdict."""
    problem = gate_problem(test)
    limit_threshold, limit_margin = limits(test, threshold, margin)
    if problem is not None:
        return not_gated(problem, method=test.method, threshold=limit_threshold)
    log_ratio = process_ratio(test.baseline, test.deciding, spread)
    p_regression, p_improvement = p_values(log_ratio, limit_margin)
    return Evidence(
        test=test,
        log_ratio=log_ratio,
        threshold=limit_threshold,
        margin=limit_margin,
        p_regression=p_regression,
        p_improvement=p_improvement,
        spread_source=source,
    )


def p_values(log_ratio: LogRatio, margin: float) -> tuple[float, float]:
    """One-sided p-values against "no regression beyond margin" and its mirror image.

    An improvement's p-value is shown only on improvement verdicts; when the
    estimate is not even below the improvement limit it is above 1/2 and is
    reported as 1, which changes no other test's Holm-adjusted value.
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
    low, high = displayed_interval(evidence.log_ratio)
    material_up = 1.0 + evidence.threshold
    shown = shown_change(ratio, low, high)
    holm = f"Holm p={p_up:.2g} over {family}"
    status: VerdictStatus
    if ratio > material_up and p_up <= alpha:
        status, p_value = "regression", p_up
        reason = (
            f"{shown}: above the {percentage(evidence.threshold)} threshold and certainly above "
            f"+{percentage(evidence.margin)} ({holm} <= {alpha:g})"
        )
    elif ratio < 1.0 / material_up and p_down <= alpha:
        status, p_value = "improvement", p_down
        reason = (
            f"{shown}: below {percent(1.0 / material_up)} and certainly below "
            f"{percent(1.0 / (1.0 + evidence.margin))} "
            f"(Holm p={p_down:.2g} over {family} <= {alpha:g})"
        )
    elif high is not None and high < material_up:
        status, p_value = "unchanged", p_up
        reason = (
            f"{shown}: the 95% interval stays below the {percentage(evidence.threshold)} threshold"
        )
    else:
        status, p_value = "inconclusive", p_up
        reason = f"{shown}: {missing_evidence(evidence, p_up, alpha, holm)}"
    baseline, current = centres(evidence)
    return Verdict(
        status=status,
        reason=f"{reason}; {sizes(evidence)}",
        ratio=ratio,
        ci_low=low,
        ci_high=high,
        baseline=baseline,
        current=current,
        threshold=evidence.threshold,
        method=evidence.test.method,
        p_value=p_value,
    )


def missing_evidence(evidence: Evidence, p_up: float, alpha: float, holm: str) -> str:
    if math.isinf(evidence.log_ratio.se):
        return (
            "the spread between processes is unknown (one process on each side); "
            "save the baseline from several processes (--energy-processes)"
        )
    if evidence.log_ratio.ratio > 1.0 + evidence.threshold:
        return (
            f"above the {percentage(evidence.threshold)} threshold but not certain "
            f"({holm} > {alpha:g}); more processes or a quieter machine would decide"
        )
    return (
        f"the 95% interval reaches the {percentage(evidence.threshold)} threshold; "
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


def centres(evidence: Evidence) -> tuple[float, float]:
    """Geometric means, so that current / baseline equals the reported ratio."""
    if isinstance(evidence, SuiteEvidence):
        return evidence.baseline_j, evidence.current_j
    baseline = math.exp(statistics.fmean(log_means(evidence.test.baseline)))
    return baseline, baseline * evidence.log_ratio.ratio


def sizes(evidence: Evidence) -> str:
    if isinstance(evidence, SuiteEvidence):
        return f"total of {count(evidence.tests, 'test')}"
    test = evidence.test
    stored = count(len(test.baseline), "process")
    if test.confirmation:
        deciding = count(len(test.confirmation), "fresh process", "fresh processes")
    else:
        deciding = count(len(test.current), "process") + " of this session"
    spread = " (its own spread between processes)" if evidence.spread_source == "own" else ""
    return f"baseline {stored} vs {deciding}{spread}"


def count(n: int, noun: str, plural: str | None = None) -> str:
    if n == 1:
        return f"1 {noun}"
    return f"{n} {plural or (noun + 'es' if noun.endswith('s') else noun + 's')}"


def percent(ratio: float) -> str:
    """A ratio as a signed change: 1.123 -> '+12.3%'."""
    if math.isinf(ratio):
        return "+inf%"
    return f"{100.0 * (ratio - 1.0):+.1f}%"


def displayed_interval(log_ratio: LogRatio) -> tuple[float | None, float | None]:
    """The 95 % interval of the ratio, or ``(None, None)`` when the data give none.

    With no spread to estimate (one process on each side, nothing to pool) the
    interval is ``[0, inf]``: written down, its 0 would read as a measured bound.

    >>> displayed_interval(LogRatio(estimate=0.0, se=math.inf, df=math.inf))
    (None, None)
    """
    low, high = log_ratio.interval(DISPLAY_CONFIDENCE)
    if low > 0 and math.isfinite(high):
        return low, high
    return None, None


def shown_change(ratio: float, low: float | None, high: float | None) -> str:
    """The change with its interval, ``+10.0% [+5.2%, +15.0%]``, or that it has none."""
    if low is None or high is None:
        return f"{percent(ratio)} (no interval)"
    return f"{percent(ratio)} [{percent(low)}, {percent(high)}]"
