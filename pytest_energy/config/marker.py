"""The ``energy`` marker: its keywords, their validation, and a test's own settings.

Markers on the function, its class and its module merge, the closest winning;
``TestSettings.for_item`` layers them over the session's :class:`Settings`.
Unknown keywords and bad values raise :class:`SettingError` naming the test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest

from pytest_energy.config.options import ON_MODELLED, parse_percent
from pytest_energy.config.settings import SettingError, Settings
from pytest_energy.frozen import frozen


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SettingError(f"{name} must be a number, got {value!r}")
    if value <= 0:
        raise SettingError(f"{name} must be greater than 0, got {value!r}")
    return float(value)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SettingError(f"{name} must be a whole number of at least 1, got {value!r}")
    return value


def _non_negative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingError(f"{name} must be a whole number of at least 0, got {value!r}")
    return value


def _fraction(name: str, value: object) -> float:
    """``"8%"`` or ``0.08``; a bare number of 1 or more is refused as ambiguous."""
    if isinstance(value, str):
        try:
            return parse_percent(value)
        except ValueError as exc:
            raise SettingError(f"{name}: {exc}") from None
    number = _positive(name, value)
    if number >= 1:
        raise SettingError(f"{name} must be a percentage string such as '8%', got {value!r}")
    return number


def _choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SettingError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise SettingError(f"{name} must be True or False, got {value!r}")
    return value


def _variant_limits(name: str, value: object) -> dict[str, dict[str, float]]:
    if not isinstance(value, Mapping):
        raise SettingError(f"{name} must map variant names to limits, got {value!r}")
    limits: dict[str, dict[str, float]] = {}
    for variant, spec in value.items():
        if not isinstance(spec, Mapping):
            raise SettingError(f"{name}[{variant!r}] must be a dict of limits, got {spec!r}")
        unknown = set(spec) - {"max_energy_ratio", "min_quality_ratio"}
        if unknown:
            raise SettingError(
                f"{name}[{variant!r}] has unknown keys {sorted(unknown)}; "
                "valid: max_energy_ratio, min_quality_ratio"
            )
        limits[str(variant)] = {
            k: _positive(f"{name}[{variant!r}].{k}", v) for k, v in spec.items()
        }
    return limits


#: Valid marker keywords and their validators.
MARKER_KEYWORDS: dict[str, Any] = {
    # energy_benchmark
    "rounds": _positive_int,
    "warmup": _non_negative_int,
    "window": _positive,
    "max_time": _positive,
    "cv_limit": _fraction,
    # budgets
    "max_joules": _positive,
    "max_joules_per_unit": _positive,
    "max_watts": _positive,
    "max_gco2e": _positive,
    "on_modelled": lambda n, v: _choice(n, v, ON_MODELLED),
    # the gate
    "max_regression": _fraction,
    "gate": _flag,
    # model variants
    "family": _text,
    "reference": _text,
    "variant": _text,
    "variant_param": _text,
    "max_energy_ratio": _positive,
    "min_quality_ratio": _positive,
    "variants": _variant_limits,
}


def _closest_first(
    item: pytest.Item, inherited: dict[int, tuple[Any, list[pytest.Mark]]] | None = None
) -> list[pytest.Mark]:
    """``energy`` markers from the test outwards (function, class, module).

    Within one node the later marker wins, so a ``pytest.param(..., marks=...)``
    override beats the decorator on the test function it parametrizes. With
    ``inherited`` (a cache for one pass over the items), a parent's markers are
    read once for all its tests: walking the chain for each of 20,000 tests was
    measurable (issue 16).
    """
    marks = [m for m in reversed(item.own_markers) if m.name == "energy"]
    parent = item.parent
    if parent is None:
        return marks
    if inherited is None:
        nodes = reversed(parent.listchain())
        return marks + [
            m for node in nodes for m in reversed(node.own_markers) if m.name == "energy"
        ]
    known = inherited.get(id(parent))
    if known is None:
        nodes = reversed(parent.listchain())
        found = [m for node in nodes for m in reversed(node.own_markers) if m.name == "energy"]
        known = inherited[id(parent)] = (parent, found)  # the node too: its id stays its own
    return marks + known[1] if known[1] else marks


def marker_options(
    item: pytest.Item, inherited: dict[int, tuple[Any, list[pytest.Mark]]] | None = None
) -> dict[str, Any]:
    """Validated ``energy`` marker keywords for ``item``; the closest marker wins.

    ``inherited``: see :func:`_closest_first`.
    """
    merged: dict[str, Any] = {}
    for marker in _closest_first(item, inherited):
        if marker.args:
            raise SettingError(
                f"{item.nodeid}: @pytest.mark.energy takes keyword arguments only, "
                f"got {marker.args!r}"
            )
        for key, value in marker.kwargs.items():
            if key not in MARKER_KEYWORDS:
                raise SettingError(
                    f"{item.nodeid}: @pytest.mark.energy got unknown keyword {key!r}; "
                    f"valid keywords: {', '.join(sorted(MARKER_KEYWORDS))}"
                )
            if key in merged:
                continue  # the closest marker wins
            try:
                merged[key] = MARKER_KEYWORDS[key](key, value)
            except SettingError as exc:
                raise SettingError(f"{item.nodeid}: @pytest.mark.energy: {exc}") from None
    return merged


@frozen
class TestSettings:
    """The settings one test runs with: its marker over the session settings."""

    __test__ = False

    rounds: int
    warmup: int
    window: float | None
    max_time: float | None
    cv_limit: float
    on_modelled: str
    max_regression: float
    gate: bool
    budgets: Mapping[str, float]
    marker: Mapping[str, Any]

    @classmethod
    def for_item(cls, settings: Settings, marker: Mapping[str, Any]) -> TestSettings:
        return cls(
            rounds=marker.get("rounds", settings.rounds),
            warmup=marker.get("warmup", settings.warmup),
            window=marker.get("window", settings.window),
            max_time=marker.get("max_time", settings.max_time),
            cv_limit=marker.get("cv_limit", settings.cv_limit),
            on_modelled=marker.get("on_modelled", settings.on_modelled),
            max_regression=marker.get("max_regression", settings.fail),
            gate=marker.get("gate", True),
            budgets={
                k: marker[k]
                for k in ("max_joules", "max_joules_per_unit", "max_watts", "max_gco2e")
                if k in marker
            },
            marker=marker,
        )
