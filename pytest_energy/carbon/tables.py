"""The bundled grid-intensity tables: parsed lazily, every row checked.

``pytest_energy/data/`` holds two CSVs copied unchanged from the project's data
folder (provenance in ``data/PROVENANCE.md``). They are read on first use only,
so a session without energy measurement never opens them, and a session that
uses the default intensity parses just the WORLD row.

Checks on every row, each failing with ``CarbonDataError`` naming file and line:
the header is the expected one (the column name carries the unit, g CO2e/kWh);
the intensity is a finite number >= 0; the source is not empty; the year is an
integer wherever the table has one (Ember rows, Google rows, and the CCF rows that
come from EPA eGRID2020) and blank is allowed only where CCF states no year; the
CCF rows' original tCO2e/kWh figure, kept in the source column, converts exactly
to the g/kWh column; keys are unique.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

from pytest_energy.carbon.values import CarbonDataError
from pytest_energy.frozen import frozen

COUNTRIES_FILE = "grid-intensity-countries.csv"
CLOUD_FILE = "grid-intensity-cloud-regions.csv"
COUNTRY_COLUMNS = ["iso3", "country", "year", "g_co2e_per_kwh", "source"]
CLOUD_COLUMNS = ["provider", "region", "location", "g_co2e_per_kwh", "year", "source"]
CLOUD_PROVIDERS = ("aws", "azure", "gcp")
WORLD = "WORLD"

Basis = Literal["lifecycle", "operational", "mixed", "unspecified"]

#: Ember's years start in 2000; the table holds 2022-2024. A wider window still
#: catches a shifted column (a g/kWh figure read as a year).
_YEARS = range(1990, 2101)
# Strings, compiled by re's cache when a cloud table is first checked: a run that
# never reads one does not pay for compiling them (issue 16).
_CCF_TONNES = r"\(([0-9.]+) tCO2e/kWh"
_GOOGLE_YEAR_FILE = r"data/yearly/(\d{4})\.csv"


@frozen
class Dataset:
    """Who publishes a table's numbers and on what basis they are computed."""

    source: str
    basis: Basis
    licence: str
    attribution: str
    #: Said in place of the year when a row has none.
    no_year: str = "year not stated"


#: One entry per provider key of IntensityRow.provider. Bases per data/README.md:
#: Ember is lifecycle; Google's 2021+ files are operational; CCF mixes eGRID
#: (direct combustion), EEA (CO2 of generation) and carbonfootprint.com factors.
DATASETS: dict[str, Dataset] = {
    "country": Dataset(
        "Ember",
        "lifecycle",
        "CC BY 4.0",
        "Ember, Yearly Electricity Data, CC BY 4.0, via The Green Web Foundation CO2.js",
    ),
    "gcp": Dataset(
        "Google Cloud",
        "operational",
        "Apache-2.0",
        "Google LLC, region-carbon-info, Apache-2.0",
    ),
    "aws": Dataset(
        "Cloud Carbon Footprint",
        "mixed",
        "Apache-2.0",
        "Cloud Carbon Footprint, © 2021 Thoughtworks, Inc., Apache-2.0",
        no_year="year not stated by CCF",
    ),
    "azure": Dataset(
        "Cloud Carbon Footprint",
        "mixed",
        "Apache-2.0",
        "Cloud Carbon Footprint, © 2021 Thoughtworks, Inc., Apache-2.0",
        no_year="year not stated by CCF",
    ),
}


@frozen
class IntensityRow:
    """One row of a bundled table: a country (or WORLD) or a cloud region."""

    key: str  # "KOR", "WORLD", "gcp:europe-west1"
    provider: str  # "country", "gcp", "aws" or "azure"
    name: str  # country name or the region's location ("" where the source has none)
    g_per_kwh: float
    year: int | None
    source: str  # the full source text of the row
    line: int

    @property
    def dataset(self) -> Dataset:
        return DATASETS[self.provider]

    @property
    def region(self) -> str:
        """The region without its provider prefix: ``europe-west1``, ``KOR``."""
        return self.key.partition(":")[2] or self.key


@frozen
class Tables:
    """Both bundled tables, keyed for lookup."""

    countries: dict[str, IntensityRow]  # alpha-3 (and WORLD) -> row
    cloud: dict[str, IntensityRow]  # "provider:region" -> row

    @property
    def world(self) -> IntensityRow:
        return self.countries[WORLD]

    def rows(self) -> list[IntensityRow]:
        return [*self.countries.values(), *self.cloud.values()]


def _reader(text: str, name: str, columns: list[str]) -> csv.DictReader[str]:
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="_extra")
    if reader.fieldnames != columns:
        raise CarbonDataError(
            f"{name}: header {reader.fieldnames!r} is not the expected {columns!r}"
        )
    return reader


def _value(raw: str | None, name: str, line: int) -> tuple[float, Decimal]:
    try:
        exact = Decimal((raw or "").strip())
    except InvalidOperation:
        raise CarbonDataError(
            f"{name} line {line}: g_co2e_per_kwh {raw!r} is not a number of g/kWh"
        ) from None
    if not exact.is_finite() or exact < 0:
        raise CarbonDataError(f"{name} line {line}: g_co2e_per_kwh {raw!r} must be >= 0")
    return float(exact), exact


