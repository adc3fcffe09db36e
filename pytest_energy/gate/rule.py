"""The energy regression gate: screen, confirm, decide across tests with Holm.

Pure functions over numbers: no pytest, no files, no meters. The plugin and the
``compare`` command feed them joules per unit of work and get
:class:`~pytest_energy.results.Verdict` objects back.

The rule
--------
Energy is compared as ``ratio = current / baseline`` of J per unit of work, on
the log scale (Welch's t on ``log J``). With a ``threshold`` (material size,
default 5 %) and a ``margin`` (certainty, default 1 %), a gated test is

* ``regression`` when the change is both *material*, ``ratio > 1 + threshold``,
  and *certain*, the one-sided lower confidence bound of the ratio is above
  ``1 + margin`` at the level Holm's step-down procedure allots it, so that
  across all gated tests of a run the chance of any false alarm is at most
  ``alpha`` (default 1 %);
* ``improvement`` symmetrically: ``ratio < 1 / (1 + threshold)`` and the upper
  bound below ``1 / (1 + margin)`` (its own Holm family);
* ``unchanged`` when the 95 % interval shown to the user lies below
  ``1 + threshold``: confidently no material regression;
* ``inconclusive`` otherwise: too little evidence either way. It never fails
  the build; the reason says what was missing;
* ``not_gated`` for a structural reason (no baseline, other method, below the
  meter's resolution, concurrent tests, unstable session, non-positive energy).

Requiring both conditions avoids the two classic failures: a tiny but
certain change (``+2 % ± 0.1 %``) is not material, and a noisy ``+8 %`` is
not certain.

Screen, then confirm
--------------------
Each gated benchmark first runs its usual rounds (the *screen*, 5 by
default). :func:`screen` flags it when the screen suggests a regression:
a one-sided p-value below 0.05 against ``1 + margin``, *or* an estimate above
``1 + threshold / 2``. A flagged test runs ``extra_rounds`` fresh rounds at
once: enough, by the spread its screen showed, to confirm a regression right
at the threshold with 90 % power at the level of Holm's first step, capped so
that screen and confirmation stay within ``max_rounds`` (20). In practice that
is about 6 fresh rounds at a CV of 1 % and the cap from 2 % up.

Why this design, from ``benchmarks/gate_power.py``-style simulations (50
tests, one regressed by +10 %, 20 stored rounds, 400 runs each): confirming
every test to 20 rounds is the ceiling, 83 % power at a CV of 5 %, for 20
rounds per test. The rule above reaches 80 % for 7.4 rounds per test of a
clean run; the p-value alone 74 % for 5.3 rounds. At a CV of 1-3 % all three
agree (97-100 %), so the half-threshold clause only spends rounds where noise
hides material changes. Sizing for a regression of twice the threshold
instead saved a few rounds but cut the power for +10 % to 65-85 %: five
rounds often understate the spread.

Why the confirmation uses only fresh rounds
-------------------------------------------
Flagged tests are selected *because* their screening rounds came out high.
Pooling those rounds into the final test, with a number of extra rounds that
depends on them, is optional stopping and biases the test toward false
alarms. So the decision for a flagged test uses the fresh confirmation
rounds only, and the displayed ratio comes from them too (the screen's
estimate suffers from the winner's curse). The stored baseline is shared by
both stages, so the confirmation is *not* independent of the selection given
the baseline; the guarantee holds unconditionally instead: each test's final
p-value is valid on its own (the fresh rounds' count depends only on the
screen's spread, which says nothing about the baseline's level), and Holm is
applied over *all* gated tests, flagged or not. Holm over only the flagged
tests would not be honest, since tests whose baseline happened to come out
low are the ones that get flagged. An unflagged test is decided on its
screening rounds; its p-value is then at least 0.05, far above any Holm
level, so it can never fail the build. ``benchmarks/gate_power.py
--worst-case`` checks this at the boundary: every one of 50 tests exactly at
``1 + margin``, with the threshold set to the margin so that only certainty
decides. With 20 stored rounds, 16,000 runs per CV (1, 3, 5 %) had a false
regression in 0.83-0.92 % of runs at alpha = 1 %.

The baseline
------------
``baseline`` holds one value per stored round (``baseline_kind="rounds"``),
compared by Welch's t on log values, which lets the two sessions' spreads
differ (its degrees of freedom are capped, see
:func:`~pytest_energy.stats.welch_log_ratio`). The stored round count limits
the gate more than the current run's: the stored mean's own error never
averages away however many current rounds run, and the degrees of freedom
stay near the smaller sample's. Five stored rounds give only ~35 % power for
a lone +10 % regression among 50 tests at a CV of 3 %; ten give ~96 %
(``benchmarks/gate_power.py``). So baselines should be saved with
:data:`RECOMMENDED_BASELINE_ROUNDS` rounds: it is cheap and done once.
With ``baseline_kind="history"`` ``baseline`` holds one value per earlier run
(K >= 2) and the current run is judged as one more run (a prediction
interval, see :func:`~pytest_energy.stats.history_log_ratio`), which also
covers day-to-day drift; extra rounds cannot shrink that, so the screen asks
for none.

Example: the flow the plugin follows
-----------------------------------
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

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pytest_energy.record import FLAGS, SuiteCheck, Verdict, VerdictStatus
from pytest_energy.stats import (
    LogRatio,
    history_log_ratio,
    normal_cdf,
    sample_variance,
    t_quantile,
    welch_df,
    welch_log_ratio,
)

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MARGIN",
    "DEFAULT_MAX_ROUNDS",
    "DEFAULT_THRESHOLD",
    "RECOMMENDED_BASELINE_ROUNDS",
    "GateInput",
    "GateOutcome",
    "ScreenResult",
    "Stability",
    "confirmation_rounds",
    "decide",
    "evaluate",
    "gate_problem",
    "holm_adjust",
    "holm_reject",
    "not_gated",
    "not_gated_for_flags",
    "screen",
    "session_stability",
    "suite_check",
]

DEFAULT_THRESHOLD = 0.05
DEFAULT_MARGIN = 0.01
DEFAULT_ALPHA = 0.01
DEFAULT_MAX_ROUNDS = 20
#: The screen flags on p below this; it must not be below alpha (see the docstring).
SCREEN_ALPHA = 0.05
#: Confirmation is sized for this power against a regression at the threshold.
SIZING_POWER = 0.9
#: Rounds to store when saving a baseline: 10 meet the power target in
#: benchmarks/gate_power.py; 20 (the max_rounds cap) leave headroom and keep the
#: stored sample at least as large as any confirmation.
RECOMMENDED_BASELINE_ROUNDS = 20
MIN_CONFIRMATION_ROUNDS = 3
#: The displayed interval; "unchanged" means it lies below 1 + threshold.
DISPLAY_CONFIDENCE = 0.95
DEFAULT_MAX_DRIFT = 0.02
DEFAULT_MAX_CV = 0.05

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


# --- inputs ----------------------------------------------------------------------------------


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


# --- screen and confirm --------------------------------------------------------------------


@dataclass(frozen=True)
class ScreenResult:
    """What the screen says about one test: confirm it now, and with how many rounds."""

    flagged: bool
    extra_rounds: int
    reason: str
    ratio: float | None = None
    #: One-sided p against ``ratio <= 1 + margin`` on the screening rounds (not adjusted).
    p_value: float | None = None


def screen(
    test: GateInput,
    *,
    family_size: int,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
) -> ScreenResult:
    """Decide whether ``test``'s screening rounds call for confirmation rounds.

    ``family_size`` is the number of tests gated this run (collected tests
    with a baseline); it only sizes the confirmation, it never weakens the
    guarantee. ``max_rounds`` caps screening plus confirmation rounds.
    Run ``extra_rounds`` fresh rounds, pass them as ``confirmation``, then
    call :func:`decide` (or :func:`evaluate`) over all tests.

    >>> base = (10.0, 10.3, 9.7, 10.2, 9.8)
    >>> s = screen(GateInput("t", base, current=(10.8, 11.1, 10.5, 11.0, 10.6)), family_size=50)
    >>> s.flagged, s.extra_rounds
    (True, 15)
    """
    _check_settings(alpha=alpha, threshold=threshold, margin=margin)
    if alpha > SCREEN_ALPHA:
        # Unflagged tests are decided on their screening rounds, where p >= SCREEN_ALPHA;
        # that must stay above every Holm level for the false-alarm guarantee to hold.
        raise ValueError(f"alpha must be at most {SCREEN_ALPHA} with the screen, got {alpha!r}")
    if family_size < 1:
        raise ValueError(f"family_size must be >= 1, got {family_size!r}")
    problem = gate_problem(test)
    if problem is not None:
        return ScreenResult(flagged=False, extra_rounds=0, reason=f"not gated: {problem}")
    limit_threshold, limit_margin = _limits(test, threshold, margin)
    evidence = _log_ratio(test, test.current)
    p_value = evidence.p_above(1.0 + limit_margin)
    suspicious = evidence.ratio > 1.0 + limit_threshold / 2.0
    if p_value >= SCREEN_ALPHA and not suspicious:
        reason = f"{_percent(evidence.ratio)} on {len(test.current)} rounds: not flagged"
        return ScreenResult(False, 0, reason, evidence.ratio, p_value)
    why = (
        f"p={p_value:.2g} < {SCREEN_ALPHA}"
        if p_value < SCREEN_ALPHA
        else "above half the threshold"
    )
    room = max_rounds - len(test.current)
    if test.baseline_kind == "history" or room < MIN_CONFIRMATION_ROUNDS:
        extra = 0  # a history's run-to-run spread does not shrink with more rounds
    else:
        extra = confirmation_rounds(
            spread=_log_spread(test.current),
            baseline_rounds=len(test.baseline),
            room=room,
            effect=1.0 + limit_threshold,
            margin=limit_margin,
            level=alpha / family_size,
        )
    reason = f"{_percent(evidence.ratio)} on {len(test.current)} rounds ({why}): confirm"
    return ScreenResult(True, extra, reason, evidence.ratio, p_value)


def confirmation_rounds(
    *,
    spread: float | None,
    baseline_rounds: int,
    room: int,
    effect: float,
    margin: float,
    level: float,
    power: float = SIZING_POWER,
) -> int:
    """Fresh rounds needed to show ``ratio > 1 + margin`` at one-sided ``level``.

    Sized for a true ratio of ``effect`` with the given ``power``, for Welch's
    test of ``baseline_rounds`` stored rounds against the fresh ones, assuming
    both have the log-spread ``spread`` seen in the screen (None: unknown).
    Returns at least 3 and at most ``room``; ``room`` when even that falls short.

    >>> confirmation_rounds(spread=0.002, baseline_rounds=5, room=15, effect=1.1,
    ...                     margin=0.01, level=0.0002)
    3
    >>> confirmation_rounds(spread=0.03, baseline_rounds=5, room=15, effect=1.1,
    ...                     margin=0.01, level=0.0002)
    15
    """
    if room < 2:
        return max(room, 0)  # no room for a spread of the fresh rounds' own
    low = min(MIN_CONFIRMATION_ROUNDS, room)
    if spread is None or not math.isfinite(spread):
        return room
    if spread == 0.0:
        return low
    distance = math.log(effect) - math.log(1.0 + margin)

    def achieved(rounds: int) -> float:
        noncentrality = distance / (spread * math.sqrt(1.0 / baseline_rounds + 1.0 / rounds))
        if baseline_rounds > 1:
            df = welch_df(1.0, baseline_rounds, 1.0, rounds)
        else:
            df = float(rounds - 1)
        # Power of the one-sided t test by the normal approximation to the noncentral t
        # (Abramowitz & Stegun 26.7.10); it counts the noise of the estimated spread,
        # which a shifted central t would ignore and so promise power at 3 rounds.
        critical = t_quantile(1.0 - level, df)
        return normal_cdf(
            (noncentrality - critical * (1.0 - 1.0 / (4.0 * df)))
            / math.sqrt(1.0 + critical * critical / (2.0 * df))
        )

    if achieved(room) < power:
        return room
    high = room
    while low < high:  # power grows with the rounds: bisect for the fewest that suffice
        middle = (low + high) // 2
        if achieved(middle) >= power:
            high = middle
        else:
            low = middle + 1
    return low


# --- the decision --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Evidence:
    """One gateable test's comparison, before the multiplicity correction."""

    test: GateInput
    log_ratio: LogRatio
    threshold: float
    margin: float
    p_regression: float
    p_improvement: float


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
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
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
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
) -> GateOutcome:
    """The whole gate: per-test verdicts plus the suite check, in one Holm family.

    The suite total is one more hypothesis next to the tests, so ``alpha``
    bounds the chance that anything at all fails a clean run.

    >>> base = (10.0, 10.1, 9.9, 10.05, 9.95)
    >>> out = evaluate([GateInput(f"t{i}", base, current=base) for i in range(3)])
    >>> out.failed, out.suite["status"], out.counts
    (False, 'unchanged', {'unchanged': 3})
    """
    verdicts, suite = _decide_family(tests, alpha, threshold, margin, with_suite=True)
    counts: dict[str, int] = {}
    for verdict in verdicts:
        counts[verdict.status] = counts.get(verdict.status, 0) + 1
    failed = suite["status"] == "regression" or any(v.status == "regression" for v in verdicts)
    return GateOutcome(verdicts=verdicts, suite=suite, counts=counts, failed=failed)


