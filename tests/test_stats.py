"""Summaries, the t distribution and log-ratio inference, against known values.

Table values are from standard t tables (and agree with scipy); where scipy is
installed, a wider grid is compared with it, otherwise those tests skip.
"""

from __future__ import annotations

import doctest
import math
import statistics

import pytest

from pytest_energy import stats
from pytest_energy.stats import (
    LogRatio,
    history_log_ratio,
    log_values,
    paired_log_ratio,
    sample_variance,
    summarize,
    welch_df,
    welch_log_ratio,
)
from pytest_energy.student_t import (
    incomplete_beta,
    normal_cdf,
    normal_quantile,
    t_cdf,
    t_pdf,
    t_quantile,
    t_sf,
)

# --- the t distribution ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.975, 4, 2.776445),
        (0.99, 10, 2.763769),
        (0.95, 1, 6.313752),
        (0.975, 30, 2.042272),
        (0.995, 2, 9.924843),
        (0.9995, 9, 4.780913),
        (0.9, 5, 1.475884),
        (0.975, 1000, 1.962339),
    ],
)
def test_t_quantile_matches_table_values(p: float, df: float, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=5e-7)
    assert t_quantile(1 - p, df) == pytest.approx(-expected, abs=5e-7)


@pytest.mark.parametrize("df", [0.5, 1, 1.5, 2, 3, 4.7, 9, 30, 250, 1e5])
@pytest.mark.parametrize("p", [1e-9, 2e-4, 0.01, 0.2, 0.5, 0.77, 0.975, 1 - 1e-6])
def test_t_quantile_inverts_the_cdf(p: float, df: float) -> None:
    t = t_quantile(p, df)
    assert t_cdf(t, df) == pytest.approx(p, rel=1e-10, abs=1e-14)


def test_t_cdf_matches_the_closed_forms_for_one_and_two_df() -> None:
    # The lower tails written without cancellation, so they are exact far out too.
    for t in (-1e6, -30.0, -2.5, -0.1, 0.0, 1e-9, 0.7, 4.0, 1e8):
        a = abs(t)
        cauchy_tail = math.atan2(1.0, a) / math.pi
        root = math.sqrt(2.0 + t * t)
        two_df_tail = 1.0 / (root * (root + a))
        for df, tail in ((1, cauchy_tail), (2, two_df_tail)):
            expected = tail if t <= 0 else 1.0 - tail
            assert t_cdf(t, df) == pytest.approx(expected, rel=1e-12)


def test_t_tails_stay_accurate_far_out() -> None:
    # P(T > 1e6) with 1 df is atan's tail, 1/(pi t): no "1 - cdf" cancellation.
    assert t_sf(1e6, 1) == pytest.approx(1.0 / (math.pi * 1e6), rel=1e-9)
    assert t_sf(-1e6, 1) == pytest.approx(1.0 - 1.0 / (math.pi * 1e6), rel=1e-12)
    assert t_quantile(1e-12, 1) == pytest.approx(-1.0 / math.tan(math.pi * 1e-12), rel=1e-12)


def test_infinite_df_is_the_normal_distribution() -> None:
    assert t_cdf(1.959963984540054, math.inf) == pytest.approx(0.975, rel=1e-12)
    assert t_quantile(0.975, math.inf) == pytest.approx(normal_quantile(0.975))
    assert t_pdf(0.0, math.inf) == pytest.approx(1 / math.sqrt(2 * math.pi))
    assert t_quantile(0.975, 1e8) == pytest.approx(1.959964, abs=1e-6)


def test_t_pdf_integrates_to_the_cdf() -> None:
    # A midpoint sum of the density over [-1, 2] against the cdf difference.
    df, steps = 3.5, 20_000
    width = 3.0 / steps
    area = sum(t_pdf(-1.0 + (k + 0.5) * width, df) for k in range(steps)) * width
    assert area == pytest.approx(t_cdf(2.0, df) - t_cdf(-1.0, df), rel=1e-8)


def test_t_edge_arguments() -> None:
    assert t_quantile(0.5, 7) == 0.0
    assert t_quantile(0.0, 7) == -math.inf
    assert t_quantile(1.0, 7) == math.inf
    assert t_sf(0.0, 3) == 0.5
    assert math.isnan(t_sf(math.nan, 3))
    with pytest.raises(ValueError, match="probability"):
        t_quantile(1.5, 3)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_cdf(1.0, 0)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile(0.9, -2)


def test_normal_helpers() -> None:
    assert normal_quantile(0.975) == pytest.approx(1.959963985, abs=1e-9)
    assert normal_quantile(0.0) == -math.inf
    assert normal_quantile(1.0) == math.inf
    assert normal_cdf(-8.0) == pytest.approx(6.22096057427e-16, rel=1e-9)
    with pytest.raises(ValueError, match="probability"):
        normal_quantile(-0.1)