def _year(raw: str | None, name: str, line: int, *, required: bool) -> int | None:
    text = (raw or "").strip()
    if not text:
        if required:
            raise CarbonDataError(f"{name} line {line}: the year is missing")
        return None
    if not text.isdigit() or int(text) not in _YEARS:
        raise CarbonDataError(f"{name} line {line}: year {text!r} is not a year")
    return int(text)


def _row_fields(row: dict[str, str | None], name: str, line: int) -> dict[str, str]:
    if row.get("_extra") or any(value is None for value in row.values()):
        raise CarbonDataError(f"{name} line {line}: wrong number of fields")
    fields = {key: (value or "").strip() for key, value in row.items()}
    if not fields["source"]:
        raise CarbonDataError(f"{name} line {line}: the source is missing")
    return fields


def parse_countries(
    text: str, name: str = COUNTRIES_FILE, *, first_line: int = 2
) -> dict[str, IntensityRow]:
    """Rows of a countries table (``iso3,country,year,g_co2e_per_kwh,source``).

    ``first_line``: the file's line number of the first row after the header,
    for a text that holds the header and one row taken from further down.
    """
    rows: dict[str, IntensityRow] = {}
    for number, raw in enumerate(_reader(text, name, COUNTRY_COLUMNS), start=first_line):
        fields = _row_fields(raw, name, number)
        key = fields["iso3"]
        if key != WORLD and not re.fullmatch(r"[A-Z]{3}", key):
            raise CarbonDataError(f"{name} line {number}: iso3 {key!r} is not an alpha-3 code")
        if key in rows:
            raise CarbonDataError(f"{name} line {number}: {key} appears twice")
        value, _ = _value(fields["g_co2e_per_kwh"], name, number)
        year = _year(fields["year"], name, number, required=True)
        rows[key] = IntensityRow(
            key, "country", fields["country"], value, year, fields["source"], number
        )
    if WORLD not in rows:
        raise CarbonDataError(f"{name}: the WORLD row (the default intensity) is missing")
    return rows


def parse_cloud_regions(text: str, name: str = CLOUD_FILE) -> dict[str, IntensityRow]:
    """Rows of a cloud-regions table (``provider,region,location,g_co2e_per_kwh,year,source``)."""
    rows: dict[str, IntensityRow] = {}
    for number, raw in enumerate(_reader(text, name, CLOUD_COLUMNS), start=2):
        fields = _row_fields(raw, name, number)
        provider, region = fields["provider"], fields["region"]
        if provider not in CLOUD_PROVIDERS:
            raise CarbonDataError(f"{name} line {number}: unknown provider {provider!r}")
        key = f"{provider}:{region.lower()}"
        if not region or key in rows:
            raise CarbonDataError(f"{name} line {number}: region {region!r} is empty or twice")
        value, exact = _value(fields["g_co2e_per_kwh"], name, number)
        source = fields["source"]
        # Google's rows and CCF's eGRID2020 (US) rows have a data year; CCF states
        # none for its other rows, which is why their year is blank by design.
        required = provider == "gcp" or "eGRID" in source
        year = _year(fields["year"], name, number, required=required)
        _check_source(provider, source, exact, year, name=name, line=number)
        rows[key] = IntensityRow(key, provider, fields["location"], value, year, source, number)
    return rows


def _check_source(
    provider: str, source: str, exact: Decimal, year: int | None, *, name: str, line: int
) -> None:
    """Cross-check a row's number and year against the original its source quotes."""
    if provider in ("aws", "azure"):
        # CCF publishes metric tonnes per kWh; the g/kWh column must be x 1e6, exactly.
        match = re.search(_CCF_TONNES, source)
        if match is None:
            raise CarbonDataError(f"{name} line {line}: the source lacks CCF's tCO2e/kWh figure")
        if Decimal(match.group(1)) * 1_000_000 != exact:
            raise CarbonDataError(
                f"{name} line {line}: {match.group(1)} tCO2e/kWh is not {exact} g/kWh"
            )
    elif provider == "gcp":
        match = re.search(_GOOGLE_YEAR_FILE, source)
        if match is None or int(match.group(1)) != year:
            raise CarbonDataError(f"{name} line {line}: year {year} is not the source file's")


def _read(name: str) -> str:
    path = Path(__file__).parent.parent / "data" / name
    if path.is_file():
        return path.read_text(encoding="utf-8")
    # A zipped install has no files: importlib.resources (2-3 ms to import) reads it.
    from importlib import resources

    # One joinpath per level: several arguments need Python 3.11, we support 3.10.
    data = resources.files("pytest_energy").joinpath("data").joinpath(name)
    return data.read_text(encoding="utf-8")


@functools.cache
def bundled_world() -> IntensityRow:
    """The WORLD row of the bundled countries table, checked as in the whole table.

    The default intensity needs this row only; the whole table costs a few ms to
    parse. A file without a WORLD line is parsed whole, for its error.
    """
    text = _read(COUNTRIES_FILE)
    header, _, rows = text.partition("\n")
    for number, line in enumerate(rows.split("\n"), start=2):
        if line.startswith(WORLD + ","):
            return parse_countries(f"{header}\n{line}\n", first_line=number)[WORLD]
    return bundled_tables().world


@functools.cache
def bundled_tables() -> Tables:
    """The tables shipped in the package, parsed and checked once per process."""
    return Tables(
        countries=parse_countries(_read(COUNTRIES_FILE)),
        cloud=parse_cloud_regions(_read(CLOUD_FILE)),
    )