def _decide_family(
    tests: Sequence[GateInput], alpha: float, threshold: float, margin: float, *, with_suite: bool
) -> tuple[list[Verdict], SuiteCheck]:
    """Weigh every test, adjust the family's p-values with Holm, judge each member."""
    _check_settings(alpha=alpha, threshold=threshold, margin=margin)
    weighed = [_weigh(test, threshold, margin) for test in tests]
    family = [w for w in weighed if isinstance(w, _Evidence)]
    suite = _suite_evidence(tests, threshold, margin) if with_suite else None
    if suite is not None:
        family.append(suite)
    p_up = holm_adjust([e.p_regression for e in family])
    p_down = holm_adjust([e.p_improvement for e in family])
    judged = [
        _judge(e, up, down, alpha, len(family))
        for e, up, down in zip(family, p_up, p_down, strict=True)
    ]
    suite_record = SuiteCheck(status="not_gated", tests=0)
    if suite is not None:
        suite_record = _suite_record(suite, judged.pop().status)
    in_order = iter(judged)
    verdicts = [next(in_order) if isinstance(w, _Evidence) else w for w in weighed]
    return verdicts, suite_record


def _weigh(test: GateInput, threshold: float, margin: float) -> _Evidence | Verdict:
    problem = gate_problem(test)
    limit_threshold, limit_margin = _limits(test, threshold, margin)
    if problem is not None:
        return not_gated(problem, method=test.method, threshold=limit_threshold)
    log_ratio = _log_ratio(test, test.deciding_rounds)
    p_regression, p_improvement = _p_values(log_ratio, limit_margin)
    return _Evidence(
        test=test,
        log_ratio=log_ratio,
        threshold=limit_threshold,
        margin=limit_margin,
        p_regression=p_regression,
        p_improvement=p_improvement,
    )


