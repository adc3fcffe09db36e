"""Student's t distribution and the normal one, in pure standard library.

The t distribution is computed from the regularized incomplete beta function
(continued fraction), and its quantile by a safeguarded Newton iteration; both
agree with scipy to 1e-10 or better for df up to 1e7 (the tests check 1e-8
against scipy when it is installed). The gate must import without numpy or scipy.

>>> round(t_quantile(0.975, 4), 6)
2.776445
"""

from __future__ import annotations

import functools
import math


def normal_cdf(x: float) -> float:
    """P(Z <= x) for a standard normal Z; ``erfc`` keeps the far tails accurate."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def normal_quantile(p: float) -> float:
    """The x with P(Z <= x) = p (Wichura's AS241 via the standard library).

    >>> round(normal_quantile(0.975), 6)
    1.959964
    """
    if p <= 0.0 or p >= 1.0:
        if p == 0.0:
            return -math.inf
        if p == 1.0:
            return math.inf
        raise ValueError(f"probability must be within [0, 1], got {p!r}")
    # statistics (and with it fractions, decimal, random) loads on first use: the
    # gate needs it, a session that only measures does not.
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


_CF_EPSILON = 1e-15
_CF_TINY = 1e-300
# The continued fraction needs O(sqrt(max(a, b))) terms; Welch's df can reach 1e6.
_CF_MAX_TERMS = 100_000


def incomplete_beta(a: float, b: float, x: float, y: float | None = None) -> float:
    """The regularized incomplete beta function I_x(a, b).

    ``y`` is ``1 - x`` when the caller can compute it without cancellation
    (the t distribution can: ``t^2 / (df + t^2)``), which keeps I accurate
    when ``x`` is within rounding of 1.

    >>> round(incomplete_beta(2.0, 3.0, 0.4), 10)
    0.5248
    """
    if a <= 0 or b <= 0:
        raise ValueError(f"incomplete_beta needs a > 0 and b > 0, got a={a!r}, b={b!r}")
    if y is None:
        y = 1.0 - x
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = a * _log_of(x, y) + b * _log_of(y, x) - _log_beta(a, b)
    # The fraction converges fast on this side of the mean; use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def _log_of(x: float, complement: float) -> float:
    """log(x), through log1p(-(1 - x)) when x is close to 1 and its complement is exact."""
    return math.log1p(-complement) if complement < 0.5 else math.log(x)


def _log_beta(a: float, b: float) -> float:
    small, large = min(a, b), max(a, b)
    if large < 100.0:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    # lgamma(large) - lgamma(large + small) cancels to ~1e-10 when large ~ 1e6 (Welch df);
    # Stirling's series for the difference keeps full precision.
    return math.lgamma(small) + _log_gamma_ratio(large, small)


def _log_gamma_ratio(z: float, b: float) -> float:
    """log(Gamma(z) / Gamma(z + b)) for z >= 100, by Stirling's series (error < 1e-17)."""

    def correction(v: float) -> float:
        return 1.0 / (12.0 * v) - 1.0 / (360.0 * v**3) + 1.0 / (1260.0 * v**5)

    return (
        -(z - 0.5) * math.log1p(b / z) - b * math.log(z + b) + b + correction(z) - correction(z + b)
    )


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction for I_x(a, b) by the modified Lentz method (Numerical Recipes 6.4).

    The zero guards are written out inline: this loop is the gate's hot spot.
    """
    tiny = _CF_TINY
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if -tiny < d < tiny:
        d = tiny
    d = 1.0 / d
    h = d
    for m in range(1, _CF_MAX_TERMS + 1):
        m2 = 2 * m
        even = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + even * d
        if -tiny < d < tiny:
            d = tiny
        c = 1.0 + even / c
        if -tiny < c < tiny:
            c = tiny
        d = 1.0 / d
        h *= d * c
        odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + odd * d
        if -tiny < d < tiny:
            d = tiny
        c = 1.0 + odd / c
        if -tiny < c < tiny:
            c = tiny
        d = 1.0 / d
        step = d * c
        h *= step
        if -_CF_EPSILON < step - 1.0 < _CF_EPSILON:
            return h
    raise ArithmeticError(f"incomplete beta fraction did not converge (a={a}, b={b}, x={x})")


def t_pdf(t: float, df: float) -> float:
    """Density of Student's t with ``df`` degrees of freedom (``math.inf`` = normal)."""
    _check_df(df)
    if math.isinf(df):
        return math.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
    return math.exp(_log_t_pdf(abs(t), df))


def _log_t_pdf(t: float, df: float) -> float:
    """log density for t >= 0, without overflowing t^2 for huge t."""
    log_norm = math.lgamma((df + 1.0) / 2.0) - math.lgamma(df / 2.0) - 0.5 * math.log(df * math.pi)
    r = t / math.sqrt(df)
    log_kernel = math.log1p(r * r) if r < 1e100 else 2.0 * math.log(r)
    return log_norm - (df + 1.0) / 2.0 * log_kernel


def t_sf(t: float, df: float) -> float:
    """P(T > t), accurate far into the upper tail (no ``1 - cdf`` cancellation).

    >>> round(t_sf(2.776445, 4), 6)
    0.025
    """
    _check_df(df)
    if math.isnan(t):
        return math.nan
    if math.isinf(df):
        return normal_cdf(-t)
    if t == 0.0:
        return 0.5
    tail = math.exp(_log_upper_tail(abs(t), df))
    return tail if t > 0 else 1.0 - tail


def _log_upper_tail(t: float, df: float) -> float:
    """log P(T > t) for t > 0 and finite df."""
    a = df / 2.0
    tt = t * t
    if tt < 1e300:
        # P(|T| > t) = I_x(df/2, 1/2) with x = df / (df + t^2); 1 - x is passed exactly.
        two_sided = incomplete_beta(a, 0.5, df / (df + tt), tt / (df + tt))
        return math.log(0.5 * two_sided) if two_sided > 0.0 else -math.inf
    # x = df / t^2 would be subnormal: I_x(a, 1/2) = x^a / (a B(a, 1/2)) to O(x).
    log_x = math.log(df) - 2.0 * math.log(t)
    return a * log_x - _log_beta(a, 0.5) - math.log(2.0 * a)


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` (possibly fractional) degrees of freedom.

    >>> round(t_cdf(2.763769, 10), 6)
    0.99
    """
    return t_sf(-t, df)


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p: Newton's method on log P(T > t), kept inside a bracket.

    The log of the tail is close to linear in t for heavy tails and close to a
    parabola for light ones, so Newton converges in a few steps from a
    Cornish-Fisher guess; when a step would leave the bracket known to hold the
    root, a bisection step replaces it, so the iteration cannot diverge.

    >>> round(t_quantile(0.95, 1), 6), round(t_quantile(0.99, 10), 6)
    (6.313752, 2.763769)
    """
    _check_df(df)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be within [0, 1], got {p!r}")
    if p == 0.5:
        return 0.0
    # Solve for the smaller tail, taken from p directly: 1 - p would lose the
    # digits of a tiny lower-tail probability.
    if p < 0.5:
        return -_upper_quantile(p, df)
    return _upper_quantile(1.0 - p, df)


# The gate asks for the same few levels at the same few df (fixed by round counts) again
# and again; each answer costs a handful of incomplete-beta evaluations.
@functools.lru_cache(maxsize=4096)
def _upper_quantile(q: float, df: float) -> float:
    """The t >= 0 with P(T > t) = q, for 0 <= q < 0.5."""
    if q == 0.0:
        return math.inf
    if math.isinf(df):
        return -normal_quantile(q)
    if df == 1.0:
        return 1.0 / math.tan(math.pi * q)  # Cauchy; cot keeps tiny q exact
    if df == 2.0:
        return (1.0 - 2.0 * q) / math.sqrt(2.0 * q * (1.0 - q))
    return _solve_upper_tail(q, df)


def _solve_upper_tail(q: float, df: float) -> float:
    """The t > 0 with P(T > t) = q: Newton on log P(T > t) against log t.

    In these coordinates a power-law tail (small df) is a straight line and a
    normal-like tail a smooth convex curve, so Newton steps are well behaved.
    Every step must land inside the bracket [low, high] known to hold the
    root, or a bisection step is taken instead, so the iteration cannot diverge.
    """
    target = math.log(q)
    t = max(_cornish_fisher(q, df), 1e-8)
    low, high = 0.0, math.inf
    for _ in range(200):
        log_tail = _log_upper_tail(t, df)
        if log_tail == target:
            return t
        if log_tail > target:
            low = t
        else:
            high = t
        # d log sf / d log t = -t pdf(t) / sf(t), computed in logs to survive tiny tails.
        slope = -math.exp(math.log(t) + _log_t_pdf(t, df) - log_tail)
        step = (target - log_tail) / slope if math.isfinite(log_tail) else math.inf
        proposal = t * math.exp(step) if abs(step) < 50.0 else math.nan
        if not low < proposal < high:
            proposal = _bisect(low, high)
        if math.isinf(proposal):
            return math.inf  # the quantile is beyond the largest float
        # Newton converges quadratically: a relative step of 1e-6 leaves an error of
        # order 1e-12 in the proposal, so it is returned without another evaluation.
        if abs(proposal - t) <= 1e-6 * t:
            return proposal
        t = proposal
    raise ArithmeticError(f"t quantile did not converge (q={q}, df={df})")


def _bisect(low: float, high: float) -> float:
    if math.isinf(high):
        return max(1e3 * low, 1.0)
    if low > 0.0 and high > 4.0 * low:
        return math.sqrt(low * high)  # a geometric step: tails of small df span decades
    return 0.5 * (low + high)


def _cornish_fisher(q: float, df: float) -> float:
    """The Cornish-Fisher expansion of the t quantile around the normal one (a start value)."""
    z = -normal_quantile(q)
    z2 = z * z
    return z * (
        1.0
        + (z2 + 1.0) / (4.0 * df)
        + (5.0 * z2 * z2 + 16.0 * z2 + 3.0) / (96.0 * df * df)
        + (3.0 * z2**3 + 19.0 * z2 * z2 + 17.0 * z2 - 15.0) / (384.0 * df**3)
    )


def _check_df(df: float) -> None:
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df!r}")


def f_sf(f: float, df_num: float, df_den: float) -> float:
    """P(F > f) for Fisher's F with ``df_num`` and ``df_den`` degrees of freedom.

    >>> round(f_sf(3.0, 2, 10), 4)
    0.0954
    """
    _check_df(df_num)
    _check_df(df_den)
    if f <= 0.0:
        return 1.0
    if math.isinf(f):
        return 0.0
    # P(F > f) = I_x(df_den / 2, df_num / 2) with x = df_den / (df_den + df_num f).
    x = df_den / (df_den + df_num * f)
    return incomplete_beta(df_den / 2.0, df_num / 2.0, x, df_num * f / (df_den + df_num * f))
