"""Number, unit and text formatting shared by every report.

All reports print the same figure the same way, so a number in the PR comment
can be found in the HTML report. Formatting is fixed (three significant
figures, no exponents, no locale), which keeps rendered files deterministic
and golden files stable.

The escape helpers here are for Markdown; HTML escaping is Jinja's autoescape
and workflow-command escaping lives in :mod:`pytest_energy.report.annotations`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pytest_energy.report import escape

if TYPE_CHECKING:
    from pytest_energy.record import Summary

__all__ = [
    "DASH",
    "change",
    "co2e",
    "cv",
    "duration",
    "energy",
    "energy_interval",
    "energy_per_unit",
    "grams",
    "has_interval",
    "markdown_text",
    "no_interval",
    "percentage",
    "power",
    "ratio",
    "relative_interval",
    "share",
    "shorten",
    "sig",
    "visible",
    "watt_hours",
    "without_bidi",
]

#: What a missing figure looks like everywhere (an em dash reads as "no value").
DASH = "—"

JOULES_PER_KWH = 3_600_000.0


def percentage(fraction: float) -> str:
    """A fraction as the percentage a user types (:func:`pytest_energy.stats.percentage`)."""
    # Imported here: a run that judges nothing prints no percentage and does not load
    # the statistics (issue 16).
    from pytest_energy.stats import percentage as written

    return written(fraction)


def sig(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant figures, never in exponent notation.

    Trailing zeros after the decimal point are kept so columns of figures line
    up (``2.00``); large values are rounded, not abbreviated (``12345`` -> ``12300``).
    """
    if not math.isfinite(value):
        return DASH
    if value == 0:
        return "0"
    # Round first, then pick the number of decimals from the rounded value,
    # so 9.996 becomes "10.0" rather than "10.00".
    rounded = float(f"{value:.{digits - 1}e}")
    magnitude = math.floor(math.log10(abs(rounded)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{rounded:.{decimals}f}"


def _scaled(value: float, units: list[tuple[float, str]], digits: int = 3) -> str:
    """Pick the largest unit whose scale the rounded magnitude reaches."""
    if not math.isfinite(value):
        return DASH
    magnitude = abs(float(f"{value:.{digits - 1}e}"))
    scale, name = units[0]
    for candidate_scale, candidate_name in units:
        if magnitude >= candidate_scale:
            scale, name = candidate_scale, candidate_name
    return f"{sig(value / scale, digits)} {name}"


_ENERGY_UNITS = [(1e-6, "µJ"), (1e-3, "mJ"), (1.0, "J"), (1e3, "kJ"), (JOULES_PER_KWH, "kWh")]
_WH_UNITS = [(1e-6, "µWh"), (1e-3, "mWh"), (1.0, "Wh"), (1e3, "kWh"), (1e6, "MWh")]
_POWER_UNITS = [(1e-3, "mW"), (1.0, "W"), (1e3, "kW")]
_MASS_UNITS = [(1e-6, "µg"), (1e-3, "mg"), (1.0, "g"), (1e3, "kg"), (1e6, "t")]


def energy(joules: float | None) -> str:
    """``12.3 J``, ``456 mJ``, ``7.89 kJ``; kWh from 3.6 MJ up."""
    if joules is None:
        return DASH
    if joules == 0:
        return "0 J"
    return _scaled(joules, _ENERGY_UNITS)


def energy_per_unit(joules: float | None, unit: str) -> str:
    """``12.3 mJ/sample``: energy per unit of work."""
    if joules is None:
        return DASH
    return f"{energy(joules)}/{unit}"


def watt_hours(joules: float | None) -> str:
    """The same energy in watt-hours (``3.42 Wh``), the unit on an electricity bill."""
    if joules is None:
        return DASH
    if joules == 0:
        return "0 Wh"
    return _scaled(joules / 3600.0, _WH_UNITS)


def power(watts: float | None) -> str:
    """``72.1 W``, ``850 mW``, ``1.20 kW``."""
    if watts is None:
        return DASH
    if watts == 0:
        return "0 W"
    return _scaled(watts, _POWER_UNITS)


def duration(seconds: float | None) -> str:
    """``850 ms``, ``1.23 s``, ``95.0 s``, ``12.5 min``, ``2.10 h``."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    magnitude = abs(seconds)
    if magnitude == 0:
        return "0 s"
    if magnitude < 1e-3:
        return f"{sig(seconds * 1e6)} µs"
    if float(f"{magnitude:.2e}") < 1:
        return f"{sig(seconds * 1e3)} ms"
    if magnitude < 600:
        return f"{sig(seconds)} s"
    if magnitude < 3 * 3600:
        return f"{sig(seconds / 60)} min"
    return f"{sig(seconds / 3600)} h"


def grams(value: float | None) -> str:
    """A mass: ``1.23 g``, ``456 mg``, ``4.56 kg``."""
    if value is None:
        return DASH
    if value == 0:
        return "0 g"
    return _scaled(value, _MASS_UNITS)


def co2e(value: float | None) -> str:
    """``1.23 g CO2e``, ``456 mg CO2e``, ``4.56 kg CO2e``."""
    if value is None:
        return DASH
    return f"{grams(value)} CO2e"


def _ratio_value(value: float) -> str:
    # Two decimals read well for the usual 0.1x-10x range; smaller ratios
    # (a 50x cheaper distilled model) keep significant figures instead.
    if not math.isfinite(value):
        return DASH
    return f"{value:.2f}" if abs(value) >= 0.1 else sig(value, 2)


def ratio(value: float | None, low: float | None = None, high: float | None = None) -> str:
    """``0.47x [0.44, 0.51]``: a ratio with its confidence interval when known.

    A results file writes an unknown number as null, which the record reads back as
    NaN where the field is a float: NaN reads as unknown here too.
    """
    if value is None or not math.isfinite(value):
        return DASH
    text = f"{_ratio_value(value)}x"
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        text += f" [{_ratio_value(low)}, {_ratio_value(high)}]"
    return text


def share(value: float | None) -> str:
    """A quality ratio as the share of the reference it keeps: ``99.8%``."""
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value * 100:.1f}%"


def change(value: float | None) -> str:
    """A ratio as a signed percentage change: 1.234 -> ``+23.4%``, 0.47 -> ``-53.0%``."""
    if value is None or not math.isfinite(value):
        return DASH
    percent = (value - 1.0) * 100.0
    if abs(percent) < 0.05:
        return "0.0%"
    return f"{percent:+.1f}%"


# --- the spread of a sample of rounds ---------------------------------------------------
#
# A summary of one round has a zero standard deviation and an interval collapsed
# onto its value (the record keeps its float fields), which would print as
# "+-0.0%" and a CV of 0.0 %: a perfect measurement instead of no estimate at all.
# Every report asks these functions, which say so instead.


def has_interval(summary: Summary) -> bool:
    """Whether ``summary`` has a confidence interval: two rounds or more, finite bounds."""
    bounds = (summary.mean, summary.ci_low, summary.ci_high)
    return summary.n >= 2 and all(math.isfinite(v) for v in bounds)


def no_interval(n: int, noun: str = "round") -> str:
    """What stands where an interval would: ``no interval (1 round)``."""
    return f"no interval ({n} {noun if n == 1 else noun + 's'})"


def relative_interval(summary: Summary) -> str:
    """The 95 % interval as +-x % of the mean (``+-8.8%``), readable whatever the unit."""
    if summary.n < 2:
        return no_interval(summary.n)
    if not has_interval(summary) or summary.mean <= 0:
        return DASH
    return f"+-{(summary.ci_high - summary.ci_low) / 2 / summary.mean:.1%}"


def energy_interval(summary: Summary) -> str:
    """The 95 % interval in energy units: ``[9.12 mJ, 10.9 mJ]``."""
    if summary.n < 2:
        return no_interval(summary.n)
    if not has_interval(summary):
        return DASH
    return f"[{energy(summary.ci_low)}, {energy(summary.ci_high)}]"


def cv(summary: Summary) -> str:
    """The round-to-round coefficient of variation (``7.1%``); a dash below two rounds."""
    if summary.n < 2 or not math.isfinite(summary.cv):
        return DASH
    return f"{summary.cv:.1%}"


def shorten(text: str, limit: int, tail: int = 40) -> str:
    """Cut ``text`` to at most ``limit`` characters, keeping its start and its end.

    Test ids grow at the end (parametrize values), and the end is what tells
    two cases apart, so the cut goes in the middle.
    """
    if len(text) <= limit:
        return text
    tail = min(tail, limit // 3)
    head = limit - tail - 1
    return f"{text[:head]}…{text[len(text) - tail :]}"


def visible(text: str) -> str:
    """Control and bidi characters as visible escapes: a newline in a test id reads ``\\n``."""
    return escape.terminal_text(text)


def without_bidi(text: str) -> str:
    """Bidi controls (and controls HTML forbids) as visible escapes; newlines and tabs kept."""
    return escape.html_text(text)


def markdown_text(text: str, limit: int | None = None) -> str:
    """Untrusted ``text`` as inert, readable Markdown, safe inside a table cell.

    The rules live in :func:`pytest_energy.report.escape.markdown_text`; this
    shortens first, so the ellipsis is never inside an escape.
    """
    if limit is not None:
        text = shorten(text, limit)
    return escape.markdown_text(text)
