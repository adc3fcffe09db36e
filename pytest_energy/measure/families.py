"""The references of model families measured so far in this process.

A variant is measured in rounds interleaved with its reference's (reference,
variant, variant, reference, ...), so the reference's test must have run
earlier in the same process and left its callable here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_energy.config.families import FamilySpec
from pytest_energy.config.settings import SettingError
from pytest_energy.record import Quality


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