def _p_values(log_ratio: LogRatio, margin: float) -> tuple[float, float]:
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


def _judge(evidence: _Evidence, p_up: float, p_down: float, alpha: float, family: int) -> Verdict:
    """Classify one comparison, given its Holm-adjusted p-values."""
    ratio = evidence.log_ratio.ratio
    low, high = evidence.log_ratio.interval(DISPLAY_CONFIDENCE)
    material_up = 1.0 + evidence.threshold
    shown = f"{_percent(ratio)} [{_percent(low)}, {_percent(high)}]"
    holm = f"Holm p={p_up:.2g} over {family}"
    status: VerdictStatus
    if ratio > material_up and p_up <= alpha:
        status, p_value = "regression", p_up
        reason = (
            f"{shown}: above the {_pct(evidence.threshold)} threshold and certainly above "
            f"+{_pct(evidence.margin)} ({holm} <= {alpha:g})"
        )
    elif ratio < 1.0 / material_up and p_down <= alpha:
        status, p_value = "improvement", p_down
        reason = (
            f"{shown}: below {_percent(1.0 / material_up)} and certainly below "
            f"{_percent(1.0 / (1.0 + evidence.margin))} "
            f"(Holm p={p_down:.2g} over {family} <= {alpha:g})"
        )
    elif high < material_up:
        status, p_value = "unchanged", p_up
        reason = f"{shown}: the 95% interval stays below the {_pct(evidence.threshold)} threshold"
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


