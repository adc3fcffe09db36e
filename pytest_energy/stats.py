"""Summaries of samples, and inference on ratios of energies.

Pure standard library on purpose: the gate must import without numpy or scipy
(the distributions are in :mod:`.student_t`, imported where a test is judged: a run
that judges nothing does not load them).

Energies are compared as ratios, so inference works on ``log(J)``: a ratio of
1.05 is a difference of ``log(1.05)`` whatever the size of the test, and
lognormal round-to-round noise becomes normal noise.

>>> s = summarize([10.0, 10.2, 9.9, 10.1, 9.8])
>>> (s.n, s.median, round(s.mean, 3), round(s.cv, 4))
(5, 10.0, 10.0, 0.0158)
>>> r = welch_log_ratio([10.0, 10.1, 9.9], [11.0, 11.2, 10.9])
>>> round(r.ratio, 3), round(r.p_above(1.01), 5)
(1.103, 0.00065)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal

from pytest_energy.frozen import frozen
from pytest_energy.record import Summary

__all__ = [
    "LogRatio",
    "history_log_ratio",
    "log_values",
    "paired_log_ratio",
    "percentage",
    "sample_variance",
    "summarize",
    "welch_df",
    "welch_log_ratio",
]


# --- summaries ---------------------------------------------------------------------------


def fmean(values: Iterable[float]) -> float:
    """The arithmetic mean, as ``statistics.fmean`` computes it (``fsum / n``).

    Here rather than imported: ``statistics`` (with ``fractions``) was a noticeable part of
    what ``--energy`` costs a run's start-up (issue 16).
    """
    data = values if isinstance(values, Sequence) else list(values)
    if not data:
        raise ValueError("fmean() needs at least one value")
    return math.fsum(data) / len(data)


def middle(values: Iterable[float]) -> float:
    """The median, as ``statistics.median`` computes it (the mean of the middle two)."""
    data = sorted(values)
    n = len(data)
    if n == 0:
        raise ValueError("middle() needs at least one value")
    half = n // 2
    return data[half] if n % 2 else (data[half - 1] + data[half]) / 2


def summarize(values: Sequence[float], *, confidence: float = 0.95) -> Summary:
    """Location and spread of a sample, with a Student t interval for the mean.

    ``cv`` is the sample standard deviation over the absolute mean (0 when the
    mean is 0 and every value is equal, infinite when the mean is 0 otherwise).
    One value gives a zero spread and an interval collapsed onto the value:
    there is nothing to estimate the spread from, and callers check ``n``.

    >>> summarize([3.0])
    Summary(n=1, median=3.0, mean=3.0, stdev=0.0, cv=0.0, ci_low=3.0, ci_high=3.0)
    >>> s = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    >>> round(s.ci_low, 4), round(s.ci_high, 4)
    (1.0368, 4.9632)
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be within (0, 1), got {confidence!r}")
    data = [float(v) for v in values]
    if not data:
        raise ValueError("summarize() needs at least one value")
    if not all(math.isfinite(v) for v in data):
        raise ValueError("summarize() got a value that is not a finite number")
    n = len(data)
    mean = fmean(data)
    median = float(middle(data))
    if n == 1:
        return Summary(n=1, median=median, mean=mean, stdev=0.0, cv=0.0, ci_low=mean, ci_high=mean)
    from pytest_energy.student_t import t_quantile  # loaded only where a spread is estimated

    stdev = math.sqrt(sample_variance(data))
    cv = stdev / abs(mean) if mean != 0 else (0.0 if stdev == 0 else math.inf)
    half = t_quantile(0.5 + confidence / 2, n - 1) * stdev / math.sqrt(n)
    return Summary(
        n=n, median=median, mean=mean, stdev=stdev, cv=cv, ci_low=mean - half, ci_high=mean + half
    )


def sample_variance(values: Sequence[float]) -> float:
    """The unbiased sample variance (n - 1 denominator); 0 for a single value.

    Two passes in floats: ``statistics.variance`` is exact but computes with
    fractions, a hundred times slower, and the gate calls this for every test.

    >>> sample_variance([1.0, 2.0, 3.0, 4.0])
    1.6666666666666667
    """
    n = len(values)
    if n < 2:
        if n == 0:
            raise ValueError("sample_variance() needs at least one value")
        return 0.0
    mean = sum(values) / n
    return sum([(v - mean) ** 2 for v in values]) / (n - 1)