def test_incomplete_beta_identities() -> None:
    for x in (1e-6, 0.1, 0.37, 0.5, 0.9, 1 - 1e-9):
        assert incomplete_beta(2.5, 1.0, x) == pytest.approx(x**2.5, rel=1e-12)
        assert incomplete_beta(1.0, 3.0, x) == pytest.approx(1 - (1 - x) ** 3, rel=1e-12)
        assert incomplete_beta(4.2, 0.7, x) == pytest.approx(
            1 - incomplete_beta(0.7, 4.2, 1 - x), abs=1e-14
        )
    assert incomplete_beta(2.0, 3.0, 0.0) == 0.0
    assert incomplete_beta(2.0, 3.0, 1.0) == 1.0
    with pytest.raises(ValueError, match="a > 0"):
        incomplete_beta(0.0, 1.0, 0.5)


def test_t_distribution_agrees_with_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    worst_quantile = worst_cdf = 0.0
    for df in (0.7, 1, 1.5, 2, 2.5, 3, 4, 4.7, 7, 10, 19.4, 30, 99.9, 150, 1e3, 1e4, 1e6):
        for p in (1e-10, 1e-6, 2e-4, 0.001, 0.025, 0.1, 0.3, 0.5, 0.8, 0.975, 0.999, 1 - 1e-7):
            expected = float(scipy_stats.t.ppf(p, df))
            error = abs(t_quantile(p, df) - expected) / max(1.0, abs(expected))
            worst_quantile = max(worst_quantile, error)
        for t in (-300.0, -30.0, -5.0, -2.0, -0.5, 0.0, 0.3, 1.0, 2.5, 8.0, 40.0, 1e3):
            worst_cdf = max(worst_cdf, abs(t_cdf(t, df) - float(scipy_stats.t.cdf(t, df))))
    assert worst_quantile < 1e-8
    assert worst_cdf < 1e-9


# --- summaries ---------------------------------------------------------------------------------


def test_summarize_a_sample() -> None:
    values = [10.0, 10.4, 9.8, 10.1, 9.7]
    s = summarize(values)
    assert s.n == 5
    assert s.median == 10.0
    assert s.mean == pytest.approx(10.0)
    assert s.stdev == pytest.approx(statistics.stdev(values))
    assert s.cv == pytest.approx(s.stdev / 10.0)
    half = 2.776445 * s.stdev / math.sqrt(5)
    assert (s.ci_low, s.ci_high) == pytest.approx((10.0 - half, 10.0 + half), abs=1e-6)


def test_summarize_one_value_collapses_the_interval() -> None:
    s = summarize([4.2])
    assert (s.n, s.mean, s.median, s.stdev, s.cv, s.ci_low, s.ci_high) == (
        1,
        4.2,
        4.2,
        0.0,
        0.0,
        4.2,
        4.2,
    )


def test_summarize_identical_values_has_no_spread() -> None:
    s = summarize([3.0, 3.0, 3.0])
    assert (s.stdev, s.cv, s.ci_low, s.ci_high) == (0.0, 0.0, 3.0, 3.0)


def test_summarize_zero_mean_and_confidence() -> None:
    assert summarize([-1.0, 1.0]).cv == math.inf
    assert summarize([0.0, 0.0]).cv == 0.0
    wide = summarize([1.0, 2.0, 3.0], confidence=0.99)
    narrow = summarize([1.0, 2.0, 3.0], confidence=0.5)
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high


def test_summarize_rejects_empty_and_non_finite_samples() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        summarize([])
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, math.nan])
    with pytest.raises(ValueError, match="confidence"):
        summarize([1.0, 2.0], confidence=95)


def test_sample_variance_matches_the_exact_one() -> None:
    values = [1e9 + 0.1, 1e9 + 0.3, 1e9 - 0.2, 1e9]
    assert sample_variance(values) == pytest.approx(statistics.variance(values), rel=1e-6)
    assert sample_variance([5.0]) == 0.0
    with pytest.raises(ValueError, match="at least one value"):
        sample_variance([])


@pytest.mark.parametrize("bad", [0.0, -1.5, math.inf, math.nan])
def test_log_values_refuses_energies_without_a_log(bad: float) -> None:
    with pytest.raises(ValueError, match="must be positive and finite"):
        log_values([1.0, bad])


# --- log-ratio inference -----------------------------------------------------------------------


def test_welch_on_log_values() -> None:
    base, cur = [10.0, 10.2, 9.8, 10.1], [11.0, 11.3, 10.8]
    r = welch_log_ratio(base, cur)
    lb, lc = [math.log(v) for v in base], [math.log(v) for v in cur]
    assert r.estimate == pytest.approx(statistics.fmean(lc) - statistics.fmean(lb))
    vb, vc = statistics.variance(lb), statistics.variance(lc)
    assert r.se == pytest.approx(math.sqrt(vb / 4 + vc / 3))
    assert r.df == pytest.approx(min(welch_df(vb, 4, vc, 3), welch_df(1.0, 4, 1.0, 3)))


