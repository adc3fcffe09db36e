"""The suite check: the total energy of all gated tests, baseline against now.

Noise averages out across tests, so many small regressions that no single test
can prove show up here. It is one more hypothesis in the tests' Holm family
(:func:`pytest_energy.gate.decision.evaluate`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from pytest_energy.config import defaults
from pytest_energy.gate.rule import (
    DISPLAY_CONFIDENCE,
    GateInput,
    SuiteEvidence,
    check_settings,
    gate_problem,
    judge,
    p_values,
)
from pytest_energy.record import SuiteCheck, VerdictStatus
from pytest_energy.stats import LogRatio, sample_variance


def suite_check(
    tests: Sequence[GateInput],
    *,
    alpha: float = defaults.ALPHA,
    threshold: float = defaults.THRESHOLD,
    margin: float = defaults.MARGIN,
) -> SuiteCheck:
    """Total energy of the gated tests, baseline against now, judged like one test at ``alpha``.

    The total is the sum of each test's mean J per unit times its ``weight``,
    over the tests that can be gated; the screening rounds (``current``) are
    used, so that flagged tests count the same way as the rest. The interval
    of the log of the ratio of totals comes from the delta method with
    Welch-Satterthwaite degrees of freedom. Noise averages out across tests,
    so many small regressions that no single test can prove show up here.
    :func:`evaluate` runs the same check inside the tests' Holm family.

    >>> base = (10.0, 10.2, 9.8, 10.1, 9.9)
    >>> up = tuple(v * 1.08 for v in base)
    >>> check = suite_check([GateInput(f"t{i}", base, current=up) for i in range(20)])
    >>> check.status, round(check.ratio, 2), check.tests
    ('regression', 1.08, 20)
    """
    check_settings(alpha=alpha, threshold=threshold, margin=margin)
    suite = suite_evidence(tests, threshold, margin)
    if suite is None:
        return SuiteCheck(status="not_gated", tests=0)
    verdict = judge(suite, suite.p_regression, suite.p_improvement, alpha, 1)
    return suite_record(suite, verdict.status)


def suite_evidence(
    tests: Sequence[GateInput], threshold: float, margin: float
) -> SuiteEvidence | None:
    gated = [t for t in tests if gate_problem(t) is None]
    if not gated:
        return None
    totals = {"baseline": 0.0, "current": 0.0}
    parts: list[tuple[str, float, float, float]] = []  # side, weight, var of mean, df
    for test in gated:
        base, cur = _mean_and_variance(test)
        for side, (mean, variance, df) in (("baseline", base), ("current", cur)):
            totals[side] += test.weight * mean
            parts.append((side, test.weight, variance, df))
    # Delta method: var(log T) = var(T) / T^2, summed over both independent sides.
    components = [w * w * v / totals[side] ** 2 for side, w, v, _ in parts]
    variance = sum(components)
    if any(math.isinf(c) for c in components):
        se, df = math.inf, math.inf
    elif variance == 0.0:
        se, df = 0.0, math.inf
    else:
        se = math.sqrt(variance)
        df = variance**2 / sum(
            c * c / d for c, (*_, d) in zip(components, parts, strict=True) if c > 0
        )
    log_ratio = LogRatio(math.log(totals["current"] / totals["baseline"]), se, df)
    suite_input = GateInput("suite", baseline=(totals["baseline"],), current=(totals["current"],))
    p_regression, p_improvement = p_values(log_ratio, min(margin, threshold))
    return SuiteEvidence(
        test=suite_input,
        log_ratio=log_ratio,
        threshold=threshold,
        margin=min(margin, threshold),
        p_regression=p_regression,
        p_improvement=p_improvement,
        baseline_j=totals["baseline"],
        current_j=totals["current"],
        tests=len(gated),
    )


def _mean_and_variance(
    test: GateInput,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, variance of the mean, df) for the baseline side and the current side."""
    base, cur = test.baseline, test.current
    base_mean, cur_mean = statistics.fmean(base), statistics.fmean(cur)
    if test.baseline_kind == "history":
        # One more run: its mean varies like a stored run's value.
        spread = sample_variance(base)
        df = float(len(base) - 1)
        return (base_mean, spread / len(base), df), (cur_mean, spread, df)
    base_rel = _relative_variance(base)
    cur_rel = _relative_variance(cur)
    # A side with one value borrows the other side's relative spread.
    base_var = base_rel if base_rel is not None else cur_rel
    cur_var = cur_rel if cur_rel is not None else base_rel
    if base_var is None or cur_var is None:
        return (base_mean, math.inf, 1.0), (cur_mean, math.inf, 1.0)
    base_df = float(len(base) - 1) if base_rel is not None else float(len(cur) - 1)
    cur_df = float(len(cur) - 1) if cur_rel is not None else float(len(base) - 1)
    return (
        (base_mean, base_var * base_mean**2 / len(base), base_df),
        (cur_mean, cur_var * cur_mean**2 / len(cur), cur_df),
    )


def _relative_variance(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return None
    return sample_variance(values) / statistics.fmean(values) ** 2


def suite_record(suite: SuiteEvidence, status: VerdictStatus) -> SuiteCheck:
    low, high = suite.log_ratio.interval(DISPLAY_CONFIDENCE)
    return SuiteCheck(
        status=status,
        ratio=suite.log_ratio.ratio,
        ci_low=low,
        ci_high=high,
        baseline_j=suite.baseline_j,
        current_j=suite.current_j,
        tests=suite.tests,
    )
