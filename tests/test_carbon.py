"""Carbon accounting: published figures, the bundled tables, and every user-facing rule."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from pytest_energy.carbon import (
    ATTRIBUTION,
    EMBODIED_PRESETS,
    PUE_PRESETS,
    CarbonDataError,
    CarbonError,
    attribution_line,
    bundled_tables,
    carbon_for,
    cleaner_region_hint,
    format_carbon,
    format_grams,
    grams_co2e,
    header_line,
    parse_embodied,
    parse_pue,
    provenance_line,
    resolve_intensity,
    session_record,
    validate_co2e_budget,
)
from pytest_energy.carbon.countries import ALPHA2_TO_ALPHA3
from pytest_energy.carbon.factors import SECONDS_PER_YEAR
from pytest_energy.carbon.tables import (
    CLOUD_FILE,
    COUNTRIES_FILE,
    parse_cloud_regions,
    parse_countries,
)
from pytest_energy.record import CarbonSummary, from_plain, to_plain

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "pytest_energy" / "data"
SHARED = ROOT.parent / "shared" / "data"
J_PER_KWH = 3.6e6


@pytest.fixture(scope="module")
def figures() -> dict[str, float]:
    """Published headline figures (tests/data/reference-figures.csv), by id."""
    with (Path(__file__).parent / "data" / "reference-figures.csv").open(encoding="utf-8") as f:
        return {row["id"]: float(row["value"]) for row in csv.DictReader(f)}


# -- published figures, through the public API ------------------------------------------


def test_gpt3_training_emissions(figures: dict[str, float]) -> None:
    """Patterson et al. 2021: 1,287 MWh at 429 g/kWh is about 552 t CO2e."""
    joules = figures["gpt3_training_energy"] * 1000 * J_PER_KWH
    choice = resolve_intensity(str(figures["gpt3_grid_intensity"]), None)
    carbon = carbon_for(joules, choice)
    assert carbon.grams / 1e6 == pytest.approx(552.1, abs=0.05)
    assert round(carbon.grams / 1e6) == figures["gpt3_training_co2e"]
    assert format_grams(carbon.grams) == "552 t"


def test_bloom_energy_from_gpu_hours(figures: dict[str, float]) -> None:
    """Luccioni et al. 2023: 1,082,990 GPU-h x 0.4 kW (TDP) = 433,196 kWh."""
    joules = figures["bloom_gpu_hours"] * 3600 * 400.0
    assert joules / J_PER_KWH == pytest.approx(figures["bloom_training_energy_dynamic"])


def test_bloom_dynamic_emissions(figures: dict[str, float]) -> None:
    """433,196 kWh x 57 g/kWh = 24.69 t (abstract: about 24.7 t)."""
    joules = figures["bloom_training_energy_dynamic"] * J_PER_KWH
    grams = grams_co2e(joules, figures["bloom_grid_intensity"])
    assert round(grams / 1e6, 2) == figures["bloom_co2e_dynamic"]
    assert format_grams(grams) == "24.7 t"


def test_bloom_total_keeps_embodied_separate(figures: dict[str, float]) -> None:
    """11.2 (embodied) + 24.69 (dynamic) + 14.6 (idle) = 50.49 t, published as 50.5 t."""
    joules = figures["bloom_training_energy_dynamic"] * J_PER_KWH
    dynamic_t = round(grams_co2e(joules, figures["bloom_grid_intensity"]) / 1e6, 2)
    total = figures["bloom_co2e_embodied"] + dynamic_t + figures["bloom_co2e_idle"]
    assert total == pytest.approx(50.49)
    assert round(total, 1) == figures["bloom_co2e_total"]


@pytest.mark.parametrize(
    "row",
    [
        "php_text_classification",
        "php_image_classification",
        "php_text_generation",
        "php_summarization",
        "php_image_generation",
    ],
)
def test_kwh_per_thousand_is_wh_per_inference(figures: dict[str, float], row: str) -> None:
    """Power Hungry Processing: X kWh per 1,000 inferences is X Wh per inference."""
    joules_per_inference = figures[row] * J_PER_KWH / 1000
    assert joules_per_inference / 3600 == pytest.approx(figures[row])
    world = resolve_intensity(None, None)
    grams = carbon_for(joules_per_inference, world).grams
    assert grams == pytest.approx(figures[row] * 472.94 / 1000)


def test_pue_multiplies_operational_grams() -> None:
    choice = resolve_intensity("429", None)
    plain = carbon_for(1e9, choice)
    with_pue = carbon_for(1e9, choice, parse_pue("1.1"))
    assert with_pue.grams == pytest.approx(plain.grams * 1.1)
    assert with_pue.pue == 1.1


# -- bundled data -------------------------------------------------------------------


def test_bundled_tables_load_every_row() -> None:
    tables = bundled_tables()
    assert len(tables.countries) == 210
    providers = [row.provider for row in tables.cloud.values()]
    assert (providers.count("gcp"), providers.count("aws"), providers.count("azure")) == (
        44,
        27,
        77,
    )
    for row in tables.rows():
        assert math.isfinite(row.g_per_kwh), row
        assert row.g_per_kwh >= 0, row
        assert row.source, row
        if row.provider in ("country", "gcp") or "eGRID" in row.source:
            assert row.year is not None, row
        else:  # CCF states no data year outside the US
            assert row.year is None, row


def test_table_row_counts_match_the_files() -> None:
    for name, rows in ((COUNTRIES_FILE, bundled_tables().countries),
                       (CLOUD_FILE, bundled_tables().cloud)):  # fmt: skip
        lines = (DATA / name).read_text(encoding="utf-8").splitlines()
        assert len(lines) - 1 == len(rows)


@pytest.mark.skipif(not SHARED.is_dir(), reason="the project's shared data folder is absent")
@pytest.mark.parametrize("name", [COUNTRIES_FILE, CLOUD_FILE])
def test_bundled_copies_are_unchanged(name: str) -> None:
    assert (DATA / name).read_bytes() == (SHARED / name).read_bytes()


def test_every_country_has_an_alpha2_code_and_no_code_is_unused() -> None:
    countries = set(bundled_tables().countries) - {"WORLD"}
    assert set(ALPHA2_TO_ALPHA3.values()) == countries
    assert len(ALPHA2_TO_ALPHA3) == len(countries)  # one alpha-2 code per country


_COUNTRY_HEADER = "iso3,country,year,g_co2e_per_kwh,source\n"
_WORLD = "WORLD,World,2024,472.94,Ember\n"
_CLOUD_HEADER = "provider,region,location,g_co2e_per_kwh,year,source\n"
_AWS = "aws,eu-west-1,EU (Ireland),278.6,,CCF (0.0002786 tCO2e/kWh; upstream per CCF: EEA)\n"
_GCP = "gcp,europe-west1,Belgium,103.37,2024,Google data/yearly/2024.csv\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_COUNTRY_HEADER + "FRA,France,2024,44.18,\n" + _WORLD, "line 2: the source is missing"),
        (_COUNTRY_HEADER + "FRA,France,,44.18,Ember\n" + _WORLD, "line 2: the year is missing"),
        (_COUNTRY_HEADER + "FRA,France,2024,44.18 g,Ember\n" + _WORLD, "not a number of g/kWh"),
        (_COUNTRY_HEADER + "FRA,France,2024,-1,Ember\n" + _WORLD, "must be >= 0"),
        (_COUNTRY_HEADER + "FRA,France,2024,nan,Ember\n" + _WORLD, "must be >= 0"),
        (_COUNTRY_HEADER + "FRA,France,44.18,2024,Ember\n" + _WORLD, "is not a year"),
        (_COUNTRY_HEADER + "FRA,France,2024,44.18,Ember,x\n" + _WORLD, "wrong number of fields"),
        (_COUNTRY_HEADER + "FRA,France,2024\n" + _WORLD, "wrong number of fields"),
        (_COUNTRY_HEADER + _WORLD + _WORLD, "WORLD appears twice"),
        (_COUNTRY_HEADER + "FRA,France,2024,44.18,Ember\n", "the WORLD row"),
        ("iso3,country,year,kg_co2e_per_kwh,source\n" + _WORLD, "header"),
        (_COUNTRY_HEADER + "France,France,2024,44.18,Ember\n" + _WORLD, "not an alpha-3 code"),
    ],
)
def test_countries_table_rejects_bad_rows(text: str, message: str) -> None:
    with pytest.raises(CarbonDataError, match=message) as info:
        parse_countries(text, "countries.csv")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("countries.csv")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_CLOUD_HEADER + _AWS.replace("278.6", "278.7"), "is not 278.7 g/kWh"),
        (_CLOUD_HEADER + _AWS.replace("(0.0002786 tCO2e/kWh; ", "("), "lacks CCF's tCO2e/kWh"),
        (_CLOUD_HEADER + _GCP.replace(",2024,", ",,"), "the year is missing"),
        (_CLOUD_HEADER + _GCP.replace(",2024,", ",2023,"), "not the source file's"),
        (_CLOUD_HEADER + _GCP.replace("Google data/yearly/2024.csv", ""), "source is missing"),
        (
            _CLOUD_HEADER
            + "aws,us-east-1,Virginia,379.069,,CCF (0.000379069 tCO2e/kWh; eGRID2020)\n",
            "the year is missing",
        ),
        (_CLOUD_HEADER + _GCP + _GCP, "empty or twice"),
        (_CLOUD_HEADER + _GCP.replace("gcp", "oci", 1), "unknown provider"),
    ],
)
def test_cloud_table_rejects_bad_rows(text: str, message: str) -> None:
    with pytest.raises(CarbonDataError, match=message):
        parse_cloud_regions(text, "cloud.csv")


def test_tables_are_parsed_lazily_and_urllib_is_not_imported() -> None:
    code = (
        "import sys, pytest_energy.carbon as c; "
        "print(c.bundled_tables.cache_info().currsize, 'urllib.request' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["0", "False"]


# -- intensity resolution --------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "key", "value", "year"),
    [
        ("KOR", "KOR", 415.65, 2024),
        ("KR", "KOR", 415.65, 2024),
        ("kr", "KOR", 415.65, 2024),
        ("FRA", "FRA", 44.18, 2024),
        ("fr", "FRA", 44.18, 2024),
        ("France", "FRA", 44.18, 2024),
        ("USA", "USA", 383.55, 2024),
        ("US", "USA", 383.55, 2024),
        ("GB", "GBR", 215.79, 2024),
        ("UK", "GBR", 215.79, 2024),
        ("XK", "XKX", 958.72, 2024),
        ("ABW", "ABW", 550, 2022),
        ("WORLD", "WORLD", 472.94, 2024),
        ("world", "WORLD", 472.94, 2024),
    ],
)
def test_country_regions_resolve(region: str, key: str, value: float, year: int) -> None:
    choice = resolve_intensity(None, region)
    assert (choice.region, choice.value, choice.year) == (key, value, year)
    assert (choice.source, choice.basis) == ("Ember", "lifecycle")


def test_default_is_the_world_average() -> None:
    choice = resolve_intensity(None, None)
    assert (choice.kind, choice.region, choice.value, choice.year) == (
        "world",
        "WORLD",
        472.94,
        2024,
    )
    assert provenance_line(choice) == "472.94 g/kWh, WORLD, Ember 2024 (lifecycle)"
    assert choice.describe() == (
        "carbon intensity: 472.94 g/kWh, WORLD, Ember 2024 (lifecycle) "
        "[world average: no region set; use --energy-region or --energy-carbon-intensity]"
    )


def test_empty_strings_count_as_unset() -> None:
    assert resolve_intensity("", "  ").kind == "world"


@pytest.mark.parametrize(
    ("region", "key", "value", "year", "basis"),
    [
        ("gcp:europe-west1", "gcp:europe-west1", 103.37, 2024, "operational"),
        ("GCP:Europe-West1", "gcp:europe-west1", 103.37, 2024, "operational"),
        ("aws:us-east-1", "aws:us-east-1", 379.069, 2020, "mixed"),
        ("aws:eu-central-1", "aws:eu-central-1", 311, None, "mixed"),
        ("azure:westeurope", "azure:westeurope", 328.4, None, "mixed"),
        ("azure:WestEurope", "azure:westeurope", 328.4, None, "mixed"),
        ("azure:West Europe", "azure:westeurope", 328.4, None, "mixed"),
    ],
)
def test_cloud_regions_resolve(
    region: str, key: str, value: float, year: int | None, basis: str
) -> None:
    choice = resolve_intensity(None, region)
    assert (choice.region, choice.value, choice.year, choice.basis) == (key, value, year, basis)


def test_a_missing_ccf_year_is_said_in_words() -> None:
    choice = resolve_intensity(None, "aws:eu-central-1")
    assert provenance_line(choice) == (
        "311 g/kWh, aws:eu-central-1, Cloud Carbon Footprint, year not stated by CCF (mixed)"
    )


def test_region_describe_names_its_origin() -> None:
    choice = resolve_intensity(None, "KR", origin={"region": "PYTEST_ENERGY_REGION"})
    assert choice.describe() == (
        "carbon intensity: 415.65 g/kWh, KOR, Ember 2024 (lifecycle) "
        "[set by PYTEST_ENERGY_REGION: KR, South Korea]"
    )


def test_explicit_intensity_wins_over_region() -> None:
    choice = resolve_intensity("300", "KR")
    assert (choice.kind, choice.value, choice.year, choice.region) == (
        "explicit",
        300.0,
        None,
        "custom",
    )
    assert choice.describe() == (
        "carbon intensity: 300 g/kWh, user-supplied via --energy-carbon-intensity "
        "(basis not stated) [region KR not used: an explicit intensity wins]"
    )


@pytest.mark.parametrize("raw", ["415", "415.0", " 415 ", "415 g/kWh", "415gCO2e/kWh", 415])
def test_explicit_intensity_forms(raw: str | int) -> None:
    assert resolve_intensity(raw, None).value == 415.0


def test_zero_intensity_is_allowed_as_the_table_has_zero_rows() -> None:
    assert bundled_tables().countries["CAF"].g_per_kwh == 0
    assert resolve_intensity("0", None).value == 0.0


@pytest.mark.parametrize("raw", ["abc", "-1", "nan", "NaN", "inf", "-inf", "1e999", "4 kg"])
@pytest.mark.parametrize(
    "where",
    [
        "--energy-carbon-intensity",
        "PYTEST_ENERGY_CARBON_INTENSITY",
        "energy_carbon_intensity in the ini file",
    ],
)
def test_bad_intensity_is_one_line_naming_its_origin(raw: str, where: str) -> None:
    with pytest.raises(CarbonError) as info:
        resolve_intensity(raw, None, origin={"intensity": where})
    message = str(info.value)
    assert "\n" not in message
    assert where in message
    assert repr(raw) in message


def test_unknown_cloud_region_suggests_close_matches() -> None:
    with pytest.raises(CarbonError) as info:
        resolve_intensity(None, "aws:us-east-9", origin={"region": "--energy-region"})
    message = str(info.value)
    assert message.startswith("unknown region 'aws:us-east-9' (from --energy-region); did you mean")
    assert "did you mean aws:us-east-1, aws:us-east-2" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("region", "suggestion"),
    [("gcp:europe-west7", "gcp:europe-west"), ("Frnace", "France"), ("KRR", "KOR")],
)
def test_unknown_regions_suggest(region: str, suggestion: str) -> None:
    with pytest.raises(CarbonError, match=f"did you mean .*{suggestion}"):
        resolve_intensity(None, region, origin={"region": "energy_region in the ini file"})


def test_unknown_region_without_close_match_shows_examples() -> None:
    with pytest.raises(CarbonError, match=r"use a country code .*aws:us-east-1"):
        resolve_intensity(None, "qqqqqq")


def test_unknown_cloud_provider() -> None:
    with pytest.raises(
        CarbonError, match=r"unknown cloud provider 'amazon'.*use aws:, azure:, gcp:"
    ):
        resolve_intensity(None, "amazon:us-east-1")


# -- conversion and display -------------------------------------------------------------


def test_carbon_record_carries_source_year_and_region() -> None:
    choice = resolve_intensity(None, "KOR")
    carbon = carbon_for(3.6e6, choice)  # 1 kWh
    assert carbon.grams == pytest.approx(415.65)
    assert (carbon.intensity_g_per_kwh, carbon.pue, carbon.year, carbon.region) == (
        415.65,
        1.0,
        2024,
        "KOR",
    )
    assert carbon.source == "Ember (lifecycle)"
    assert carbon.embodied_grams is None
    assert format_carbon(carbon) == "416 g CO2e [KOR, Ember (lifecycle), 2024]"
    json.dumps(asdict(carbon))


def test_format_carbon_without_year_and_with_pue() -> None:
    carbon = carbon_for(3.6e6, resolve_intensity(None, "aws:eu-central-1"), parse_pue("aws"))
    assert format_carbon(carbon) == (
        "353 g CO2e [aws:eu-central-1, Cloud Carbon Footprint (mixed), year not stated, PUE 1.135]"
    )


@pytest.mark.parametrize(
    ("grams", "text"),
    [
        (0, "0 g"),
        (0.000946, "0.946 mg"),
        (0.5, "500 mg"),
        (1, "1.00 g"),
        (12.34, "12.3 g"),
        (999.9, "1.00 kg"),
        (1234, "1.23 kg"),
        (24_692_172, "24.7 t"),
        (552_123_000, "552 t"),
        (-3, "-3.00 g"),
        (1e-9, "<0.0001 mg"),
        (float("nan"), "n/a"),
    ],
)
def test_format_grams(grams: float, text: str) -> None:
    assert format_grams(grams) == text


def test_header_line() -> None:
    choice = resolve_intensity(None, "gcp:europe-west1")
    line = header_line(choice, parse_pue("gcp"), parse_embodied("laptop"))
    assert line == (
        "carbon intensity: 103.37 g/kWh, gcp:europe-west1, Google Cloud 2024 (operational) "
        "[set by --energy-region: gcp:europe-west1, Belgium]; PUE 1.1 (gcp); "
        "embodied 181 kg CO2e over 4 y (laptop)"
    )
    assert header_line(resolve_intensity(None, None)).endswith("; PUE 1.0 (IT energy only)")


def test_session_record_is_json() -> None:
    choice = resolve_intensity(None, "FR")
    record = session_record(choice, parse_pue("industry"), parse_embodied("1500,4"), ["note"])
    assert record.provenance == "44.18 g/kWh, FRA, Ember 2024 (lifecycle)"
    assert record.pue == 1.58
    assert record.embodied is not None
    assert record.embodied.kg_co2e == 1500
    assert record.notices == ["note"]
    plain = to_plain(record)
    json.dumps(plain, allow_nan=False)
    assert from_plain(CarbonSummary, plain) == record


# -- PUE -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (None, 1.0),
        ("", 1.0),
        ("aws", 1.135),
        ("GCP", 1.1),
        ("azure", 1.185),
        ("industry", 1.58),
        ("generic-dc", 1.58),
        ("1.2", 1.2),
        (1.4, 1.4),
        ("1", 1.0),
    ],
)
def test_pue_values_and_presets(raw: str | float | None, value: float) -> None:
    assert parse_pue(raw).value == value


def test_pue_presets_are_cited() -> None:
    assert {name: p.value for name, p in PUE_PRESETS.items()} == {
        "aws": 1.135,
        "gcp": 1.1,
        "azure": 1.185,
        "industry": 1.58,
    }
    assert all("Cloud Carbon Footprint" in PUE_PRESETS[p].source for p in ("aws", "gcp", "azure"))
    assert "Uptime Institute" in PUE_PRESETS["industry"].source


@pytest.mark.parametrize("raw", ["0.9", "0", "-1", "nan", "inf", "fast", "1,2"])
def test_bad_pue_is_one_line_naming_its_origin(raw: str) -> None:
    with pytest.raises(CarbonError) as info:
        parse_pue(raw, origin="PYTEST_ENERGY_PUE")
    message = str(info.value)
    assert "PYTEST_ENERGY_PUE" in message
    assert "\n" not in message
    assert "aws, gcp, azure, industry" in message


# -- embodied ------------------------------------------------------------------------


def test_embodied_user_figure_amortises_over_lifetime() -> None:
    embodied = parse_embodied("1500,4")
    assert embodied is not None
    assert embodied.grams(4 * SECONDS_PER_YEAR) == pytest.approx(1_500_000)
    assert embodied.grams(3600) == pytest.approx(1_500_000 * 3600 / (4 * 365 * 86400))


def test_embodied_laptop_preset_is_about_1_4_mg_per_second() -> None:
    """GMT's example laptop, TE 181,000 g over 4 years: about 1.4 mg CO2e per second."""
    laptop = EMBODIED_PRESETS["laptop"]
    assert (laptop.kg_co2e, laptop.lifetime_years, laptop.share) == (181.0, 4.0, 1.0)
    assert laptop.grams(1.0) * 1000 == pytest.approx(1.435, abs=0.001)


