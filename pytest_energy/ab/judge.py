"""A/B verdicts: the paired log ratio head/base per test, with process pairs as the unit.

Each process pair is one base worker and one head worker whose rounds of a test
alternated (base, head, head, base, ...), so the machine's drift hits both
sides alike. A pair's observation is the difference of its two processes' mean
log energies; it carries both processes' offsets, which more rounds cannot
shrink, so the interval of the ratio is built from the spread *between pairs*
(:func:`pytest_energy.stats.paired_log_ratio` over the pairs' geometric means),
pooled across tests as the stored-baseline gate pools its spread
(:func:`pytest_energy.gate.decision.choose_spreads`), except for a test whose spread
between pairs or whose round noise is clearly larger than the other tests'
(:func:`judged_spreads`): that one is judged by its own spread. Then the same rule:
material *and* certain, Holm across the tests and the suite total, the verdicts
of the stored-baseline gate. No start/end drift check is needed: drift between
the start and the end of the job moves both sides of every pair alike.

>>> same = [([10.0, 10.2], [10.1, 10.1]), ([9.8, 9.9], [9.9, 9.8]), ([10.3, 10.1], [10.2, 10.2])]
>>> hot = [([10.0, 10.2], [12.6, 12.4]), ([9.8, 9.9], [12.3, 12.4]), ([10.3, 10.1], [12.8, 12.9])]
>>> verdicts, suite = decide([PairedTest("same", same), PairedTest("hot", hot)])
>>> [(v.status, round(v.ratio, 2)) for v in verdicts], suite.status
([('unchanged', 1.0), ('regression', 1.25)], 'regression')
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import field, replace

from pytest_energy.config import defaults
from pytest_energy.frozen import frozen
from pytest_energy.gate.decision import choose_spreads, judge_family
from pytest_energy.gate.rule import (
    Evidence,
    GateInput,
    Spread,
    SuiteEvidence,
    check_settings,
    gate_problem,
    log_means,
    not_gated,
    p_values,
    percent,
)
from pytest_energy.gate.screening import SCREEN_ALPHA, ScreenResult
from pytest_energy.record import SuiteCheck, Verdict
from pytest_energy.stats import LogRatio, log_values, paired_log_ratio
from pytest_energy.student_t import f_sf

#: One process pair: (the base worker's values, the head worker's values) of a test.
Pair = tuple[Sequence[float], Sequence[float]]

#: A test is judged by its own spread between pairs when its spread between pairs, or
#: its round noise, is larger than the other tests' at this level (one-sided F tests).
#: 1 %, not the stored-baseline gate's 5 %: the round noise has heavy tails on a shared
#: VM, which make F tests fire more often than their level; in a simulation with the
#: noise measured there (docs/ab.md), 5 % cost a +20 % change 3-4 % of its detections
#: and prevented no false failure that 1 % let through.
SPREAD_LEVEL = 0.01

#: What every A/B report says about drift, instead of a start/end check.
NO_DRIFT_CHECK = (
    "No start/end drift check is needed: base and head rounds alternated in the same "
    "job, so drift moves both sides of every pair alike and their ratio cancels it"
)


@frozen
class PairedTest:
    """One test compared A/B: its values per process pair, screen and extra pairs."""

    nodeid: str
    screen: Sequence[Pair]
    #: Fresh process pairs that measured the test again after the screen flagged it.
    confirmation: Sequence[Pair] = field(default_factory=tuple)

    @property
    def deciding(self) -> Sequence[Pair]:
        """The pairs the verdict is computed on: the screen's and the fresh ones together.

        Pooling them is not optional stopping: the screen can only flag, never fail, so
        a flagged test fails only when the test on all its pairs rejects, an event
        contained in "the test on that many pairs rejects", whose probability under no
        change is alpha whatever the screen did (``docs/ab.md``). On real code the
        process offsets can be large (one function measured 25 % apart between
        processes of the same tree), and the fresh pairs alone, as many as the screen,
        left such a test inconclusive at +25 %.
        """
        return [*self.screen, *self.confirmation]

    def gate_input(self, pairs: Sequence[Pair]) -> GateInput:
        return GateInput(
            self.nodeid,
            baseline=[base for base, _ in pairs],
            current=[head for _, head in pairs],
        )


def differences(pairs: Sequence[Pair]) -> list[float]:
    """Per pair: the head process's mean log energy minus the base process's."""
    base = log_means([b for b, _ in pairs])
    head = log_means([h for _, h in pairs])
    return [h - b for b, h in zip(base, head, strict=True)]


def own_spread(pairs: Sequence[Pair]) -> Spread:
    """The variance of the pairs' differences, with ``pairs - 1`` degrees of freedom."""
    return Spread.of(differences(pairs)) if len(pairs) > 1 else Spread.of()


