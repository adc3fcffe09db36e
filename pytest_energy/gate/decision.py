"""The whole gate over a run: every test and the suite total in one Holm family.

A clean run of any number of gated tests raises a false alarm in at most
``alpha`` of runs. The flow the plugin follows, in small::

    >>> from pytest_energy.gate import GateInput, evaluate, screen
    >>> stored = (10.0, 10.1, 9.9, 10.05, 9.95, 10.02, 9.98, 10.08, 9.92, 10.0)
    >>> hot = GateInput("test_hot", stored, current=(10.9, 11.1, 10.8, 11.0, 11.2))
    >>> check = screen(hot, family_size=2)
    >>> check.flagged, check.extra_rounds
    (True, 5)
    >>> fresh = (11.0, 10.95, 11.05, 10.9, 11.1)  # the 5 rounds run at once, inside the test
    >>> tests = [
    ...     GateInput("test_same", stored, current=(10.03, 9.96, 10.05, 9.97, 10.0)),
    ...     GateInput("test_hot", stored, current=hot.current, confirmation=fresh),
    ... ]
    >>> outcome = evaluate(tests)
    >>> [(v.status, round(v.ratio, 3)) for v in outcome.verdicts], outcome.failed
    ([('unchanged', 1.0), ('regression', 1.1)], True)
    >>> reason = outcome.verdicts[1].reason
    >>> reason[: reason.index(":")], reason[reason.index(";") + 2 :]
    ('+10.0% [+9.0%, +11.0%]', 'baseline 10 rounds vs 5 confirmation rounds')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_energy.config import defaults
from pytest_energy.gate.rule import (
    Evidence,
    GateInput,
    check_settings,
    holm_adjust,
    judge,
    weigh,
)
from pytest_energy.gate.suite import suite_evidence, suite_record
from pytest_energy.record import SuiteCheck, Verdict


@dataclass(frozen=True)
class GateOutcome:
    """Everything :func:`evaluate` decided: per-test verdicts, the suite, the build."""

    verdicts: list[Verdict]
    suite: SuiteCheck
    counts: dict[str, int] = field(default_factory=dict)
    #: True when a test or the suite is a regression. Whether an unstable
    #: session may fail the build is the caller's policy.
    failed: bool = False


def decide(
    tests: Sequence[GateInput],
    *,
    alpha: float = defaults.ALPHA,
    threshold: float = defaults.THRESHOLD,
    margin: float = defaults.MARGIN,
) -> list[Verdict]:
    """Verdicts for ``tests`` (same order), with Holm's correction across the gated ones.

    A clean run of any number of gated tests raises a false alarm in at most
    ``alpha`` of runs. Use :func:`evaluate` to add the suite-level check to
    the same family.

    >>> base = (5.0, 5.1, 4.9, 5.05, 4.95)
    >>> v = decide([GateInput("t", base, current=(4.0, 4.1, 3.9, 4.05, 3.95))])[0]
    >>> v.status, round(v.ratio, 2), v.kind
    ('improvement', 0.8, 'baseline')
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
    """The whole gate: per-test verdicts plus the suite check, in one Holm family.

    The suite total is one more hypothesis next to the tests, so ``alpha``
    bounds the chance that anything at all fails a clean run.

    >>> base = (10.0, 10.1, 9.9, 10.05, 9.95)
    >>> out = evaluate([GateInput(f"t{i}", base, current=base) for i in range(3)])
    >>> out.failed, out.suite.status, out.counts
    (False, 'unchanged', {'unchanged': 3})
    """
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
    weighed = [weigh(test, threshold, margin) for test in tests]
    family = [w for w in weighed if isinstance(w, Evidence)]
    suite = suite_evidence(tests, threshold, margin) if with_suite else None
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