def test_embodied_github_runner_matches_eco_ci() -> None:
    """Eco-CI: 1151.7 kg x 4/128 = 35,990.625 g over 126,144,000 s (4 years)."""
    runner = parse_embodied("github-runner")
    assert runner is not None
    assert runner.grams(126_144_000) == pytest.approx(35_990.625)


def test_embodied_share_form() -> None:
    embodied = parse_embodied("1151.7,4,0.03125")
    assert embodied is not None
    assert embodied.grams(126_144_000) == pytest.approx(35_990.625)


@pytest.mark.parametrize("raw", [None, "", "off", "none"])
def test_embodied_off(raw: str | None) -> None:
    assert parse_embodied(raw) is None


@pytest.mark.parametrize(
    "raw", ["1500", "1500,0", "-1,4", "1500,4,0", "1500,4,2", "a,b", "1500,4,1,1", "gpu", "nan,4"]
)
def test_bad_embodied_is_one_line_naming_its_origin(raw: str) -> None:
    with pytest.raises(CarbonError) as info:
        parse_embodied(raw, origin="energy_embodied in the ini file")
    assert "energy_embodied in the ini file" in str(info.value)
    assert "\n" not in str(info.value)


def test_embodied_is_reported_apart_from_operational_grams() -> None:
    choice = resolve_intensity(None, None)
    plain = carbon_for(1000.0, choice, seconds=10.0)
    with_embodied = carbon_for(1000.0, choice, seconds=10.0, embodied=parse_embodied("1500,4"))
    assert with_embodied.grams == plain.grams
    assert plain.embodied_grams is None
    assert with_embodied.embodied_grams == pytest.approx(1_500_000 * 10 / (4 * SECONDS_PER_YEAR))
    assert "embodied" in format_carbon(with_embodied)
    # Without the window's time there is nothing to amortise.
    assert carbon_for(1000.0, choice, embodied=parse_embodied("laptop")).embodied_grams is None


