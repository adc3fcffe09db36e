"""A test's own checks, judged right after its body: energy budgets and variant limits.

Judged here, in the call phase, a breach fails the test itself with one line
(or warns, for modelled numbers), like a failing assertion would.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_energy.config.marker import TestSettings
from pytest_energy.gate.budgets import enforce, judge_benchmark, judge_window
from pytest_energy.gate.variants import not_judged, reference_result, variant_result
from pytest_energy.measure.benchmark import EnergyBenchmark
from pytest_energy.record import BudgetNote, Measurement, VariantResult


def location(item: pytest.Item) -> tuple[str, int]:
    """Where warnings about a test point: its file and (1-based) line."""
    path, line, _ = item.reportinfo()
    return str(path), (line or 0) + 1


def window_budgets(
    item: pytest.Item,
    measurement: Measurement,
    settings: TestSettings,
    grams_per_joule: float | None,
) -> list[BudgetNote]:
    """A plain test's budgets, judged on its one window and enforced."""
    notes = judge_window(measurement, settings, grams_per_joule)
    for note in notes:
        enforce(note, location(item))
    return notes


def benchmark_budgets(
    item: pytest.Item,
    bench: EnergyBenchmark,
    settings: TestSettings,
    method: str,
    meters: list[str],
    grams_per_joule: float | None,
) -> list[BudgetNote]:
    """A benchmark's budgets, judged on its rounds and enforced."""
    result = bench.result
    if result is None or not settings.budgets:
        return []
    flags = sorted({f for r in result.rounds for f in r.flags})
    notes = judge_benchmark(result, method, meters, flags, settings, grams_per_joule)
    for note in notes:
        enforce(note, location(item))
    return notes


def variant(
    bench: EnergyBenchmark, nodeid: str, method: str, concurrent: bool
) -> VariantResult | None:
    """A family member's result: the reference row, or a variant judged against it."""
    spec, result = bench.family, bench.result
    if spec is None or result is None:
        return None
    metadata: dict[str, Any] = {**bench.environment(), **bench.facts}
    if spec.is_reference:
        return reference_result(
            spec,
            nodeid=nodeid,
            benchmark=result,
            method=method,
            qualities=bench.qualities,
            metadata=metadata,
        )
    if concurrent:
        return not_judged(
            spec,
            nodeid=nodeid,
            method=method,
            reason="concurrent: tests ran in parallel (pytest-xdist)",
        )
    if bench.paired is None or bench.reference is None:
        return None
    return variant_result(
        spec,
        nodeid=nodeid,
        benchmark=result,
        method=method,
        paired=bench.paired,
        qualities=bench.qualities,
        reference_qualities=bench.reference.quality,
        reference_metadata=bench.reference.metadata,
        metadata=metadata,
    )


def enforce_variant(bench: EnergyBenchmark, judged: VariantResult | None) -> None:
    """Fail a variant over its limits, or one whose quality limit has no quality to judge."""
    spec = bench.family
    if spec is None or spec.is_reference or bench.result is None:
        return
    if judged is not None and judged.verdict == "not_gated":
        return
    if spec.min_quality_ratio is not None and not bench.qualities:
        pytest.fail(
            f"{spec.variant}: min_quality_ratio is set for family {spec.family!r} but the "
            "test recorded no quality; call energy_benchmark.quality(name=value)",
            pytrace=False,
        )
    if judged is not None and judged.verdict == "fail":
        pytest.fail(f"model variant check failed: {judged.line}", pytrace=False)
    # An inconclusive verdict is reported (terminal, JSON, reports), never raised:
    # it must not fail suites that turn warnings into errors.