def pair_ratio(pairs: Sequence[Pair], spread: Spread, source: str) -> LogRatio:
    """The log ratio head/base over the pairs, with the spread the test is judged by.

    With its own spread it is exactly the paired t of the pairs' geometric means; a
    single pair has no spread of its own, and its interval is infinite.
    """
    if source.startswith("own") and spread.df > 0:
        base = [math.exp(m) for m in log_means([b for b, _ in pairs])]
        head = [math.exp(m) for m in log_means([h for _, h in pairs])]
        return paired_log_ratio(base, head)
    estimate = statistics.fmean(differences(pairs))
    if spread.df <= 0 or not math.isfinite(spread.variance):
        return LogRatio(estimate=estimate, se=math.inf, df=math.inf)
    se = math.sqrt(spread.variance / len(pairs))
    return LogRatio(estimate=estimate, se=se, df=spread.df if se > 0 else math.inf)


def round_noise(pairs: Sequence[Pair]) -> Spread:
    """The variance of rounds around their own process's mean (log scale), pooled.

    Each process of each pair contributes its rounds minus one degrees of freedom:
    with four pairs of two rounds a side that is eight, where the pairs' spread has three.
    """
    return Spread.of(*[log_values(side) for pair in pairs for side in pair])


def judged_spreads(own: Sequence[Spread], noise: Sequence[Spread]) -> list[tuple[Spread, str]]:
    """The spread each test is judged by, and why: ``pooled``, ``own`` or ``own rounds``.

    First the stored-baseline gate's rule (:func:`choose_spreads`, at
    :data:`SPREAD_LEVEL`): pooled across the run's tests, or the test's own spread
    between pairs when an F test says it is larger. Then a test whose rounds are
    noisier than the other tests' (an F test of its round noise, :func:`round_noise`)
    is judged by its own spread too: on four or five pairs the first F test, with as
    few degrees of freedom, often misses such a test, and the pooled spread then
    under-covers it (false failures; the simulation in ``docs/ab.md``).
    """
    chosen = choose_spreads(own, level=SPREAD_LEVEL)
    judged = []
    for index, (spread, source) in enumerate(chosen):
        if source == "pooled" and _noisier(noise, index):
            judged.append((own[index], "own rounds"))
        else:
            judged.append((spread, source))
    return judged


def _noisier(noise: Sequence[Spread], index: int) -> bool:
    mine = noise[index]
    others = Spread.pooled([s for k, s in enumerate(noise) if k != index])
    if not (mine.df > 0 and others.df > 0 and math.isfinite(mine.variance)):
        return False
    if others.variance == 0:
        return mine.variance > 0
    return f_sf(mine.variance / others.variance, mine.df, others.df) < SPREAD_LEVEL


def _weigh(
    tests: Sequence[PairedTest], chosen: Sequence[Sequence[Pair]], threshold: float, margin: float
) -> list[Evidence | Verdict]:
    problems = [
        gate_problem(t.gate_input(p)) if p else "no rounds"
        for t, p in zip(tests, chosen, strict=True)
    ]
    usable = [(p, problem is None) for p, problem in zip(chosen, problems, strict=True)]
    spreads = judged_spreads(
        [own_spread(p) if ok else Spread.of() for p, ok in usable],
        [round_noise(p) if ok else Spread.of() for p, ok in usable],
    )
    weighed: list[Evidence | Verdict] = []
    for test, pairs, problem, (spread, source) in zip(
        tests, chosen, problems, spreads, strict=True
    ):
        if problem is not None:
            weighed.append(not_gated(problem, threshold=threshold, kind="ab"))
            continue
        log_ratio = pair_ratio(pairs, spread, source)
        p_regression, p_improvement = p_values(log_ratio, min(margin, threshold))
        weighed.append(
            Evidence(
                test=test.gate_input(pairs),
                log_ratio=log_ratio,
                threshold=threshold,
                margin=min(margin, threshold),
                p_regression=p_regression,
                p_improvement=p_improvement,
                spread_source=source,
            )
        )
    return weighed