def log_values(values: Sequence[float]) -> list[float]:
    """Natural logs of energies; a non-positive or non-finite value is a ``ValueError``.

    >>> [round(v, 4) for v in log_values([1.0, math.e])]
    [0.0, 1.0]
    """
    try:
        logs = [math.log(v) for v in values]
    except ValueError:  # math.log refuses zero and negative values
        logs = [math.nan]
    if math.isfinite(sum(logs)):  # one check catches nan and inf anywhere
        return logs
    bad = next((v for v in values if not (math.isfinite(v) and v > 0)), None)
    if bad is None:  # finite logs whose sum overflowed: impossible below 1e305 values
        return logs
    raise ValueError(f"cannot take the log of energy {bad!r}: it must be positive and finite")


def percentage(fraction: float) -> str:
    """A fraction as the percentage a user types: 0.005 -> ``0.5%``, 0.05 -> ``5%``.

    Thresholds, margins, alphas and limits are given as percentages
    (``--energy-fail=0.5%``) and must read back as given: ``f"{x:.0%}"`` printed
    0.5 % as "0%". Six significant figures drop the float noise of ``100 * 0.07``
    (7.000000000000001), and the figure never turns into an exponent. Here, at
    the bottom of the package, so that settings, the gate and every report
    print a percentage the same way.

    >>> [percentage(f) for f in (0.05, 0.005, 0.0125, 0.07, 0.01, 1e-7, 0.0)]
    ['5%', '0.5%', '1.25%', '7%', '1%', '0.00001%', '0%']
    >>> percentage(math.nan)
    '?%'
    """
    if not math.isfinite(fraction):
        return "?%"
    return f"{Decimal(f'{100.0 * fraction:.6g}'):f}%"


# --- inference on log ratios -------------------------------------------------------------------


@frozen
class LogRatio:
    """What the data say about ``log(current / baseline)``: estimate, standard error, df.

    ``se`` is 0 when both samples have no spread (deterministic values: the ratio
    is known exactly) and ``math.inf`` when no sample has a spread to estimate it
    from (one value on each side). ``df`` is ``math.inf`` when the standard error
    needs no estimate.

    >>> r = LogRatio(estimate=math.log(1.10), se=0.02, df=8)
    >>> round(r.ratio, 2), round(r.lower_bound(0.05), 4), round(r.upper_bound(0.05), 4)
    (1.1, 1.0598, 1.1417)
    """

    estimate: float
    se: float
    df: float

    @property
    def ratio(self) -> float:
        return math.exp(self.estimate)

    def lower_bound(self, alpha: float) -> float:
        """One-sided lower confidence bound of the ratio at level ``1 - alpha``."""
        return math.exp(self.estimate - self._half_width(alpha))

    def upper_bound(self, alpha: float) -> float:
        """One-sided upper confidence bound of the ratio at level ``1 - alpha``."""
        return math.exp(self.estimate + self._half_width(alpha))

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Two-sided interval of the ratio, e.g. 95 % for display."""
        half = self._half_width((1.0 - confidence) / 2.0)
        return math.exp(self.estimate - half), math.exp(self.estimate + half)

    def p_above(self, limit: float) -> float:
        """One-sided p-value against ``ratio <= limit``: small when the ratio is surely above."""
        return self._p_upper(self.estimate - math.log(limit))

    def p_below(self, limit: float) -> float:
        """One-sided p-value against ``ratio >= limit``: small when the ratio is surely below."""
        return self._p_upper(math.log(limit) - self.estimate)

    def _p_upper(self, distance: float) -> float:
        if math.isinf(self.se):
            return 1.0
        if self.se == 0.0:
            return 0.0 if distance > 0 else 1.0
        from pytest_energy.student_t import t_sf

        return t_sf(distance / self.se, self.df)

    def _half_width(self, alpha: float) -> float:
        if self.se == 0.0:
            return 0.0
        if math.isinf(self.se):
            return math.inf
        from pytest_energy.student_t import t_quantile

        return t_quantile(1.0 - alpha, self.df) * self.se


def welch_log_ratio(baseline: Sequence[float], current: Sequence[float]) -> LogRatio:
    """Welch's unequal-variance comparison of mean log energies, current over baseline.

    The two samples come from different sessions, so their spreads may differ;
    Welch's standard error does not assume otherwise. Its degrees of freedom
    are capped at the value they take when the spreads are equal
    (:func:`welch_df` of unit variances). Uncapped, the Satterthwaite estimate
    is itself noisy and grows exactly when one sample's spread comes out small
    by chance, which also inflates t: with 20 stored rounds against 3 fresh
    ones and equal spreads, a one-sided test at 2e-4 (1 % over 50 tests)
    rejected 18 times too often in 1e6 simulated pairs. Capped, it stayed at
    or below the nominal rate for equal spreads in every pairing simulated
    (5-20 against 3-15 rounds), and within 1.7x of it when the two sessions'
    variances differed fourfold. Pooled-variance t, exact for equal spreads,
    was up to 60x too liberal under that fourfold difference; Hsu's
    conservative ``min(n) - 1`` degrees of freedom never exceeded the rate
    but cost 10-20 points of power in the CI simulation.

    A side with a single value has no spread of its own and borrows the
    other side's (the pooled two-sample form).

    >>> r = welch_log_ratio([1.0, 1.0], [2.0, 2.0])
    >>> r.ratio, r.se
    (2.0, 0.0)
    """
    base, cur = log_values(baseline), log_values(current)
    if not base or not cur:
        raise ValueError("welch_log_ratio needs at least one value on each side")
    n_b, n_c = len(base), len(cur)
    estimate = sum(cur) / n_c - sum(base) / n_b
    var_b = sample_variance(base) if n_b > 1 else None
    var_c = sample_variance(cur) if n_c > 1 else None
    if var_b is None or var_c is None:
        return _borrowed_spread(estimate, var_b, n_b, var_c, n_c)
    se = math.sqrt(var_b / n_b + var_c / n_c)
    if se == 0.0:
        return LogRatio(estimate=estimate, se=0.0, df=math.inf)
    df = min(welch_df(var_b, n_b, var_c, n_c), welch_df(1.0, n_b, 1.0, n_c))
    return LogRatio(estimate=estimate, se=se, df=df)


def _borrowed_spread(
    estimate: float, var_b: float | None, n_b: int, var_c: float | None, n_c: int
) -> LogRatio:
    """One side has a single value: use the other side's spread for both (pooled form)."""
    if var_c is not None:
        spread, donor_n = var_c, n_c
    elif var_b is not None:
        spread, donor_n = var_b, n_b
    else:
        return LogRatio(estimate=estimate, se=math.inf, df=math.inf)
    se = math.sqrt(spread * (1.0 / n_b + 1.0 / n_c))
    return LogRatio(estimate=estimate, se=se, df=float(donor_n - 1) if se > 0 else math.inf)


