"""Model families in the ``energy`` marker: which test is which variant, under which limits.

A test marked ``@pytest.mark.energy(family="digits-mlp", reference="fp32", ...)``
and parametrized over variants belongs to a family; its variant name comes from
the ``variant`` parameter (or ``variant=``). Limits set on a variant's own
``pytest.param(..., marks=...)`` beat the family-wide ``variants={...}``
mapping, which beats the family-wide limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from pytest_energy.config.settings import SettingError
from pytest_energy.frozen import frozen


@frozen
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

    @property
    def limits(self) -> dict[str, float]:
        """The limits that are set, by name."""
        limits = {
            "max_energy_ratio": self.max_energy_ratio,
            "min_quality_ratio": self.min_quality_ratio,
        }
        return {name: value for name, value in limits.items() if value is not None}


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
