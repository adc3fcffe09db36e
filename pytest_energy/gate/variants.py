"""Model families judged: a compressed variant against its reference, on energy and quality.

A variant's rounds were interleaved with its reference's in one session
(:mod:`pytest_energy.measure.benchmark`), so the paired ratio of their energies
per unit cancels the machine's slow drift. A limit such as "int8 uses at most
0.6x the energy of fp32" is met only when the 95 % interval clears it, never on
the point estimate alone; otherwise the verdict is ``inconclusive``. Ratios
compare numbers of one method taken in one session on one machine, so they are
judged on modelled numbers too, and say so.

>>> ratio_limit_met((0.44, 0.51), 0.6, "at_most"), ratio_limit_met((0.62, 0.7), 0.6, "at_most")
('pass', 'fail')
>>> ratio_limit_met((0.55, 0.65), 0.6, "at_most")
'inconclusive'
>>> ratio_limit_met((0.991, 0.991), 0.99, "at_least")
'pass'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from pytest_energy.config.families import FamilySpec
from pytest_energy.record import (
    Benchmark,
    FamilyResult,
    Quality,
    QualityRatio,
    VariantResult,
    VariantVerdict,
)
from pytest_energy.stats import paired_log_ratio, percentage

Direction = Literal["at_most", "at_least"]
LimitOutcome = Literal["pass", "fail", "inconclusive"]

#: Metadata keys that describe where a variant ran; variants that disagree on
#: any of them are not comparable (e.g. one on cuda, one on cpu).
HARDWARE_KEYS = ("device", "hardware_class", "cpu_flags", "gpu")
#: The interval a limit must clear.
LIMIT_CONFIDENCE = 0.95


def ratio_limit_met(ci: tuple[float, float], limit: float, direction: Direction) -> LimitOutcome:
    """Whether a ratio's interval clears a limit: "pass", "fail" or "inconclusive".

    ``at_most`` (an energy limit, e.g. <= 0.6x): pass when the upper bound is at
    or below the limit, fail when the lower bound is above it. ``at_least`` (a
    quality floor, e.g. >= 0.99x): pass when the lower bound is at or above the
    limit, fail when the upper bound is below it. A quality metric measured
    once has no spread: pass ``(value, value)``.
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


def quality_ratios(
    reference: Mapping[str, Quality], variant: Mapping[str, Quality]
) -> dict[str, QualityRatio]:
    """Per metric: the variant's share of the reference's quality (1.0 = kept all).

    For lower-is-better metrics (perplexity, error) the share is reference /
    variant, so a worse variant always has a ratio below 1.
    """
    ratios: dict[str, QualityRatio] = {}
    for name, metric in variant.items():
        ref = reference.get(name)
        if ref is None:
            ratios[name] = QualityRatio(metric.value, metric.higher_is_better)
            continue
        if metric.higher_is_better:
            share = metric.value / ref.value if ref.value else math.nan
        else:
            share = ref.value / metric.value if metric.value else math.nan
        ratios[name] = QualityRatio(metric.value, metric.higher_is_better, ref.value, share)
    return ratios


def hardware_mismatch(reference: Mapping[str, Any], variant: Mapping[str, Any]) -> str | None:
    """Why two variants' metadata say they ran on different hardware, or None."""
    for key in HARDWARE_KEYS:
        if key in reference and key in variant and reference[key] != variant[key]:
            return f"{key} differs ({variant[key]!r} vs the reference's {reference[key]!r})"
    return None


def judge_variant(
    spec: FamilySpec,
    *,
    ratio: float,
    ci_low: float,
    ci_high: float,
    unit: str,
    method: str,
    qualities: Mapping[str, QualityRatio],
    refusal: str | None = None,
) -> tuple[VariantVerdict, str]:
    """The verdict (pass, fail, inconclusive) and its one readable line."""
    # One pair of rounds has no spread: its interval is [0, inf], which says nothing.
    interval = (
        f"[{ci_low:.2f}, {ci_high:.2f}]"
        if ci_low > 0 and math.isfinite(ci_high)
        else "(no interval)"
    )
    head = f"{spec.variant}: {ratio:.2f}x {interval} of {spec.reference} energy per {unit}"
    outcomes: list[LimitOutcome] = []
    if spec.max_energy_ratio is not None:
        head += f" (limit {spec.max_energy_ratio:.2f}x)"
        outcomes.append(ratio_limit_met((ci_low, ci_high), spec.max_energy_ratio, "at_most"))
    parts = [head]
    for name, entry in qualities.items():
        share = entry.ratio
        if share is None or not math.isfinite(share):
            continue
        text = f"{_percent(share)} of its {name}"
        if spec.min_quality_ratio is not None:
            text += f" (limit {percentage(spec.min_quality_ratio)})"
            outcomes.append(ratio_limit_met((share, share), spec.min_quality_ratio, "at_least"))
        parts.append(text)
    if spec.min_quality_ratio is not None and not any(
        entry.ratio is not None for entry in qualities.values()
    ):
        parts.append("no quality metric recorded for both it and the reference")
        outcomes.append("fail")
    line = ", ".join(parts)
    if method == "modelled":
        line += " (modelled)"
    if refusal is not None:
        return "inconclusive", f"{spec.variant}: not compared with {spec.reference}: {refusal}"
    if "fail" in outcomes:
        return "fail", line
    if "inconclusive" in outcomes:
        return "inconclusive", line
    return "pass", line


