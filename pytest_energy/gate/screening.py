"""Screen, then confirm: which benchmarks need fresh processes before a verdict.

Every gated benchmark is first compared on this session's own process (the
*screen*). :func:`screen` flags a test when that suggests a regression: a
one-sided p-value below 0.05 against ``1 + margin``, or an estimate above
``1 + threshold / 2``. A flagged test is measured again in fresh processes and
decided on those alone: tests are flagged *because* their screening process
came out high, and deciding on it would be optional stopping (``docs/gate.md``).
An unflagged test is decided on its screen, where its p-value is at least
0.05, far above any Holm level, so it can never fail the build.

>>> base = [[10.0], [10.3], [9.7]]
>>> results = screen([GateInput("hot", base, current=[[11.0]]),
...                   GateInput("same", base, current=[[10.05]])])
>>> [r.flagged for r in results]
[True, False]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pytest_energy.config import defaults
from pytest_energy.frozen import frozen
from pytest_energy.gate.decision import spreads
from pytest_energy.gate.rule import (
    Evidence,
    GateInput,
    check_settings,
    percent,
    weigh,
)

#: The screen flags on p below this; it must not be below alpha (see the docstring).
SCREEN_ALPHA = 0.05


@frozen
class ScreenResult:
    """What the screen says about one test: measure it again in fresh processes, or not."""

    flagged: bool
    reason: str
    ratio: float | None = None
    #: One-sided p against ``ratio <= 1 + margin`` on the screening process (not adjusted).
    p_value: float | None = None


def screen(
    tests: Sequence[GateInput],
    *,
    alpha: float = defaults.ALPHA,
    threshold: float = defaults.THRESHOLD,
    margin: float = defaults.MARGIN,
) -> list[ScreenResult]:
    """The screen's word on each test (same order), from its current processes only."""
    check_settings(alpha=alpha, threshold=threshold, margin=margin)
    if alpha > SCREEN_ALPHA:
        # Unflagged tests are decided on their screen, where p >= SCREEN_ALPHA; that
        # must stay above every Holm level for the false-alarm guarantee to hold.
        raise ValueError(f"alpha must be at most {SCREEN_ALPHA} with the screen, got {alpha!r}")
    screened = [replace(test, confirmation=()) for test in tests]
    results = []
    for test, (spread, source) in zip(screened, spreads(screened), strict=True):
        evidence = weigh(test, threshold, margin, spread, source)
        if not isinstance(evidence, Evidence):
            results.append(ScreenResult(False, f"not screened: {evidence.reason}"))
            continue
        ratio, p_value = evidence.log_ratio.ratio, evidence.p_regression
        suspicious = ratio > 1.0 + evidence.threshold / 2.0
        if p_value >= SCREEN_ALPHA and not suspicious:
            reason = f"{percent(ratio)} on this session's process: not flagged"
            results.append(ScreenResult(False, reason, ratio, p_value))
            continue
        why = (
            f"p={p_value:.2g} < {SCREEN_ALPHA}"
            if p_value < SCREEN_ALPHA
            else "above half the threshold"
        )
        reason = f"{percent(ratio)} on this session's process ({why}): confirm in fresh processes"
        results.append(ScreenResult(True, reason, ratio, p_value))
    return results