def screen(
    tests: Sequence[PairedTest],
    *,
    threshold: float = defaults.THRESHOLD,
    margin: float = defaults.MARGIN,
) -> list[ScreenResult]:
    """Which tests to measure again in fresh process pairs: the screen of the gate.

    Flagged when the screen pairs suggest a regression (one-sided p below
    :data:`SCREEN_ALPHA`, or an estimate above half the threshold). An unflagged
    test is decided on its screen, where p >= 0.05 keeps it from ever failing.
    """
    results = []
    for evidence in _weigh(tests, [t.screen for t in tests], threshold, margin):
        if not isinstance(evidence, Evidence):
            results.append(ScreenResult(False, f"not screened: {evidence.reason}"))
            continue
        ratio, p_value = evidence.log_ratio.ratio, evidence.p_regression
        if p_value >= SCREEN_ALPHA and ratio <= 1.0 + evidence.threshold / 2.0:
            results.append(
                ScreenResult(False, f"{percent(ratio)} on the screen: not flagged", ratio, p_value)
            )
        else:
            reason = f"{percent(ratio)} on the screen: measured again in fresh process pairs"
            results.append(ScreenResult(True, reason, ratio, p_value))
    return results


def suite_evidence(
    tests: Sequence[PairedTest], threshold: float, margin: float
) -> SuiteEvidence | None:
    """The suite total per screen pair (every test's geometric mean summed), head over base."""
    usable = [t for t in tests if t.screen and gate_problem(t.gate_input(t.screen)) is None]
    if not usable:
        return None
    pairs = min(len(t.screen) for t in usable)
    base_totals = [
        sum(math.exp(log_means([t.screen[k][0]])[0]) for t in usable) for k in range(pairs)
    ]
    head_totals = [
        sum(math.exp(log_means([t.screen[k][1]])[0]) for t in usable) for k in range(pairs)
    ]
    if pairs > 1:
        log_ratio = paired_log_ratio(base_totals, head_totals)
    else:
        log_ratio = LogRatio(math.log(head_totals[0] / base_totals[0]), math.inf, math.inf)
    suite_margin = min(margin, threshold)
    p_regression, p_improvement = p_values(log_ratio, suite_margin)
    base_j = math.exp(statistics.fmean(math.log(v) for v in base_totals))
    return SuiteEvidence(
        test=GateInput("suite", [[base_j]], [[base_j * log_ratio.ratio]]),
        log_ratio=log_ratio,
        threshold=threshold,
        margin=suite_margin,
        p_regression=p_regression,
        p_improvement=p_improvement,
        baseline_j=base_j,
        current_j=base_j * log_ratio.ratio,
        tests=len(usable),
    )


def decide(
    tests: Sequence[PairedTest],
    *,
    alpha: float = defaults.ALPHA,
    threshold: float = defaults.THRESHOLD,
    margin: float = defaults.MARGIN,
) -> tuple[list[Verdict], SuiteCheck]:
    """Verdicts (same order as ``tests``) and the suite check, in one Holm family."""
    check_settings(alpha=alpha, threshold=threshold, margin=margin)
    weighed = _weigh(tests, [t.deciding for t in tests], threshold, margin)
    suite = suite_evidence(tests, threshold, margin)
    judged, checked = judge_family(weighed, suite, alpha)
    verdicts = [
        _ab_reason(verdict, test, weighing.spread_source)
        if isinstance(weighing, Evidence)
        else verdict
        for test, weighing, verdict in zip(tests, weighed, judged, strict=True)
    ]
    return verdicts, checked


def _ab_reason(verdict: Verdict, test: PairedTest, source: str) -> Verdict:
    """The rule's reason with the A/B sizes in place of the stored-baseline ones."""
    reason, _, _ = verdict.reason.rpartition("; ")
    reason = reason or verdict.reason
    reason = reason.replace(
        "save the baseline from several processes (--energy-processes)",
        "run more worker processes per side (--processes)",
    )
    pairs = len(test.deciding)
    sizes = f"{pairs} process pair{'s' if pairs != 1 else ''} of base and head, rounds interleaved"
    if test.confirmation:
        sizes = (
            f"{len(test.screen)} + {len(test.confirmation)} process pairs of base and head "
            "(the screen's and fresh ones after it flagged the test), rounds interleaved"
        )
    if source == "own":
        sizes += ", judged by its own spread between pairs (larger than the other tests')"
    elif source == "own rounds":
        sizes += (
            ", judged by its own spread between pairs (its rounds are noisier than the "
            "other tests')"
        )
    return replace(verdict, reason=f"{reason}; {sizes}", kind="ab")
