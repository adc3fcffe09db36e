"""Model families: a reference and its compressed variants, judged on energy and quality.

A test marked ``@pytest.mark.energy(family="digits-mlp", reference="fp32", ...)``
and parametrized over variants measures each variant in rounds interleaved
with the reference's (reference, variant, variant, reference, ...), so slow
drift of the machine cancels in the paired ratio. A ratio limit is met only
when the 95 % confidence bound clears it; otherwise the verdict is
``inconclusive``. Ratios compare numbers of one method taken in one session on
one machine, so they are judged on modelled numbers too, and say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_energy.config.settings import SettingError, marker_options
from pytest_energy.record import FamilyRecord, Quality, VariantRecord

#: Metadata keys that describe where a variant ran; variants that disagree on
#: any of them are not comparable (e.g. one on cuda, one on cpu).
HARDWARE_KEYS = ("device", "hardware_class", "cpu_flags", "gpu")


@dataclass(frozen=True)
class FamilySpec:
    """Which family a test belongs to, as which variant, under which limits."""

    family: str
    reference: str
    variant: str
    max_energy_ratio: float | None
    min_quality_ratio: float | None

    @property
    def is_reference(self) -> bool:
        return self.variant == self.reference


def family_spec(item: pytest.Item, marker: Mapping[str, Any]) -> FamilySpec | None:
    """The family spec of ``item`` from its validated marker keywords, or None."""
    family_keys = {
        "reference",
        "variant",
        "variant_param",
        "max_energy_ratio",
        "min_quality_ratio",
        "variants",
    }
    if "family" not in marker:
        stray = sorted(family_keys & set(marker))
        if stray and stray != ["variant_param"]:
            raise SettingError(
                f"{item.nodeid}: @pytest.mark.energy: {', '.join(stray)} need family=..."
            )
        return None
    family = marker["family"]
    if "reference" not in marker:
        raise SettingError(f"{item.nodeid}: family {family!r} needs reference=<variant name>")
    variant = marker.get("variant")
    if variant is None:
        param = marker.get("variant_param", "variant")
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        if param not in params:
            raise SettingError(
                f"{item.nodeid}: family {family!r} tests need a {param!r} parameter "
                "(or variant=... in the marker) naming the variant"
            )
        variant = str(params[param])
    overrides = marker.get("variants", {}).get(variant, {})
    own = _own_limits(item)
    return FamilySpec(
        family=family,
        reference=marker["reference"],
        variant=variant,
        max_energy_ratio=own.get(
            "max_energy_ratio", overrides.get("max_energy_ratio", marker.get("max_energy_ratio"))
        ),
        min_quality_ratio=own.get(
            "min_quality_ratio",
            overrides.get("min_quality_ratio", marker.get("min_quality_ratio")),
        ),
    )


def _own_limits(item: pytest.Item) -> dict[str, float]:
    """Limits set by a ``pytest.param(..., marks=pytest.mark.energy(...))`` of this variant.

    They beat the family-wide ``variants={...}`` mapping, which beats the
    family-wide limits; the decorator's own limits are the family-wide ones.
    """
    callspec = getattr(item, "callspec", None)
    limits: dict[str, float] = {}
    for mark in getattr(callspec, "marks", ()):
        if mark.name == "energy":
            for key in ("max_energy_ratio", "min_quality_ratio"):
                if key in mark.kwargs:
                    limits[key] = mark.kwargs[key]
    return limits


def order_families(items: list[pytest.Item], specs: Mapping[str, FamilySpec]) -> None:
    """Check each family's reference is selected and run it before its variants."""
    by_family: dict[str, list[FamilySpec]] = {}
    for spec in specs.values():
        by_family.setdefault(spec.family, []).append(spec)
    for family, members in by_family.items():
        references = {m.reference for m in members}
        if len(references) > 1:
            raise SettingError(
                f"family {family!r} names several references: {', '.join(sorted(references))}"
            )
        reference = references.pop()
        variants = sorted({m.variant for m in members})
        if reference not in variants:
            raise SettingError(
                f"family {family!r}: reference variant {reference!r} is not among the selected "
                f"tests (selected variants: {', '.join(variants)}); select it too, since "
                "variants are measured against it"
            )
    # Stable sort: within the items of each family, references first.
    rank = {
        id(item): (0 if specs[item.nodeid].is_reference else 1)
        for item in items
        if item.nodeid in specs
    }
    family_positions = [i for i, item in enumerate(items) if id(item) in rank]
    reordered = sorted((items[i] for i in family_positions), key=lambda it: rank[id(it)])
    for position, item in zip(family_positions, reordered, strict=True):
        items[position] = item


def collect_specs(items: Sequence[pytest.Item]) -> dict[str, FamilySpec]:
    specs: dict[str, FamilySpec] = {}
    for item in items:
        spec = family_spec(item, marker_options(item))
        if spec is not None:
            specs[item.nodeid] = spec
    return specs


@dataclass
class ReferenceRun:
    """What a family's reference test left for its variants to be measured against."""

    spec: FamilySpec
    nodeid: str
    call: Callable[[], object]
    calls_per_round: int
    units: float
    unit: str
    method: str
    quality: dict[str, Quality] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    energy_per_unit: float = math.nan