# -- carbon-aware hint ---------------------------------------------------------------


def test_hint_names_the_cleanest_region_of_the_same_provider() -> None:
    choice = resolve_intensity(None, "gcp:europe-west1")
    grams = carbon_for(100 * J_PER_KWH, choice).grams  # 10,337 g
    hint = cleaner_region_hint(choice, grams)
    assert hint == (
        "gcp:europe-west1 -> 10.3 kg; the cleanest gcp region in the table, europe-north2, "
        "Stockholm (2.73 g/kWh), would have emitted 273 g (Google's operational figures)"
    )


def test_hint_skips_azure_staging_keys_and_says_the_basis() -> None:
    hint = cleaner_region_hint(resolve_intensity(None, "azure:westeurope"), 1000.0)
    assert hint is not None
    assert "swedencentral" in hint
    assert "CCF's factors: mixed sources and years" in hint


def test_hint_when_already_cleanest() -> None:
    hint = cleaner_region_hint(resolve_intensity(None, "gcp:europe-north2"), 1.0)
    assert hint == (
        "gcp:europe-north2 -> 1.00 g; already the cleanest gcp region in the table "
        "(Google's operational figures)"
    )


@pytest.mark.parametrize(("intensity", "region"), [(None, "FR"), (None, None), ("100", None)])
def test_no_hint_outside_cloud_regions(intensity: str | None, region: str | None) -> None:
    assert cleaner_region_hint(resolve_intensity(intensity, region), 5.0) is None