def welch_df(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """Welch-Satterthwaite degrees of freedom for two sample variances.

    >>> round(welch_df(1.0, 5, 1.0, 5), 6)
    8.0
    """
    part_a, part_b = var_a / n_a, var_b / n_b
    denominator = part_a * part_a / (n_a - 1) + part_b * part_b / (n_b - 1)
    if denominator == 0.0:
        return math.inf
    return (part_a + part_b) ** 2 / denominator


def history_log_ratio(runs: Sequence[float], current: Sequence[float]) -> LogRatio:
    """Compare this run with a history of K earlier runs (one value per run).

    Run-to-run variation (a new boot, another temperature) is larger than
    round-to-round variation inside a session, and only the history shows it.
    This run is treated as one more draw from the same distribution: the
    standard error is the prediction one, ``s_runs * sqrt(1 + 1/K)``, with
    K - 1 degrees of freedom. It is conservative when this run has at least
    as many rounds as the stored runs had, as the plugin ensures. Needs K >= 2.

    >>> r = history_log_ratio([10.0, 10.2, 9.8], [11.0, 11.1])
    >>> round(r.ratio, 3), r.df
    (1.105, 2.0)
    """
    history, cur = log_values(runs), log_values(current)
    if len(history) < 2 or not cur:
        raise ValueError("history_log_ratio needs at least 2 runs and 1 current value")
    k = len(history)
    estimate = fmean(cur) - fmean(history)
    se = math.sqrt(sample_variance(history) * (1.0 + 1.0 / k))
    return LogRatio(estimate=estimate, se=se, df=float(k - 1) if se > 0 else math.inf)


def paired_log_ratio(reference: Sequence[float], candidate: Sequence[float]) -> LogRatio:
    """Ratio of candidate to reference from pairs of rounds measured back to back.

    Pairs from interleaved rounds (A B B A ...) share the machine's state, so
    the difference of their logs cancels slow drift (temperature, background
    load) that an unpaired comparison would count as noise or as an effect.

    >>> r = paired_log_ratio([10.0, 12.0, 11.0], [5.0, 6.1, 5.4])
    >>> round(r.ratio, 2), r.df
    (0.5, 2.0)
    """
    if len(reference) != len(candidate):
        raise ValueError(
            f"paired rounds need equal counts, got {len(reference)} reference "
            f"and {len(candidate)} candidate"
        )
    differences = [c - r for r, c in zip(log_values(reference), log_values(candidate), strict=True)]
    if not differences:
        raise ValueError("paired_log_ratio needs at least one pair")
    n = len(differences)
    estimate = fmean(differences)
    if n == 1:
        return LogRatio(estimate=estimate, se=math.inf, df=math.inf)
    se = math.sqrt(sample_variance(differences) / n)
    return LogRatio(estimate=estimate, se=se, df=float(n - 1) if se > 0 else math.inf)
