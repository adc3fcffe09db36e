"""Normalized gating: rounds interleaved with a calibration workload, compared as ratios.

On a shared VM the CPU time of the same work jumps by half within seconds; the
model meter's joules follow it, and the ratio to a fixed workload run in the
same moments does not.
"""

from __future__ import annotations

import json

import pytest
import records
from records import sample_benchmark

from pytest_energy.config.settings import Settings
from pytest_energy.gate.baseline import from_results
from pytest_energy.gate.run_gate import RunGate
from pytest_energy.record import RunRecord
from pytest_energy.storage.baseline_file import BaselineEntry
from pytest_energy.storage.baselines import baseline_entries


def run_record(
    speed: float, work: float, calibration: float = 0.1, processes: int = 1
) -> RunRecord:
    """One benchmark whose CPU ran at ``speed`` (time per instruction) doing ``work``."""
    per_unit = [work * speed * (1 + 0.005 * i) / 2.0 for i in range(5)]
    test = sample_benchmark(
        "t.py::test_w",
        per_unit,
        unit="item",
        units_per_call=2.0,
        calls=10,
        calibration_j=calibration * speed or None,
        method="modelled",
        processes=processes,
    )
    return records.run_record(
        [test], method="modelled", hardware_class="modelled-cpu-00000000", gpus=[]
    )


def test_normalized_samples_are_work_over_calibration() -> None:
    (test,) = run_record(speed=1.5, work=2.0).tests
    assert test.benchmark is not None
    values = test.benchmark.normalized_samples()
    # J per unit = 1.5 * 2 / 2 units = 1.5; calibration J per call = 0.15: ratio 10.
    assert values[0] == pytest.approx(10.0)
    assert len(values) == 5


def test_baseline_entries_store_the_ratios_and_read_them_back() -> None:
    entry = baseline_entries(run_record(1.0, 2.0))["t.py::test_w"]
    assert entry.normalized[0] == pytest.approx(10.0)
    again = BaselineEntry.from_dict(json.loads(json.dumps(entry.to_dict())), "entry")
    assert again.normalized == pytest.approx(entry.normalized, rel=1e-5)


def test_a_slower_cpu_is_not_a_regression_once_normalized() -> None:
    baseline, slower = run_record(speed=1.0, work=2.0, processes=3), run_record(speed=1.6, work=2.0)
    gate = RunGate(Settings(), from_results(baseline, slower))
    record, failed = gate.decide(slower, None)
    verdict = record.tests[0].verdict
    assert verdict is not None
    assert verdict.status == "unchanged"
    assert verdict.kind == "normalized"
    assert "calibration workload" in verdict.reason
    # Shown in joules per unit, which did rise 60 %: the machine, not the code.
    assert verdict.current == pytest.approx(1.6 * verdict.baseline, rel=0.02)
    assert failed is False


def test_more_work_is_a_regression_whatever_the_cpu_speed() -> None:
    baseline, heavier = (
        run_record(speed=1.0, work=2.0, processes=3),
        run_record(speed=0.7, work=2.4),
    )
    gate = RunGate(Settings(), from_results(baseline, heavier))
    record, failed = gate.decide(heavier, None)
    verdict = record.tests[0].verdict
    assert verdict is not None
    assert verdict.status == "regression"
    assert verdict.ratio == pytest.approx(1.2, rel=0.01)
    assert failed is True


def test_without_ratios_on_both_sides_joules_are_compared() -> None:
    baseline = run_record(speed=1.0, work=2.0, processes=3)
    raw = run_record(speed=1.6, work=2.0, calibration=0.0)  # no calibration recorded
    gate = RunGate(Settings(), from_results(baseline, raw))
    record, _ = gate.decide(raw, None)
    verdict = record.tests[0].verdict
    assert verdict is not None
    assert verdict.kind == "baseline"
    assert verdict.status == "regression"  # the raw joules did rise 60 %


WORKLOAD = """
import os

WORK = int(os.environ.get("WORK", "100"))

def work(units):
    total = 0
    for i in range(units * WORK):
        total += i * i % 7
    return total

def test_workload(energy_benchmark):
    energy_benchmark(work, 50, units=50, unit="item")
"""


def test_model_meter_interleaves_calibration_and_gates_on_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live model meter, end to end: a real workload, a real 50 % regression.

    It runs on this machine's real CPU time, so a loaded CI runner adds
    round-to-round noise: the instability limit is loosened and both sides run
    10 rounds, so the verdict depends on the planted 1.5x, not on the load.
    """
    pytester.makepyfile(WORKLOAD)
    args = (
        "--energy",
        "--energy-meter=model",
        "--energy-json=results.json",
        "-p",
        "no:xdist",
        "--energy-rounds=10",
        "--energy-cv-limit=30%",
    )
    pytester.runpytest_subprocess(*args, "--energy-save-baseline").assert_outcomes(passed=1)
    bench = json.loads((pytester.path / "results.json").read_text())["tests"][0]["benchmark"]
    assert all(r["calibration_j"] > 0 for r in bench["rounds"])
    assert bench["normalized"]["n"] == 10

    monkeypatch.setenv("WORK", "150")
    result = pytester.runpytest_subprocess(*args, "--energy-compare")
    verdict = json.loads((pytester.path / "results.json").read_text())["tests"][0]["verdict"]
    assert verdict["kind"] == "normalized"
    assert verdict["status"] == "regression", verdict
    assert verdict["ratio"] == pytest.approx(1.5, rel=0.15)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_normalize_off_keeps_plain_rounds(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(WORKLOAD)
    pytester.runpytest(
        "--energy", "--energy-meter=model", "--energy-normalize=off", "--energy-json=results.json"
    ).assert_outcomes(passed=1)
    bench = json.loads((pytester.path / "results.json").read_text())["tests"][0]["benchmark"]
    assert bench["normalized"] is None
    assert all(r["calibration_j"] is None for r in bench["rounds"])
