"""The suite check: the total energy of all gated tests, baseline against now, per process.

Many small regressions that no single test can prove show up in the total. The
total is taken per process (each baseline process measured every test), so an
offset that a process gives all its tests at once (a slower VM, a hash seed
that suits none of them) is counted once, as the noise it is, instead of
averaging away across tests as if the tests were independent. It is one more
hypothesis in the tests' Holm family (:func:`pytest_energy.gate.decision.evaluate`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from pytest_energy.config import defaults
from pytest_energy.gate.rule import (
    GateInput,
    Spread,
    SuiteEvidence,
    check_settings,
    displayed_interval,
    gate_problem,
    judge,
    log_means,
    p_values,
)
from pytest_energy.record import SuiteCheck, VerdictStatus
from pytest_energy.stats import LogRatio


def suite_check(
    tests: Sequence[GateInput],
    *,
    alpha: float = defaults.ALPHA,
    threshold: float = defaults.THRESHOLD,
    margin: float = defaults.MARGIN,
) -> SuiteCheck:
    """Total energy of the gated tests, baseline against now, judged like one test at ``alpha``.

    The total of a process is the sum of each test's energy per unit in it times
    the test's ``weight``; the baseline's processes are compared with this
    session's screening process. Tests whose baseline processes do not line up
    with the others' (a baseline saved by other processes) are left out.

    >>> base = [[10.0], [10.02], [9.98]]
    >>> up = [[10.8]]
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
    """The suite total's comparison, or None when fewer than one test can be summed."""
    gated = [t for t in tests if gate_problem(t) is None]
    if not gated:
        return None
    processes = statistics.mode(len(t.baseline) for t in gated)
    aligned = [t for t in gated if len(t.baseline) == processes]
    baseline_totals = [
        sum(t.weight * math.exp(log_means(t.baseline)[p]) for t in aligned)
        for p in range(processes)
    ]
    current_total = sum(
        t.weight * math.exp(statistics.fmean(log_means(t.current))) for t in aligned
    )
    logs = [math.log(total) for total in baseline_totals]
    spread = Spread.of(logs)
    estimate = math.log(current_total) - statistics.fmean(logs)
    if spread.df > 0:
        se = math.sqrt(spread.variance * (1.0 / processes + 1.0))
        log_ratio = LogRatio(estimate, se, spread.df if se > 0 else math.inf)
    else:
        log_ratio = LogRatio(estimate, math.inf, math.inf)
    suite_margin = min(margin, threshold)
    p_regression, p_improvement = p_values(log_ratio, suite_margin)
    baseline_j = math.exp(statistics.fmean(logs))
    return SuiteEvidence(
        test=GateInput("suite", [[baseline_j]], [[current_total]]),
        log_ratio=log_ratio,
        threshold=threshold,
        margin=suite_margin,
        p_regression=p_regression,
        p_improvement=p_improvement,
        baseline_j=baseline_j,
        current_j=current_total,
        tests=len(aligned),
    )


def suite_record(suite: SuiteEvidence, status: VerdictStatus) -> SuiteCheck:
    low, high = displayed_interval(suite.log_ratio)
    return SuiteCheck(
        status=status,
        ratio=suite.log_ratio.ratio,
        ci_low=low,
        ci_high=high,
        baseline_j=suite.baseline_j,
        current_j=suite.current_j,
        tests=suite.tests,
    )