def variant_result(
    spec: FamilySpec,
    *,
    nodeid: str,
    benchmark: Benchmark,
    method: str,
    paired: tuple[Sequence[float], Sequence[float]],
    qualities: Mapping[str, Quality],
    reference_qualities: Mapping[str, Quality],
    reference_metadata: Mapping[str, Any],
    metadata: Mapping[str, Any],
) -> VariantResult:
    """A variant judged from its paired rounds (reference J/unit, variant J/unit)."""
    reference, variant = paired
    estimate = paired_log_ratio(reference, variant)
    low, high = estimate.interval(LIMIT_CONFIDENCE)
    ratios = quality_ratios(reference_qualities, qualities)
    verdict, line = judge_variant(
        spec,
        ratio=estimate.ratio,
        ci_low=low,
        ci_high=high,
        unit=benchmark.unit,
        method=method,
        qualities=ratios,
        refusal=hardware_mismatch(reference_metadata, metadata),
    )
    return VariantResult(
        family=spec.family,
        reference=spec.reference,
        variant=spec.variant,
        nodeid=nodeid,
        unit=benchmark.unit,
        method=method,
        energy_per_unit=benchmark.per_unit.median,
        energy_ratio=estimate.ratio,
        ci_low=low,
        ci_high=high,
        quality=ratios,
        limits=spec.limits,
        verdict=verdict,
        line=line,
        metadata=dict(metadata),
        pairs=len(reference),
    )


def reference_result(
    spec: FamilySpec,
    *,
    nodeid: str,
    benchmark: Benchmark,
    method: str,
    qualities: Mapping[str, Quality],
    metadata: Mapping[str, Any],
) -> VariantResult:
    """The family's reference, as the 1.00x row its variants are read against."""
    return VariantResult(
        family=spec.family,
        reference=spec.reference,
        variant=spec.variant,
        nodeid=nodeid,
        unit=benchmark.unit,
        method=method,
        energy_per_unit=benchmark.per_unit.median,
        energy_ratio=1.0,
        ci_low=1.0,
        ci_high=1.0,
        quality={
            q.name: QualityRatio(q.value, q.higher_is_better, q.value, 1.0)
            for q in qualities.values()
        },
        verdict="reference",
        line=f"{spec.variant}: the reference of {spec.family}",
        metadata=dict(metadata),
    )


def not_judged(spec: FamilySpec, *, nodeid: str, method: str, reason: str) -> VariantResult:
    """A variant that was measured but cannot be judged (e.g. under pytest-xdist)."""
    return VariantResult(
        family=spec.family,
        reference=spec.reference,
        variant=spec.variant,
        nodeid=nodeid,
        unit="",
        method=method,
        energy_per_unit=math.nan,
        energy_ratio=math.nan,
        ci_low=math.nan,
        ci_high=math.nan,
        limits=spec.limits,
        verdict="not_gated",
        line=f"{spec.variant}: not judged: {reason}",
    )


def pareto_frontier(points: Sequence[tuple[str, float, float]]) -> set[str]:
    """Variants not beaten on both energy (lower) and quality (higher) by another."""
    frontier = set()
    for name, energy, quality in points:
        dominated = any(
            (e <= energy and q >= quality) and (e < energy or q > quality)
            for other, e, q in points
            if other != name
        )
        if not dominated:
            frontier.add(name)
    return frontier


def build_families(variants: Sequence[VariantResult]) -> list[FamilyResult]:
    """Group the variant results of a run by family and mark the Pareto frontier."""
    grouped: dict[str, list[VariantResult]] = {}
    for result in variants:
        grouped.setdefault(result.family, []).append(result)
    families: list[FamilyResult] = []
    for name in sorted(grouped):
        members = sorted(grouped[name], key=lambda v: (v.verdict != "reference", v.variant))
        points = []
        for member in members:
            quality = member.first_quality_ratio()
            if quality is not None and math.isfinite(member.energy_ratio):
                points.append((member.variant, member.energy_ratio, quality))
        frontier = pareto_frontier(points)
        members = [replace(m, on_frontier=m.variant in frontier) for m in members]
        first = members[0]
        families.append(
            FamilyResult(
                family=name,
                reference=first.reference,
                unit=first.unit,
                method=first.method,
                hardware_class=str(first.metadata.get("hardware_class", "")),
                variants=members,
            )
        )
    return families


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%".replace(".0%", "%")