def test_welch_df_is_capped_at_the_equal_spread_value() -> None:
    # A tiny current spread would push Welch's df toward the baseline's 19;
    # the cap keeps it at the equal-spread value for 20 against 3 rounds.
    base = [math.exp(0.03 * z) for z in (-1.5, -1, -0.5, 0, 0.5, 1, 1.5) * 3][:20]
    cur = [1.0, 1.0001, 0.9999]
    r = welch_log_ratio(base, cur)
    assert welch_df(1.0, 20, 1.0, 3) == pytest.approx(2.64, abs=0.01)
    assert r.df == pytest.approx(welch_df(1.0, 20, 1.0, 3))
    assert welch_df(1.0, 5, 1.0, 5) == pytest.approx(8.0)
    assert welch_df(0.0, 5, 0.0, 5) == math.inf


def test_welch_with_a_single_value_borrows_the_other_spread() -> None:
    r = welch_log_ratio([10.0], [11.0, 11.2, 10.8])
    spread = statistics.variance([math.log(v) for v in (11.0, 11.2, 10.8)])
    assert r.se == pytest.approx(math.sqrt(spread * (1 + 1 / 3)))
    assert r.df == 2.0
    mirrored = welch_log_ratio([11.0, 11.2, 10.8], [10.0])
    assert mirrored.se == pytest.approx(r.se)


def test_welch_degenerate_samples() -> None:
    nothing = welch_log_ratio([10.0], [12.0])
    assert nothing.se == math.inf
    assert nothing.ratio == pytest.approx(1.2)
    assert nothing.interval() == (0.0, math.inf)
    assert nothing.p_above(1.01) == 1.0
    exact = welch_log_ratio([10.0, 10.0], [12.0, 12.0])
    assert (exact.se, exact.df) == (0.0, math.inf)
    assert exact.interval() == pytest.approx((1.2, 1.2))
    assert exact.p_above(1.01) == 0.0
    assert exact.p_above(1.3) == 1.0
    with pytest.raises(ValueError, match="at least one value"):
        welch_log_ratio([], [1.0])
    with pytest.raises(ValueError, match="positive"):
        welch_log_ratio([1.0, -1.0], [1.0])


def test_log_ratio_bounds_and_p_values_agree() -> None:
    r = LogRatio(estimate=math.log(1.08), se=0.02, df=9.0)
    for alpha in (0.2, 0.05, 0.01, 2e-4):
        low = r.lower_bound(alpha)
        assert r.p_above(low) == pytest.approx(alpha, rel=1e-9)
        high = r.upper_bound(alpha)
        assert r.p_below(high) == pytest.approx(alpha, rel=1e-9)
    low, high = r.interval(0.95)
    assert (low, high) == pytest.approx((r.lower_bound(0.025), r.upper_bound(0.025)))
    assert low < r.ratio < high
    assert low * high == pytest.approx(r.ratio**2)  # symmetric on the log scale


def test_history_is_a_prediction_interval() -> None:
    runs, current = [10.0, 10.4, 9.7, 10.1], [11.0, 11.2]
    r = history_log_ratio(runs, current)
    logs = [math.log(v) for v in runs]
    assert r.se == pytest.approx(statistics.stdev(logs) * math.sqrt(1 + 1 / 4))
    assert r.df == 3.0
    assert r.estimate == pytest.approx(
        statistics.fmean(math.log(v) for v in current) - statistics.fmean(logs)
    )
    assert history_log_ratio([5.0, 5.0], [5.5]).se == 0.0
    with pytest.raises(ValueError, match="at least 2 runs"):
        history_log_ratio([10.0], [11.0])


def test_paired_differences() -> None:
    reference = [10.0, 12.0, 11.0, 10.5]
    candidate = [5.1, 6.0, 5.4, 5.3]
    r = paired_log_ratio(reference, candidate)
    d = [math.log(c / a) for a, c in zip(reference, candidate, strict=True)]
    assert r.estimate == pytest.approx(statistics.fmean(d))
    assert r.se == pytest.approx(statistics.stdev(d) / 2)
    assert r.df == 3.0
    assert paired_log_ratio([10.0], [5.0]).se == math.inf
    assert paired_log_ratio([10.0, 10.0], [5.0, 5.0]).se == 0.0
    with pytest.raises(ValueError, match="equal counts"):
        paired_log_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least one pair"):
        paired_log_ratio([], [])


def test_pairing_cancels_drift_that_an_unpaired_comparison_counts_as_noise() -> None:
    drift = [1.0 + 0.02 * k for k in range(8)]  # the machine warms up across the session
    reference = [10.0 * d for d in drift]
    candidate = [6.0 * d * (1.001 if k % 2 else 0.999) for k, d in enumerate(drift)]
    paired = paired_log_ratio(reference, candidate)
    unpaired = welch_log_ratio(reference, candidate)
    assert paired.ratio == pytest.approx(0.6, rel=1e-3)
    assert paired.se < unpaired.se / 10


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(stats, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} doctest(s) failed"
