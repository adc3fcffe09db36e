"""Screen, then confirm: which benchmarks need fresh rounds before a verdict.

A benchmark first runs its usual rounds (the *screen*). :func:`screen` flags it
when they suggest a regression; a flagged test is decided on fresh rounds only,
sized by :func:`confirmation_rounds` (``docs/gate.md`` says why fresh ones).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_energy.config import defaults
from pytest_energy.gate.rule import (
    GateInput,
    check_settings,
    gate_problem,
    limits,
    log_ratio_of,
    percent,
)
from pytest_energy.stats import normal_cdf, sample_variance, t_quantile, welch_df

#: The screen flags on p below this; it must not be below alpha (see the docstring).
SCREEN_ALPHA = 0.05

#: Confirmation is sized for this power against a regression at the threshold.
SIZING_POWER = 0.9

MIN_CONFIRMATION_ROUNDS = 3


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
    alpha: float = defaults.ALPHA,
    threshold: float = defaults.THRESHOLD,
    margin: float = defaults.MARGIN,
    max_rounds: int = defaults.MAX_ROUNDS,
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
    check_settings(alpha=alpha, threshold=threshold, margin=margin)
    if alpha > SCREEN_ALPHA:
        # Unflagged tests are decided on their screening rounds, where p >= SCREEN_ALPHA;
        # that must stay above every Holm level for the false-alarm guarantee to hold.
        raise ValueError(f"alpha must be at most {SCREEN_ALPHA} with the screen, got {alpha!r}")
    if family_size < 1:
        raise ValueError(f"family_size must be >= 1, got {family_size!r}")
    problem = gate_problem(test)
    if problem is not None:
        return ScreenResult(flagged=False, extra_rounds=0, reason=f"not gated: {problem}")
    limit_threshold, limit_margin = limits(test, threshold, margin)
    evidence = log_ratio_of(test, test.current)
    p_value = evidence.p_above(1.0 + limit_margin)
    suspicious = evidence.ratio > 1.0 + limit_threshold / 2.0
    if p_value >= SCREEN_ALPHA and not suspicious:
        reason = f"{percent(evidence.ratio)} on {len(test.current)} rounds: not flagged"
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
    reason = f"{percent(evidence.ratio)} on {len(test.current)} rounds ({why}): confirm"
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


def _log_spread(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return None
    return math.sqrt(sample_variance([math.log(v) for v in values]))
