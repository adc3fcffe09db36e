"""The committed JSON Schema matches the dataclasses, and real results validate against it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import traces

from pytest_energy.record_schema import build_schema

SCHEMA = Path(__file__).resolve().parents[1] / "pytest_energy" / "schema" / "results.schema.json"


def test_committed_schema_is_current() -> None:
    assert json.loads(SCHEMA.read_text()) == build_schema(), (
        "regenerate: python -m pytest_energy.record_schema "
        "> pytest_energy/schema/results.schema.json"
    )


def test_a_real_results_file_validates(pytester: pytest.Pytester, replay) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path = replay(traces.benchmark_rounds([10.0, 10.1, 9.9]))
    pytester.makepyfile(
        """
        def test_bench(energy_benchmark):
            energy_benchmark.pedantic(lambda: None, rounds=3, units=4, unit="item")
            energy_benchmark.quality(accuracy=0.9)
        """
    )
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-region=FR",
        "--energy-json=results.json",
    ).assert_outcomes(passed=1)
    document = json.loads((pytester.path / "results.json").read_text())
    jsonschema.validate(document, build_schema())
    broken = dict(document, schema_version=2)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, build_schema())
