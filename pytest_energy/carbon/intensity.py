"""Which grid intensity a session uses, and how to say where it came from.

Precedence: an explicit number (``--energy-carbon-intensity``) > a region
(``--energy-region``: a country code or a cloud region) > the world average
(Ember's WORLD row). The integrator resolves each raw string from marker, CLI,
environment or ini, and passes it with an ``origin`` naming where it came from;
this module validates it and picks the figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pytest_energy.carbon.countries import ALIASES, ALPHA2_TO_ALPHA3
from pytest_energy.carbon.tables import (
    CLOUD_PROVIDERS,
    WORLD,
    Basis,
    IntensityRow,
    Tables,
    bundled_tables,
    bundled_world,
)
from pytest_energy.carbon.values import CarbonError, format_number, origin_of, parse_number
from pytest_energy.frozen import frozen

Kind = Literal["explicit", "region", "world", "live"]
_EXAMPLES = "a country code (FR, FRA), WORLD, or aws:us-east-1, gcp:europe-west1, azure:westeurope"


@frozen
class IntensityChoice:
    """The grid intensity of a session, and everything needed to cite it."""

    value: float  # g CO2e per kWh
    kind: Kind
    region: str  # "KOR", "WORLD", "gcp:europe-west1"; "custom" for an explicit number
    name: str  # "South Korea", "Belgium"; "" where unknown
    source: str  # "Ember", "Google Cloud", "Cloud Carbon Footprint", "user-supplied", ...
    year: int | None
    basis: Basis
    licence: str
    attribution: str
    origin: str  # where the deciding setting came from, e.g. "--energy-region"
    requested: str | None = None  # the region as the user typed it
    note: str = ""  # said in place of a missing year, e.g. "year not stated by CCF"
    as_of: str | None = None  # timestamp of a live figure

    @property
    def year_text(self) -> str:
        if self.as_of:
            return self.as_of
        if self.year is not None:
            return str(self.year)
        return self.note or "year not stated"

    def describe(self) -> str:
        """The one header line: the figure, its source, and why it was chosen."""
        return f"carbon intensity: {provenance_line(self)}{self._why()}"

    def _why(self) -> str:
        if self.kind == "explicit":
            if self.requested:
                return f" [region {self.requested} not used: an explicit intensity wins]"
            return ""
        if self.kind == "world" and not self.requested:
            return (
                " [world average: no region set; use --energy-region or --energy-carbon-intensity]"
            )
        said = [self.requested or self.region]
        if self.name and self.name.lower() != said[0].lower():
            said.append(self.name)
        return f" [set by {self.origin}: {', '.join(said)}]"


def provenance_line(choice: IntensityChoice) -> str:
    """``472.94 g/kWh, WORLD, Ember 2024 (lifecycle)``: shown with every CO2e figure."""
    value = f"{format_number(choice.value)} g/kWh"
    if choice.kind == "explicit":
        return f"{value}, user-supplied via {choice.origin} (basis not stated)"
    # "Ember 2024" reads as one name; a missing year is a phrase of its own.
    sep = " " if choice.year is not None or choice.as_of else ", "
    return f"{value}, {choice.region}, {choice.source}{sep}{choice.year_text} ({choice.basis})"


def resolve_intensity(
    intensity: str | float | None,
    region: str | None,
    *,
    origin: Mapping[str, str] | None = None,
    tables: Tables | None = None,
) -> IntensityChoice:
    """Pick the session's intensity: explicit number > region > world average.

    ``origin`` maps ``"intensity"`` and ``"region"`` to where each value came
    from (``"--energy-region"``, ``"PYTEST_ENERGY_REGION"``, ``"energy_region in
    the ini file"``) so that errors name it. Raises a one-line ``CarbonError``.
    """
    requested = region.strip() if region and region.strip() else None
    if intensity is not None and not (isinstance(intensity, str) and not intensity.strip()):
        where = origin_of("intensity", origin)
        return explicit_choice(intensity, where=where, requested=requested)
    if requested is None:
        row = tables.world if tables else bundled_world()
        return _choice(row, kind="world", origin="default", requested=None)
    tables = tables or bundled_tables()
    row = find_region(requested, tables, where=origin_of("region", origin))
    kind: Kind = "world" if row.key == WORLD else "region"
    return _choice(row, kind=kind, origin=origin_of("region", origin), requested=requested)


#: The largest explicit intensity accepted: about four times the dirtiest grid in
#: the bundled tables (1306.3 g/kWh). Beyond it the number is a typo that
#: arithmetic would hide: 1e308 g/kWh overflows a test's grams to infinity,
#: which a results file stores as null.
MAX_INTENSITY = 5000.0


def explicit_choice(
    intensity: str | float, *, where: str, requested: str | None = None
) -> IntensityChoice:
    """A user-supplied number of g CO2e/kWh; ``g/kWh`` after it is accepted."""
    expected = f"a number of g CO2e/kWh from 0 to {format_number(MAX_INTENSITY)}, e.g. 415.65"
    raw: str | float = intensity
    if isinstance(raw, str):
        text = raw.strip()
        for unit in ("gco2e/kwh", "g/kwh"):
            if text.lower().endswith(unit):
                text = text[: -len(unit)]
                break
        raw = text
    value = parse_number(raw, what="carbon intensity", where=where, expected=expected)
    if not 0 <= value <= MAX_INTENSITY:
        raise CarbonError(
            f"invalid carbon intensity {intensity!r} from {where}: expected {expected}"
        )
    return IntensityChoice(
        value=value,
        kind="explicit",
        region="custom",
        name="",
        source="user-supplied",
        year=None,
        basis="unspecified",
        licence="",
        attribution="",
        origin=where,
        requested=requested,
        note="no year",
    )


def _choice(
    row: IntensityRow, *, kind: Kind, origin: str, requested: str | None
) -> IntensityChoice:
    data = row.dataset
    return IntensityChoice(
        value=row.g_per_kwh,
        kind=kind,
        region=row.key,
        name=row.name,
        source=data.source,
        year=row.year,
        basis=data.basis,
        licence=data.licence,
        attribution=data.attribution,
        origin=origin,
        requested=requested,
        note="" if row.year is not None else data.no_year,
    )


def find_region(text: str, tables: Tables, *, where: str = "--energy-region") -> IntensityRow:
    """The table row for a country code, country name, WORLD or ``provider:region``."""
    query = text.strip()
    provider, sep, name = query.partition(":")
    if sep:
        return _find_cloud(provider.strip().lower(), name.strip(), query, tables, where)
    upper = query.upper()
    if upper in tables.countries:
        return tables.countries[upper]
    alpha3 = ALPHA2_TO_ALPHA3.get(upper) or ALIASES.get(upper)
    if alpha3 and alpha3 in tables.countries:
        return tables.countries[alpha3]
    for row in tables.countries.values():
        if row.name.lower() == query.lower():
            return row
    candidates = {key: key for key in tables.countries}
    candidates.update({a2: a2 for a2 in ALPHA2_TO_ALPHA3})
    candidates.update({row.name.lower(): row.name for row in tables.countries.values()})
    raise CarbonError(
        _unknown(query, query.lower() if len(query) > 3 else upper, candidates, where)
    )


def _find_cloud(provider: str, name: str, query: str, tables: Tables, where: str) -> IntensityRow:
    if provider not in CLOUD_PROVIDERS:
        raise CarbonError(
            f"unknown cloud provider {provider!r} in region {query!r} (from {where}); "
            f"use {', '.join(p + ':' for p in CLOUD_PROVIDERS)}"
        )
    # Cloud region names are lower case. Azure's display names ("West Europe")
    # are matched as CCF does: case-insensitive, spaces dropped.
    region = name.lower().replace(" ", "") if provider == "azure" else name.lower()
    key = f"{provider}:{region}"
    if key in tables.cloud:
        return tables.cloud[key]
    candidates = {k: k for k in tables.cloud if k.startswith(provider + ":")}
    raise CarbonError(_unknown(query, key, candidates, where))


def _unknown(query: str, probe: str, candidates: Mapping[str, str], where: str) -> str:
    """The one-line error for an unknown region, with up to three close matches."""
    import difflib  # only for this error's suggestions

    scored = []
    for candidate in candidates:
        ratio = difflib.SequenceMatcher(None, probe, candidate).ratio()
        if ratio >= 0.6:
            scored.append((-ratio, candidates[candidate]))
    close = sorted(set(scored))[:3]  # best first; ties in alphabetical order
    message = f"unknown region {query!r} (from {where})"
    if close:
        return f"{message}; did you mean {', '.join(name for _, name in close)}?"
    return f"{message}; use {_EXAMPLES}"
