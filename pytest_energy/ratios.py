"""Ratios between model variants measured in one session, and limits on them.

A compressed model (int8, pruned, distilled) is compared with its reference
in the same session, with their rounds interleaved (A B B A A B ...) so that
slow drift of the machine (temperature, clocks, background load) hits both
alike. Each candidate round is paired with the reference round next to it, and
the ratio comes from the mean of the paired log differences, with a Student t
interval (:func:`~pytest_energy.stats.paired_log_ratio`).

A limit such as "int8 uses at most 0.6x the energy of fp32" is met only when
the confidence bound clears it, never on the point estimate alone:

>>> rounds = [("reference", 10.0), ("candidate", 4.7), ("candidate", 4.8),
...           ("reference", 10.2), ("reference", 10.1), ("candidate", 4.75)]
>>> estimate = interleaved_ratio(rounds)
>>> round(estimate.ratio, 3), estimate.n
(0.47, 3)
>>> ratio_limit_met(estimate.ci, 0.6, "at_most")
'pass'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pytest_energy.stats import LogRatio, paired_log_ratio, welch_log_ratio

__all__ = [
    "Direction",
    "LimitOutcome",
    "RatioEstimate",
    "independent_ratio",
    "interleaved_order",
    "interleaved_ratio",
    "pair_rounds",
    "paired_ratio",
    "ratio_limit_met",
]

Direction = Literal["at_most", "at_least"]
LimitOutcome = Literal["pass", "fail", "inconclusive"]
Role = Literal["reference", "candidate"]


@dataclass(frozen=True)
class RatioEstimate:
    """Candidate over reference, with a two-sided interval at ``confidence``.

    ``ci_low`` is 0 and ``ci_high`` infinite when there is no spread to build
    an interval from (a single pair): every limit is then inconclusive.
    """

    ratio: float
    ci_low: float
    ci_high: float
    n: int
    paired: bool
    confidence: float

    @property
    def ci(self) -> tuple[float, float]:
        return self.ci_low, self.ci_high


def paired_ratio(
    reference: Sequence[float], candidate: Sequence[float], *, confidence: float = 0.95
) -> RatioEstimate:
    """Ratio from rounds paired in order: the i-th candidate with the i-th reference.

    >>> est = paired_ratio([10.0, 10.4, 9.8, 10.1], [6.0, 6.3, 5.9, 6.05])
    >>> round(est.ratio, 3), [round(b, 3) for b in est.ci]
    (0.602, [0.597, 0.606])
    """
    log_ratio = paired_log_ratio(reference, candidate)
    return _estimate(log_ratio, n=len(reference), paired=True, confidence=confidence)


def independent_ratio(
    reference: Sequence[float], candidate: Sequence[float], *, confidence: float = 0.95
) -> RatioEstimate:
    """Ratio from unpaired samples (Welch on log values), when rounds were not interleaved.

    >>> est = independent_ratio([10.0, 10.4, 9.8], [6.0, 6.3, 5.9, 6.05])
    >>> round(est.ratio, 3), est.paired
    (0.602, False)
    """
    log_ratio = welch_log_ratio(reference, candidate)
    n = min(len(reference), len(candidate))
    return _estimate(log_ratio, n=n, paired=False, confidence=confidence)


def pair_rounds(rounds: Sequence[tuple[str, float]]) -> tuple[list[float], list[float]]:
    """Split interleaved ``(role, value)`` rounds into paired reference and candidate lists.

    The k-th reference round is paired with the k-th candidate round, which in
    an A B B A order are neighbours; a round left without a partner (an odd
    count) is dropped. Roles other than "reference" and "candidate" are an error.

    >>> pair_rounds([("reference", 1.0), ("candidate", 2.0), ("candidate", 2.1)])
    ([1.0], [2.0])
    """
    reference: list[float] = []
    candidate: list[float] = []
    for role, value in rounds:
        if role == "reference":
            reference.append(value)
        elif role == "candidate":
            candidate.append(value)
        else:
            raise ValueError(f"round role must be 'reference' or 'candidate', got {role!r}")
    pairs = min(len(reference), len(candidate))
    return reference[:pairs], candidate[:pairs]


def interleaved_ratio(
    rounds: Sequence[tuple[str, float]], *, confidence: float = 0.95
) -> RatioEstimate:
    """:func:`paired_ratio` over rounds recorded in the order they ran (see :func:`pair_rounds`)."""
    reference, candidate = pair_rounds(rounds)
    return paired_ratio(reference, candidate, confidence=confidence)


def interleaved_order(pairs: int, *, reference_first: bool = True) -> list[Role]:
    """The order to run ``pairs`` pairs in: A B B A A B B A ...

    Alternating which side goes first cancels a linear drift within each two
    pairs; choose ``reference_first`` at random per session to avoid a fixed
    first-round advantage (warm caches, a cooler GPU).

    >>> interleaved_order(3)
    ['reference', 'candidate', 'candidate', 'reference', 'reference', 'candidate']
    """
    first: Role = "reference" if reference_first else "candidate"
    second: Role = "candidate" if reference_first else "reference"
    order: list[Role] = []
    for k in range(pairs):
        order.extend((first, second) if k % 2 == 0 else (second, first))
    return order


def ratio_limit_met(ci: tuple[float, float], limit: float, direction: Direction) -> LimitOutcome:
    """Whether a ratio's interval clears a limit: "pass", "fail" or "inconclusive".

    ``at_most`` (an energy budget, e.g. <= 0.6x): pass when the upper bound is
    at or below the limit, fail when the lower bound is above it.
    ``at_least`` (a quality floor, e.g. >= 0.99x): pass when the lower bound is
    at or above the limit, fail when the upper bound is below it. A quality
    metric measured once has no spread: pass ``(value, value)``.

    >>> ratio_limit_met((0.44, 0.51), 0.6, "at_most"), ratio_limit_met((0.62, 0.7), 0.6, "at_most")
    ('pass', 'fail')
    >>> ratio_limit_met((0.55, 0.65), 0.6, "at_most")
    'inconclusive'
    >>> ratio_limit_met((0.991, 0.991), 0.99, "at_least")
    'pass'
    """
    low, high = ci
    if math.isnan(low) or math.isnan(high) or low > high:
        raise ValueError(f"not a confidence interval: {ci!r}")
    if direction == "at_most":
        if high <= limit:
            return "pass"
        return "fail" if low > limit else "inconclusive"
    if direction == "at_least":
        if low >= limit:
            return "pass"
        return "fail" if high < limit else "inconclusive"
    raise ValueError(f"direction must be 'at_most' or 'at_least', got {direction!r}")


def _estimate(log_ratio: LogRatio, *, n: int, paired: bool, confidence: float) -> RatioEstimate:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be within (0, 1), got {confidence!r}")
    low, high = log_ratio.interval(confidence)
    return RatioEstimate(
        ratio=log_ratio.ratio, ci_low=low, ci_high=high, n=n, paired=paired, confidence=confidence
    )
