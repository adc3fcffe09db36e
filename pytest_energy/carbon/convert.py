"""From joules to grams of CO2e, and how to show the result.

``g CO2e = joules / 3.6e6 x intensity (g/kWh) x PUE``. Embodied emissions are a
second, separate figure (see ``factors``). The gate never judges CO2e unless the
intensity is a fixed number the user gave: a table's figure changes from one
release of the data to the next, a live one from hour to hour.
"""

from __future__ import annotations

import math

from pytest_energy.carbon.factors import DEFAULT_PUE, EmbodiedChoice, PueChoice
from pytest_energy.carbon.intensity import IntensityChoice, provenance_line
from pytest_energy.carbon.tables import DATASETS, Tables, bundled_tables
from pytest_energy.carbon.values import CarbonError, format_number, parse_number
from pytest_energy.record import Carbon, CarbonSummary, EmbodiedSummary

JOULES_PER_KWH = 3_600_000.0

#: The attribution the data's licences ask for; also in data/LICENSES.md and docs.
ATTRIBUTION = """\
Grid carbon-intensity data:
• Country averages: Ember, "Yearly Electricity Data" (https://ember-energy.org/data/yearly-electricity-data/),
  licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/); retrieved via
  The Green Web Foundation's CO2.js (https://github.com/thegreenwebfoundation/co2.js), August 2025.
  Values unchanged; regional aggregates other than World removed.
• Google Cloud regions: Google LLC, "Carbon free energy for Google Cloud regions"
  (https://github.com/GoogleCloudPlatform/region-carbon-info), Apache License 2.0.
• AWS and Azure regions: Cloud Carbon Footprint, © 2021 Thoughtworks, Inc.
  (https://github.com/cloud-carbon-footprint/cloud-carbon-footprint), Apache License 2.0;
  compiled by CCF from US EPA eGRID2020, the European Environment Agency and carbonfootprint.com.
  Converted from tCO2e/kWh to gCO2e/kWh.
"""

#: What each provider's figures are, for the carbon-aware hint.
_HINT_BASIS = {
    "gcp": "Google's operational figures",
    "aws": "CCF's factors: mixed sources and years",
    "azure": "CCF's factors: mixed sources and years",
}


def grams_co2e(joules: float, intensity_g_per_kwh: float, pue: float = 1.0) -> float:
    """``joules / 3.6e6 x intensity x PUE``: operational grams of CO2e."""
    return joules / JOULES_PER_KWH * intensity_g_per_kwh * pue


def carbon_for(
    joules: float,
    choice: IntensityChoice,
    pue: PueChoice | None = None,
    *,
    seconds: float | None = None,
    embodied: EmbodiedChoice | None = None,
) -> Carbon:
    """The ``Carbon`` record of one energy figure (a test, a round, a unit of work).

    ``seconds`` is the window's wall time; with ``embodied`` it gives the
    device's amortised embodied grams, kept apart from ``grams``.
    """
    pue = pue or DEFAULT_PUE
    embodied_grams = None
    if embodied is not None and seconds is not None:
        embodied_grams = embodied.grams(seconds)
    return Carbon(
        grams=grams_co2e(joules, choice.value, pue.value),
        intensity_g_per_kwh=choice.value,
        pue=pue.value,
        source=carbon_source(choice),
        year=choice.year,
        region=choice.region,
        embodied_grams=embodied_grams,
    )


def carbon_source(choice: IntensityChoice) -> str:
    """``Carbon.source``: who published the figure and on what basis."""
    if choice.kind == "explicit":
        return f"user-supplied via {choice.origin}"
    if choice.kind == "live":
        return f"{choice.source} live ({choice.basis})"
    return f"{choice.source} ({choice.basis})"


def format_grams(grams: float) -> str:
    """Grams with a readable unit and 3 significant figures: ``1.23 mg``, ``552 t``."""
    if not math.isfinite(grams):
        return "n/a"
    sign = "-" if grams < 0 else ""
    # Round first, so that 999.9 g is shown as 1.00 kg rather than 1,000 g.
    size = float(f"{abs(grams):.3g}")
    if size == 0:
        return "0 g"
    if size < 1e-7:
        return f"{sign}<0.0001 mg"
    for limit, factor, unit in ((1.0, 1e-3, "mg"), (1e3, 1.0, "g"), (1e6, 1e3, "kg")):
        if size < limit:
            return f"{sign}{_three_figures(size / factor)} {unit}"
    return f"{sign}{_three_figures(size / 1e6)} t"