def _missing_evidence(evidence: _Evidence, p_up: float, alpha: float, holm: str) -> str:
    if math.isinf(evidence.log_ratio.se):
        return "one value on each side leaves no spread to judge the change by"
    if evidence.log_ratio.ratio > 1.0 + evidence.threshold:
        return (
            f"above the {_pct(evidence.threshold)} threshold but not certain "
            f"({holm} > {alpha:g}); more rounds or a quieter machine would decide"
        )
    return (
        f"the 95% interval reaches the {_pct(evidence.threshold)} threshold; "
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


# --- the suite total ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _SuiteEvidence(_Evidence):
    baseline_j: float = 0.0
    current_j: float = 0.0
    tests: int = 0


def suite_check(
    tests: Sequence[GateInput],
    *,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
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
    >>> check["status"], round(check["ratio"], 2), check["tests"]
    ('regression', 1.08, 20)
    """
    _check_settings(alpha=alpha, threshold=threshold, margin=margin)
    suite = _suite_evidence(tests, threshold, margin)
    if suite is None:
        return SuiteCheck(status="not_gated", tests=0)
    verdict = _judge(suite, suite.p_regression, suite.p_improvement, alpha, 1)
    return _suite_record(suite, verdict.status)


def _suite_evidence(
    tests: Sequence[GateInput], threshold: float, margin: float
) -> _SuiteEvidence | None:
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
    p_regression, p_improvement = _p_values(log_ratio, min(margin, threshold))
    return _SuiteEvidence(
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


def _suite_record(suite: _SuiteEvidence, status: VerdictStatus) -> SuiteCheck:
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


# --- session stability ---------------------------------------------------------------------


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
    max_drift: float = DEFAULT_MAX_DRIFT,
    max_cv: float = DEFAULT_MAX_CV,
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
                    f"calibration workload drifted {_percent(1.0 + drift)} between session "
                    f"start and end (limit {_pct(max_drift)})"
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
                f"tests exceeds the {_pct(max_cv)} limit"
            )
    return Stability(
        unstable=bool(reasons), reason="; ".join(reasons), drift=drift, noisy_tests=noisy
    )


# --- helpers -----------------------------------------------------------------------------------


def _check_settings(*, alpha: float, threshold: float, margin: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be within (0, 1), got {alpha!r}")
    if not threshold > 0.0:
        raise ValueError(f"threshold must be > 0, got {threshold!r}")
    if not margin >= 0.0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")


def _limits(test: GateInput, threshold: float, margin: float) -> tuple[float, float]:
    """The test's threshold and margin; a margin never exceeds its threshold."""
    limit_threshold = test.threshold if test.threshold is not None else threshold
    limit_margin = test.margin if test.margin is not None else margin
    return limit_threshold, min(limit_margin, limit_threshold)


def _log_ratio(test: GateInput, rounds: Sequence[float]) -> LogRatio:
    if test.baseline_kind == "history":
        return history_log_ratio(test.baseline, rounds)
    return welch_log_ratio(test.baseline, rounds)


def _log_spread(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return None
    return math.sqrt(sample_variance([math.log(v) for v in values]))


def _centres(evidence: _Evidence) -> tuple[float, float]:
    """Geometric means, so that current / baseline equals the reported ratio."""
    if isinstance(evidence, _SuiteEvidence):
        return evidence.baseline_j, evidence.current_j
    test = evidence.test
    baseline = math.exp(sum([math.log(v) for v in test.baseline]) / len(test.baseline))
    return baseline, baseline * evidence.log_ratio.ratio


def _sizes(evidence: _Evidence) -> str:
    if isinstance(evidence, _SuiteEvidence):
        return f"total of {_count(evidence.tests, 'test')}"
    test = evidence.test
    stored = _count(len(test.baseline), "run" if test.baseline_kind == "history" else "round")
    if test.confirmation:
        return f"baseline {stored} vs {_count(len(test.confirmation), 'confirmation round')}"
    return f"baseline {stored} vs {_count(len(test.current), 'round')}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _percent(ratio: float) -> str:
    """A ratio as a signed change: 1.123 -> '+12.3%'."""
    if math.isinf(ratio):
        return "+inf%"
    return f"{100.0 * (ratio - 1.0):+.1f}%"


def _pct(fraction: float) -> str:
    return f"{100.0 * fraction:g}%"