class FamilyRegistry:
    """References measured so far in this process, by family name."""

    def __init__(self) -> None:
        self.references: dict[str, ReferenceRun] = {}

    def register(self, run: ReferenceRun) -> None:
        self.references[run.spec.family] = run

    def reference_for(self, spec: FamilySpec) -> ReferenceRun:
        found = self.references.get(spec.family)
        if found is None:
            raise SettingError(
                f"family {spec.family!r}: the reference {spec.reference!r} was not measured in "
                "this process before this variant (did its test fail before energy_benchmark, "
                "or run on another xdist worker?)"
            )
        return found


# -- judging a variant ---------------------------------------------------------------


def quality_ratios(
    reference: Mapping[str, Quality], variant: Mapping[str, Quality]
) -> dict[str, dict[str, Any]]:
    """Per metric: the variant's share of the reference's quality (1.0 = kept all).

    For lower-is-better metrics (perplexity, error) the share is reference /
    variant, so a worse variant always has a ratio below 1.
    """
    ratios: dict[str, dict[str, Any]] = {}
    for name, metric in variant.items():
        ref = reference.get(name)
        entry: dict[str, Any] = {"value": metric.value, "higher_is_better": metric.higher_is_better}
        if ref is not None:
            entry["reference"] = ref.value
            if metric.higher_is_better:
                entry["ratio"] = metric.value / ref.value if ref.value else math.nan
            else:
                entry["ratio"] = ref.value / metric.value if metric.value else math.nan
        ratios[name] = entry
    return ratios


def hardware_mismatch(reference: Mapping[str, Any], variant: Mapping[str, Any]) -> str | None:
    for key in HARDWARE_KEYS:
        if key in reference and key in variant and reference[key] != variant[key]:
            return f"{key} differs ({variant[key]!r} vs the reference's {reference[key]!r})"
    return None


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%".replace(".0%", "%")


def judge_variant(
    spec: FamilySpec,
    *,
    ratio: float,
    ci_low: float,
    ci_high: float,
    unit: str,
    method: str,
    qualities: Mapping[str, Mapping[str, Any]],
    refusal: str | None = None,
) -> tuple[str, str]:
    """The verdict (pass, fail, inconclusive) and its one readable line."""
    parts = [
        f"{spec.variant}: {ratio:.2f}x [{ci_low:.2f}, {ci_high:.2f}] of {spec.reference} "
        f"energy per {unit}"
    ]
    verdicts: list[str] = []
    if spec.max_energy_ratio is not None:
        parts[0] += f" (limit {spec.max_energy_ratio:.2f}x)"
        if ci_high <= spec.max_energy_ratio:
            verdicts.append("pass")
        elif ci_low > spec.max_energy_ratio:
            verdicts.append("fail")
        else:
            verdicts.append("inconclusive")
    for name, entry in qualities.items():
        share = entry.get("ratio")
        if share is None or not math.isfinite(share):
            continue
        text = f"{_percent(share)} of its {name}"
        if spec.min_quality_ratio is not None:
            text += f" (limit {_percent(spec.min_quality_ratio)})"
            verdicts.append("pass" if share >= spec.min_quality_ratio else "fail")
        parts.append(text)
    if spec.min_quality_ratio is not None and not any(
        "ratio" in entry for entry in qualities.values()
    ):
        parts.append("no quality metric recorded for both it and the reference")
        verdicts.append("fail")
    line = ", ".join(parts)
    if method == "modelled":
        line += " (modelled)"
    if refusal is not None:
        return "inconclusive", f"{spec.variant}: not compared with {spec.reference}: {refusal}"
    if "fail" in verdicts:
        return "fail", line
    if "inconclusive" in verdicts:
        return "inconclusive", line
    return "pass", line


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


def build_families(variants: Sequence[VariantRecord]) -> list[FamilyRecord]:
    """Group the variant records of a run by family and mark the Pareto frontier."""
    grouped: dict[str, list[VariantRecord]] = {}
    for record in variants:
        grouped.setdefault(str(record.get("family", "")), []).append(record)
    families: list[FamilyRecord] = []
    for name in sorted(grouped):
        members = sorted(
            grouped[name], key=lambda v: (v.get("verdict") != "reference", v.get("variant", ""))
        )
        points = []
        for member in members:
            quality = _first_quality_ratio(member)
            ratio = member.get("energy_ratio")
            if ratio is not None and quality is not None and math.isfinite(ratio):
                points.append((member.get("variant", ""), ratio, quality))
        frontier = pareto_frontier(points)
        for member in members:
            member["on_frontier"] = member.get("variant") in frontier
        first = members[0]
        families.append(
            FamilyRecord(
                family=name,
                reference=str(first.get("reference", "")),
                unit=str(first.get("unit", "")),
                method=str(first.get("method", "")),
                hardware_class=str(first.get("metadata", {}).get("hardware_class", "")),
                variants=members,
            )
        )
    return families


def _first_quality_ratio(record: VariantRecord) -> float | None:
    for entry in record.get("quality", {}).values():
        if isinstance(entry.get("ratio"), int | float):
            return float(entry["ratio"])
    if record.get("verdict") == "reference":
        return 1.0
    return None
