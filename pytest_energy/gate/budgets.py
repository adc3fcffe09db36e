"""Energy budgets from the ``energy`` marker: max_joules, max_joules_per_unit, max_watts.

A budget is exceeded when the central estimate (the median over rounds, or the
one window of a plain test) is above it. Measured numbers fail the test;
modelled numbers warn by default (``on_modelled``), because an absolute
modelled joule is an estimate. A window too short for its meter to resolve
warns instead of failing, whatever the method.
"""

from __future__ import annotations

import math
import warnings

import pytest

from pytest_energy.config.marker import TestSettings
from pytest_energy.record import Benchmark, BudgetNote, Measurement, Summary

_LABELS = {
    "max_joules": ("J per call", "J"),
    "max_joules_per_unit": ("J per {unit}", "J"),
    "max_watts": ("mean power", "W"),
    "max_gco2e": ("g CO2e per call", "g"),
}


class EnergyBudgetWarning(UserWarning):
    """A budget was exceeded by a number that is not allowed to fail the test."""


def budget_message(note: BudgetNote) -> str:
    """The one line a user sees for an exceeded budget."""
    label, symbol = _LABELS[note.budget]
    label = label.format(unit=note.unit)
    interval = ""
    if note.low is not None and note.high is not None:
        interval = f" [95% CI {note.low:.4g}, {note.high:.4g}]"
    text = (
        f"energy budget exceeded: {label} {note.value:.4g} {symbol}{interval} > "
        f"{note.budget}={note.limit:g} {symbol} ({note.method} by {note.meters})"
    )
    if note.why_not_fail:
        text += f"; {note.why_not_fail}"
    return text


def enforce(note: BudgetNote, location: tuple[str, int] | None = None) -> None:
    """Fail the test, or warn at ``location`` (the test's file and line)."""
    if not note.exceeded or note.action == "ignore":
        return
    message = budget_message(note)
    if note.action == "fail":
        pytest.fail(message, pytrace=False)
    if location is None:
        warnings.warn(EnergyBudgetWarning(message), stacklevel=3)
    else:
        warnings.warn_explicit(
            EnergyBudgetWarning(message), EnergyBudgetWarning, location[0], location[1]
        )


def _action(method: str, flags: list[str], settings: TestSettings) -> tuple[str, str]:
    if "below_resolution" in flags:
        return "warn", "the window is too short for the meter to resolve; use energy_benchmark"
    if method == "modelled":
        action = settings.on_modelled
        why = "the number is modelled, so it warns (on_modelled='fail' makes it fail)"
        return action, why if action == "warn" else "the number is modelled"
    return "fail", ""


def judge_window(
    measurement: Measurement, settings: TestSettings, grams_per_joule: float | None = None
) -> list[BudgetNote]:
    """Judge a plain test's single window against its budgets."""
    action, why = _action(measurement.method, measurement.flags, settings)
    values = {"max_joules": measurement.total_j, "max_watts": measurement.watts}
    if grams_per_joule is not None:
        values["max_gco2e"] = measurement.total_j * grams_per_joule
    notes = []
    for budget, limit in settings.budgets.items():
        if budget not in values:
            continue  # per-unit budgets need energy_benchmark's units
        value = values[budget]
        notes.append(
            BudgetNote(
                budget,
                limit,
                value,
                None,
                None,
                value > limit,
                action,
                measurement.method,
                ",".join(measurement.meters),
                "call",
                why,
            )
        )
    return notes


def _interval(summary: Summary) -> tuple[float | None, float | None]:
    """The 95 % interval of the mean, or none for one round: its zero width is no estimate."""
    if summary.n < 2 or not (math.isfinite(summary.ci_low) and math.isfinite(summary.ci_high)):
        return None, None
    return summary.ci_low, summary.ci_high


def judge_benchmark(
    benchmark: Benchmark,
    method: str,
    meters: list[str],
    flags: list[str],
    settings: TestSettings,
    grams_per_joule: float | None = None,
) -> list[BudgetNote]:
    """Judge a benchmark's per-call and per-unit figures against its budgets."""
    action, why = _action(method, flags, settings)
    seconds = sum(r.seconds for r in benchmark.rounds)
    joules = sum(r.total_j for r in benchmark.rounds)
    per_call, per_unit = benchmark.per_call, benchmark.per_unit
    figures: dict[str, tuple[float, float | None, float | None]] = {
        "max_joules": (per_call.median, *_interval(per_call)),
        "max_joules_per_unit": (per_unit.median, *_interval(per_unit)),
        "max_watts": (joules / seconds if seconds > 0 else 0.0, None, None),
    }
    if grams_per_joule is not None:
        low, high = _interval(per_call)
        figures["max_gco2e"] = (
            per_call.median * grams_per_joule,
            None if low is None else low * grams_per_joule,
            None if high is None else high * grams_per_joule,
        )
    notes = []
    for budget, limit in settings.budgets.items():
        if budget not in figures:
            continue
        value, low, high = figures[budget]
        notes.append(
            BudgetNote(
                budget,
                limit,
                value,
                low,
                high,
                value > limit,
                action,
                method,
                ",".join(meters),
                benchmark.unit,
                why,
            )
        )
    return notes
