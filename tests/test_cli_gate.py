"""`pytest-energy compare` and `pytest-energy history`: the gate on results files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import traces

from pytest_energy.cli import main

BENCH = """
def test_bench(energy_benchmark):
    energy_benchmark.pedantic(lambda: None, rounds=10, units=10, unit="sample")
"""


#: Each process of a run carries its own small offset.
OFFSETS = (1.0, 1.004, 0.996)


def record(
    pytester: pytest.Pytester, replay, rounds: list[float], name: str, *, baseline: bool = False
) -> Path:
    """A results file; ``baseline=True`` saves it as a baseline, measured in three processes."""
    for index, offset in enumerate(OFFSETS):
        replay(traces.benchmark_rounds([r * offset for r in rounds]), f"{name}-{index}.trace")
    pytester.makepyfile(BENCH)
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{pytester.path / name}-{{process}}.trace",
        "--energy-idle-seconds=0",
        f"--energy-json={name}.json",
        *(["--energy-save-baseline", f"--energy-dir={name}-energy"] if baseline else []),
    ).assert_outcomes(passed=1)
    return pytester.path / f"{name}.json"


def test_compare_gives_the_in_run_verdicts(
    pytester: pytest.Pytester, replay, capsys: pytest.CaptureFixture[str]
) -> None:
    base = record(pytester, replay, [10.0, 10.05, 9.95, 10.02, 9.98] * 2, "base", baseline=True)
    same = record(pytester, replay, [10.01, 9.99, 10.02, 9.98, 10.0] * 2, "same")
    hot = record(pytester, replay, [11.5, 11.52, 11.48, 11.5, 11.51] * 2, "hot")
    assert main(["compare", str(base), str(same)]) == 0
    assert "1 unchanged" in capsys.readouterr().out
    out_path = pytester.path / "compared.json"
    assert main(["compare", str(base), str(hot), "-o", str(out_path)]) == 1
    printed = capsys.readouterr().out
    assert "regression" in printed
    assert "1.15x" in printed
    compared = json.loads(out_path.read_text())
    assert compared["tests"][0]["verdict"]["status"] == "regression"
    assert compared["gate"]["failed"] is True
    # The written file feeds the other commands.
    assert main(["annotate", str(out_path)]) == 0
    assert "::error" in capsys.readouterr().out


def test_compare_does_not_gate_other_hardware(
    pytester: pytest.Pytester, replay, capsys: pytest.CaptureFixture[str]
) -> None:
    base = record(pytester, replay, [10.0] * 10, "base", baseline=True)
    head = record(pytester, replay, [20.0] * 10, "head")
    data = json.loads(head.read_text())
    data["session"]["machine"]["cpu_model"] = "Another CPU"
    data["session"]["machine"]["hardware_class"] = "measured-another-cpu-00000000"
    head.write_text(json.dumps(data))
    out_path = pytester.path / "compared.json"
    assert main(["compare", str(base), str(head), "-o", str(out_path)]) == 0
    assert "1 not gated" in capsys.readouterr().out
    reason = json.loads(out_path.read_text())["tests"][0]["verdict"]["reason"]
    assert reason.startswith("baseline from other hardware: the baseline ran on ")


def test_compare_never_mixes_methods(
    pytester: pytest.Pytester, replay, capsys: pytest.CaptureFixture[str]
) -> None:
    base = record(pytester, replay, [10.0] * 10, "base")
    head = record(pytester, replay, [20.0] * 10, "head")
    data = json.loads(base.read_text())
    data["session"]["machine"]["method"] = "modelled"
    data["session"]["machine"]["hardware_class"] = "modelled-x-00000000"
    base.write_text(json.dumps(data))
    assert main(["compare", str(base), str(head)]) == 0
    assert "1 not gated" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["missing.json", "corrupt.json"])
def test_compare_bad_files_are_one_line(
    pytester: pytest.Pytester, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (pytester.path / "corrupt.json").write_text("{")
    assert main(["compare", str(pytester.path / bad), str(pytester.path / bad)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_compare_bad_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "a.json", "b.json", "--fail", "5"]) == 2
    assert "expected a percentage such as 5%" in capsys.readouterr().err


def test_history_prints_the_trend(
    pytester: pytest.Pytester, replay, capsys: pytest.CaptureFixture[str]
) -> None:
    for level in (10.0, 10.0, 12.0):
        record(pytester, replay, [level] * 10, f"run{level}")
    history = pytester.path / ".energy" / "history.sqlite"
    assert main(["history", "--history", str(history)]) == 0
    out = capsys.readouterr().out
    assert "test_bench" in out
    assert "1.20 J/sample" in out or "1.2" in out
    assert main(["history", "nope::test", "--history", str(history)]) == 2
    assert main(["history", "--history", str(pytester.path / "absent.sqlite")]) == 2


def test_module_entry_point_runs(pytester: pytest.Pytester) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_energy", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("pytest-energy ")
