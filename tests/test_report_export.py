"""Exports: github-action-benchmark's customSmallerIsBetter JSON, and CSV."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest
from records import HOSTILE_IDS, hostile_record, plain_test, sample_record

from pytest_energy.report.export import CSV_COLUMNS, csv_text, export, github_action_benchmark


def test_benchmark_json_has_one_entry_per_measured_test() -> None:
    record = sample_record()
    entries = json.loads(github_action_benchmark(record))
    measured = [t for t in record.tests if t.measurement is not None]
    assert [e["name"] for e in entries] == [t.nodeid for t in measured]
    assert all(set(e) <= {"name", "unit", "value", "range", "extra"} for e in entries)
    plain, bench = entries[0], entries[1]
    assert plain == {
        "name": "tests/test_io.py::test_load_dataset",
        "unit": "J",
        "value": 412.5,
        "extra": "method: measured\nmeters: nvml, rapl",
    }
    assert bench["unit"] == "J/sample"
    assert bench["value"] == pytest.approx(0.846, rel=0.01)
    assert bench["range"].startswith("± ")
    assert bench["extra"] == "method: measured\nmeters: nvml, rapl\nrounds: 10 x 40 calls"
    flagged = next(e for e in entries if e["name"].endswith("test_one_epoch"))
    assert flagged["extra"].endswith("\nflags: gpu_shared")


def test_values_stay_in_joules_whatever_their_size() -> None:
    record = replace(
        sample_record(),
        tests=[plain_test("t.py::tiny", 0.0042, 0.01), plain_test("t.py::huge", 4.2e6, 100.0)],
    )
    assert [e["value"] for e in json.loads(github_action_benchmark(record))] == [0.0042, 4.2e6]


def test_csv_has_the_documented_columns() -> None:
    record = sample_record()
    rows = list(csv.reader(io.StringIO(csv_text(record), newline="")))
    assert (
        rows[0]
        == CSV_COLUMNS
        == [
            "nodeid",
            "outcome",
            "joules",
            "seconds",
            "watts",
            "j_per_unit",
            "unit",
            "method",
            "meters",
            "flags",
            "gco2e",
            "verdict",
            "ratio",
            "ci_low",
            "ci_high",
        ]
    )
    assert len(rows) == len(record.tests) + 1
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["nodeid"] == "tests/test_io.py::test_load_dataset"
    assert float(first["joules"]) == 412.5
    assert first["method"] == "measured"
    assert first["meters"] == "nvml rapl"
    assert first["verdict"] == "regression"
    assert float(first["ratio"]) == 1.23
    bench = dict(zip(rows[0], rows[2], strict=True))
    assert bench["unit"] == "sample"
    assert float(bench["j_per_unit"]) == pytest.approx(0.846, rel=0.01)
    broken = dict(zip(rows[0], rows[-1], strict=True))
    assert broken["outcome"] == "error"
    assert broken["joules"] == ""
    # Floats are written in their shortest round-trip form, so nothing is lost.
    assert float(bench["joules"]) == record.tests[1].measurement.total_j  # type: ignore[union-attr]


def test_csv_quotes_hostile_ids_and_defuses_formulas() -> None:
    record = hostile_record()
    formula_tests = [
        plain_test('=HYPERLINK("http://x","y")', 1.0, 1.0),
        plain_test("+1+1", 1.0, 1.0),
        plain_test("@SUM(A1)", 1.0, 1.0),
        plain_test("-2", 1.0, 1.0),
    ]
    negative = replace(plain_test("t.py::net", 1.0, 1.0), net_j=-5.0)
    record = replace(record, tests=[*record.tests, *formula_tests, negative])
    text = csv_text(record)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    ids = [row[0] for row in rows[1:]]
    assert ids[: len(HOSTILE_IDS)] == HOSTILE_IDS  # newlines, quotes, commas survive quoting
    assert ids[len(HOSTILE_IDS) :] == [
        '\'=HYPERLINK("http://x","y")',
        "'+1+1",
        "'@SUM(A1)",
        "'-2",
        "t.py::net",
    ]
    assert all(len(row) == len(CSV_COLUMNS) for row in rows)


def test_negative_numbers_stay_numeric() -> None:
    test = plain_test("t.py::x", 1.0, 1.0, status="improvement", ratio=0.5)
    assert test.verdict is not None
    test = replace(test, verdict=replace(test.verdict, ci_low=-0.25))
    rows = list(csv.reader(io.StringIO(csv_text(replace(sample_record(), tests=[test])))))
    assert dict(zip(rows[0], rows[1], strict=True))["ci_low"] == "-0.25"


def test_export_dispatch() -> None:
    record = sample_record()
    assert export(record, "csv") == csv_text(record)
    assert export(record, "github-action-benchmark") == github_action_benchmark(record)
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        export(record, "xml")