# -- CO2e budget ---------------------------------------------------------------------


def test_co2e_budget_allowed_with_explicit_intensity() -> None:
    choice = resolve_intensity("300", None, origin={"intensity": "PYTEST_ENERGY_CARBON_INTENSITY"})
    assert validate_co2e_budget(5, choice) == 5.0
    assert validate_co2e_budget("0.5", choice) == 0.5


@pytest.mark.parametrize("region", [None, "KR", "gcp:europe-west1"])
def test_co2e_budget_refused_without_fixed_intensity(region: str | None) -> None:
    with pytest.raises(CarbonError) as info:
        validate_co2e_budget(5, resolve_intensity(None, region), where="test_train's marker")
    message = str(info.value)
    assert message.startswith("max_gco2e in test_train's marker needs a fixed intensity")
    assert "--energy-carbon-intensity" in message
    assert "\n" not in message


@pytest.mark.parametrize("value", [0, -1, "x", True, float("nan"), None])
def test_co2e_budget_value_checked(value: object) -> None:
    with pytest.raises(CarbonError, match="max_gco2e"):
        validate_co2e_budget(value, resolve_intensity("300", None))


# -- attribution ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [ROOT / "pytest_energy" / "data" / "LICENSES.md", ROOT / "docs" / "carbon.md"]
)
def test_attribution_text_is_quoted_verbatim(path: Path) -> None:
    quoted = "\n".join(f"> {line}" for line in ATTRIBUTION.splitlines())
    assert quoted in path.read_text(encoding="utf-8")


def test_attribution_line_follows_the_data_used() -> None:
    assert "Ember" in attribution_line(resolve_intensity(None, None))
    assert "Google" in attribution_line(resolve_intensity(None, "gcp:us-west1"))
    assert "Thoughtworks" in attribution_line(resolve_intensity(None, "azure:uksouth"))
    assert attribution_line(resolve_intensity("10", None)) == "Carbon intensity: user-supplied."
