"""The whole gate over a run: every test and the suite total in one Holm family.

The spread between processes is estimated once per run: each test gives the
variance of its process means on each side, and the tests' variances are
pooled, so a run of five tests with three baseline processes each decides with
about ten degrees of freedom instead of two. A test whose own spread is
clearly larger than the others' (one-sided F test at 5 %) is judged by its own.
A clean run of any number of gated tests then raises a false alarm in about
``alpha`` of runs or fewer (``benchmarks/gate_power.py`` checks it with
per-process offsets, independent and shared).

>>> from pytest_energy.gate import GateInput, evaluate
>>> stored = [[10.0, 10.1], [9.9, 10.0], [10.1, 10.05]]  # 3 processes of 2 rounds
>>> tests = [
...     GateInput("test_same", stored, current=[[10.03, 9.96]]),
...     GateInput("test_hot", stored, [[11.2, 11.1]], confirmation=[[11.0], [11.1], [10.9]]),
... ]
>>> outcome = evaluate(tests)
>>> [(v.status, round(v.ratio, 2)) for v in outcome.verdicts], outcome.failed
([('unchanged', 1.0), ('regression', 1.1)], True)
>>> outcome.verdicts[1].reason.split("; ")[-1]
'baseline 3 processes vs 3 fresh processes'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field

from pytest_energy.config import defaults
from pytest_energy.frozen import frozen
from pytest_energy.gate.rule import (
    Evidence,
    GateInput,
    Spread,
    SuiteEvidence,
    check_settings,
    gate_problem,
    holm_adjust,
    judge,
    log_means,
    weigh,
)
from pytest_energy.gate.suite import suite_evidence, suite_record
from pytest_energy.record import SuiteCheck, Verdict
from pytest_energy.student_t import f_sf

#: A test is judged by its own spread between processes when an F test says, at
#: this level, that it is larger than the other tests' pooled spread.
OWN_SPREAD_LEVEL = 0.05


@frozen
class GateOutcome:
    """Everything :func:`evaluate` decided: per-test verdicts, the suite, the build."""

    verdicts: list[Verdict]
    suite: SuiteCheck
    counts: dict[str, int] = field(default_factory=dict)
    #: True when a test or the suite is a regression. Whether an unstable
    #: session may fail the build is the caller's policy.
    failed: bool = False


def test_spread(test: GateInput) -> Spread:
    """The spread of one test's process means: its baseline's and its deciding side's."""
    if gate_problem(test) is not None:
        return Spread.of()
    return Spread.of(log_means(test.baseline), log_means(test.deciding))


def spreads(tests: Sequence[GateInput]) -> list[tuple[Spread, str]]:
    """For each test, the spread it is judged by and where it came from.

    A test with one process on each side has no spread of its own and borrows
    the others'. A borrowed spread of zero is not borrowed: other tests that
    repeated exactly say nothing about this one's noise, and a zero spread would
    turn its single observation per side into a zero-width interval (a certain
    regression or improvement from one round). It stays unknown: inconclusive.
    """
    return choose_spreads([test_spread(test) for test in tests])


def choose_spreads(
    own: Sequence[Spread], level: float = OWN_SPREAD_LEVEL
) -> list[tuple[Spread, str]]:
    """Given each test's own spread, the spread each is judged by (see :func:`spreads`).

    ``level``: of the F test that keeps a test's own spread (A/B uses its own).
    """
    chosen: list[tuple[Spread, str]] = []
    for index, mine in enumerate(own):
        others = Spread.pooled([s for k, s in enumerate(own) if k != index])
        everyone = Spread.pooled(own)
        if mine.df == 0 and everyone.variance == 0:
            chosen.append((Spread.of(), "pooled"))
            continue
        if mine.df > 0 and others.df > 0 and others.variance > 0:
            larger = f_sf(mine.variance / others.variance, mine.df, others.df)
            if larger < level:
                chosen.append((mine, "own"))
                continue
        if mine.df > 0 and others.df > 0 and others.variance == 0 < mine.variance:
            chosen.append((mine, "own"))
            continue
        chosen.append((everyone, "pooled"))
    return chosen


def decide(
    tests: Sequence[GateInput],
    *,
    alpha: float = defaults.ALPHA,
    threshold: float = defaults.THRESHOLD,
    margin: float = defaults.MARGIN,
) -> list[Verdict]:
    """Verdicts for ``tests`` (same order), with Holm's correction across the gated ones.

    Use :func:`evaluate` to add the suite-level check to the same family.
    """
    verdicts, _ = _decide_family(tests, alpha, threshold, margin, with_suite=False)
    return verdicts


def evaluate(
    tests: Sequence[GateInput],
    *,
    alpha: float = defaults.ALPHA,
    threshold: float = defaults.THRESHOLD,
    margin: float = defaults.MARGIN,
) -> GateOutcome:
    """The whole gate: per-test verdicts plus the suite check, in one Holm family."""
    verdicts, suite = _decide_family(tests, alpha, threshold, margin, with_suite=True)
    counts: dict[str, int] = {}
    for verdict in verdicts:
        counts[verdict.status] = counts.get(verdict.status, 0) + 1
    failed = suite.status == "regression" or any(v.status == "regression" for v in verdicts)
    return GateOutcome(verdicts=verdicts, suite=suite, counts=counts, failed=failed)


def _decide_family(
    tests: Sequence[GateInput], alpha: float, threshold: float, margin: float, *, with_suite: bool
) -> tuple[list[Verdict], SuiteCheck]:
    """Weigh every test, adjust the family's p-values with Holm, judge each member."""
    check_settings(alpha=alpha, threshold=threshold, margin=margin)
    weighed = [
        weigh(test, threshold, margin, spread, source)
        for test, (spread, source) in zip(tests, spreads(tests), strict=True)
    ]
    suite = suite_evidence(tests, threshold, margin) if with_suite else None
    return judge_family(weighed, suite, alpha)


def judge_family(
    weighed: Sequence[Evidence | Verdict], suite: SuiteEvidence | None, alpha: float
) -> tuple[list[Verdict], SuiteCheck]:
    """Holm over the weighed tests and the suite total as one family; verdicts in order."""
    family = [w for w in weighed if isinstance(w, Evidence)]
    if suite is not None:
        family.append(suite)
    p_up = holm_adjust([e.p_regression for e in family])
    p_down = holm_adjust([e.p_improvement for e in family])
    judged = [
        judge(e, up, down, alpha, len(family))
        for e, up, down in zip(family, p_up, p_down, strict=True)
    ]
    checked = SuiteCheck(status="not_gated", tests=0)
    if suite is not None:
        checked = suite_record(suite, judged.pop().status)
    in_order = iter(judged)
    verdicts = [next(in_order) if isinstance(w, Evidence) else w for w in weighed]
    return verdicts, checked