def _three_figures(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def format_carbon(carbon: Carbon) -> str:
    """One figure with its source and year: ``1.23 mg CO2e [WORLD, Ember (lifecycle), 2024]``."""
    year = str(carbon.year) if carbon.year is not None else "year not stated"
    text = f"{format_grams(carbon.grams)} CO2e [{carbon.region}, {carbon.source}, {year}"
    if carbon.pue != 1.0:
        text += f", PUE {_pue_text(carbon.pue)}"
    text += "]"
    if carbon.embodied_grams is not None:
        text += f"; embodied {format_grams(carbon.embodied_grams)} CO2e (separate)"
    return text


def header_line(
    choice: IntensityChoice,
    pue: PueChoice | None = None,
    embodied: EmbodiedChoice | None = None,
) -> str:
    """The session header: intensity and source, PUE, embodied; one line."""
    pue = pue or DEFAULT_PUE
    line = f"{choice.describe()}; PUE {_pue_text(pue.value)} ({pue.label})"
    if embodied is not None:
        line += f"; embodied {embodied.describe()}"
    return line


def _pue_text(value: float) -> str:
    text = format_number(value)
    return text if "." in text else f"{text}.0"  # "PUE 1.0", as the figure is usually written


def attribution_line(choice: IntensityChoice) -> str:
    """A short credit for report footers, matching the data the session used."""
    if choice.kind == "explicit":
        return "Carbon intensity: user-supplied."
    if choice.kind == "live":
        return f"Carbon intensity: {choice.attribution}."
    return f"Carbon intensity: {choice.attribution}; processed by pytest-energy."


def cleaner_region_hint(
    choice: IntensityChoice, grams: float, tables: Tables | None = None
) -> str | None:
    """For a cloud region: what the cleanest region of the same provider would emit.

    Only table figures of the same provider are compared, since providers' data
    differ in basis and year. Azure staging and EUAP keys are skipped: no one
    deploys there.
    """
    provider, sep, _ = choice.region.partition(":")
    if choice.kind != "region" or not sep or choice.value <= 0:
        return None
    tables = tables or bundled_tables()
    rows = [
        row
        for row in tables.cloud.values()
        if row.provider == provider and not row.region.endswith(("stage", "euap"))
    ]
    best = min(rows, key=lambda row: (row.g_per_kwh, row.key))
    basis = _HINT_BASIS.get(provider, DATASETS[provider].basis)
    here = f"{choice.region} -> {format_grams(grams)}"
    if best.g_per_kwh >= choice.value:
        return f"{here}; already the cleanest {provider} region in the table ({basis})"
    there = grams * best.g_per_kwh / choice.value
    where = f"{best.region}, {best.name}" if best.name else best.region
    return (
        f"{here}; the cleanest {provider} region in the table, {where} "
        f"({format_number(best.g_per_kwh)} g/kWh), would have emitted {format_grams(there)} "
        f"({basis})"
    )


def validate_co2e_budget(
    max_gco2e: object, choice: IntensityChoice, *, where: str = "the energy marker"
) -> float:
    """Check a ``max_gco2e`` budget; allowed only with a fixed explicit intensity.

    With a region, the world default or a live provider, the same code would
    pass or fail as the grid data changes, so the budget is refused.
    """
    expected = "a number of grams > 0"
    value = parse_number(max_gco2e, what="max_gco2e", where=where, expected=expected)
    if value <= 0:
        raise CarbonError(f"invalid max_gco2e {max_gco2e!r} from {where}: expected {expected}")
    if choice.kind != "explicit":
        raise CarbonError(
            f"max_gco2e in {where} needs a fixed intensity (--energy-carbon-intensity=G); "
            f"the session uses {provenance_line(choice)}, which changes between runs or "
            f"data releases, so CO2e is reported, not gated: budget energy (joules) instead"
        )
    return value


def session_record(
    choice: IntensityChoice,
    pue: PueChoice | None = None,
    embodied: EmbodiedChoice | None = None,
    notices: list[str] | None = None,
) -> CarbonSummary:
    """The run record's ``session.carbon``: the settings behind every CO2e figure."""
    pue = pue or DEFAULT_PUE
    return CarbonSummary(
        intensity_g_per_kwh=choice.value,
        kind=choice.kind,
        region=choice.region,
        name=choice.name,
        requested=choice.requested,
        source=choice.source,
        year=choice.year,
        as_of=choice.as_of,
        basis=choice.basis,
        licence=choice.licence,
        attribution=choice.attribution,
        origin=choice.origin,
        provenance=provenance_line(choice),
        pue=pue.value,
        pue_label=pue.label,
        pue_source=pue.source,
        embodied=None
        if embodied is None
        else EmbodiedSummary(
            kg_co2e=embodied.kg_co2e,
            lifetime_years=embodied.lifetime_years,
            share=embodied.share,
            label=embodied.label,
            source=embodied.source,
        ),
        header=header_line(choice, pue, embodied),
        notices=list(notices or []),
    )
