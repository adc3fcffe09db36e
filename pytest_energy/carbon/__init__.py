"""Carbon accounting: energy to grams of CO2e, with traceable grid intensity.

The integrator resolves raw settings (marker > CLI > env > ini) and calls:

* ``resolve_intensity(intensity, region, origin=...)`` -> ``IntensityChoice``
  (explicit number > region > Ember's world average), whose ``describe()``
  is the header line;
* ``parse_pue`` and ``parse_embodied`` for the two other factors;
* ``make_provider`` and ``apply_live_intensity`` for an optional live figure;
* ``carbon_for(joules, choice, pue, seconds=..., embodied=...)`` per figure,
  giving ``results.Carbon``; ``format_carbon`` / ``format_grams`` to show it;
* ``validate_co2e_budget`` for a marker's ``max_gco2e``;
* ``cleaner_region_hint`` for the carbon-aware line of a cloud region.

Nothing here reads the bundled tables until a region or the default is resolved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_energy.carbon.convert import (
    ATTRIBUTION,
    JOULES_PER_KWH,
    attribution_line,
    carbon_for,
    carbon_source,
    cleaner_region_hint,
    format_carbon,
    format_grams,
    grams_co2e,
    header_line,
    session_record,
    validate_co2e_budget,
)
from pytest_energy.carbon.factors import (
    DEFAULT_PUE,
    EMBODIED_PRESETS,
    PUE_PRESETS,
    EmbodiedChoice,
    PueChoice,
    parse_embodied,
    parse_pue,
)
from pytest_energy.carbon.intensity import (
    IntensityChoice,
    find_region,
    provenance_line,
    resolve_intensity,
)
from pytest_energy.carbon.tables import IntensityRow, Tables, bundled_tables
from pytest_energy.carbon.values import CarbonDataError, CarbonError

if TYPE_CHECKING:
    from pytest_energy.carbon.live import (
        ElectricityMapsProvider,
        IntensityProvider,
        LiveIntensity,
        apply_live_intensity,
        make_provider,
    )

#: The live providers (HTTP, a cache file) load on first use: a session without one
#: never imports them.
_LIVE = frozenset(
    {
        "ElectricityMapsProvider",
        "IntensityProvider",
        "LiveIntensity",
        "apply_live_intensity",
        "make_provider",
    }
)


def __getattr__(name: str) -> Any:
    if name in _LIVE:
        from pytest_energy.carbon import live

        return getattr(live, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ATTRIBUTION",
    "DEFAULT_PUE",
    "EMBODIED_PRESETS",
    "JOULES_PER_KWH",
    "PUE_PRESETS",
    "CarbonDataError",
    "CarbonError",
    "ElectricityMapsProvider",
    "EmbodiedChoice",
    "IntensityChoice",
    "IntensityProvider",
    "IntensityRow",
    "LiveIntensity",
    "PueChoice",
    "Tables",
    "apply_live_intensity",
    "attribution_line",
    "bundled_tables",
    "carbon_for",
    "carbon_source",
    "cleaner_region_hint",
    "find_region",
    "format_carbon",
    "format_grams",
    "grams_co2e",
    "header_line",
    "make_provider",
    "parse_embodied",
    "parse_pue",
    "provenance_line",
    "resolve_intensity",
    "session_record",
    "validate_co2e_budget",
]
