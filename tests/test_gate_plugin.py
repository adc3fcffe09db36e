"""The regression gate in a pytest run: baselines, verdicts, exit status, bad input."""

from __future__ import annotations

import json
import random

import pytest
import traces
from inner_runs import XDIST_MODES

BENCH = """
import pytest

{marker}
def test_bench(energy_benchmark):
    energy_benchmark.pedantic(lambda: None, rounds={rounds}, calls_per_round=1, units=10,
                              unit="sample")
"""

QUIET = [10.0, 10.05, 9.95, 10.02, 9.98, 10.03, 9.97, 10.01, 9.99, 10.0]


def noisy(level: float, n: int, cv: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [level * (1 + rng.gauss(0, cv)) for _ in range(n)]


def gated_run(pytester, replay, rounds, *, windows=None, marker="", args=(), name="trace.json"):
    """One benchmark test of ``len(rounds)`` screening rounds; the trace also holds
    ``windows`` (default: the same rounds) for confirmation rounds the gate may ask for."""
    energies = list(rounds) + list(windows if windows is not None else rounds) * 4
    path = replay(traces.benchmark_rounds(energies), name)
    pytester.makepyfile(BENCH.format(marker=marker, rounds=len(rounds)))
    return pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-calibration=off",
        "--energy-json=results.json",
        "-W",
        "always",
        *args,
    )


def save(pytester, replay, rounds=QUIET) -> None:
    result = gated_run(pytester, replay, rounds, args=("--energy-save-baseline",), name="base.json")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["note: baseline *default.json: saved 1 tests for measured-*"])


def verdict(results) -> dict:
    return results()["tests"][0]["verdict"]


def test_unchanged_passes(pytester: pytest.Pytester, replay, results) -> None:
    save(pytester, replay)
    result = gated_run(
        pytester, replay, [10.01, 9.99, 10.02, 9.98, 10.0], args=("--energy-compare",)
    )
    assert result.ret == pytest.ExitCode.OK
    assert verdict(results)["status"] == "unchanged"
    result.stdout.fnmatch_lines(
        ["*energy regressions*", "baseline default: threshold 5%*1 unchanged"]
    )
    assert results()["gate"]["failed"] is False


def test_regression_fails_the_build_through_the_session(
    pytester: pytest.Pytester, replay, results
) -> None:
    save(pytester, replay)
    result = gated_run(
        pytester, replay, [11.5, 11.52, 11.48, 11.5, 11.51], args=("--energy-compare",)
    )
    result.assert_outcomes(passed=1)  # the test passed; the energy gate failed the build
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    v = verdict(results)
    assert v["status"] == "regression"
    assert v["ratio"] == pytest.approx(1.15, rel=0.01)
    assert v["ci_low"] > 1.01
    result.stdout.fnmatch_lines(
        [
            "*energy regressions*",
            "*regression*1.00 J/sample*1.15 J/sample*1.15x ?1.1*measured*test_bench",
            "energy gate failed: 1 regression* against baseline default",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert results()["gate"]["failed"] is True


def test_improvement_is_reported_and_passes(pytester: pytest.Pytester, replay, results) -> None:
    save(pytester, replay)
    result = gated_run(pytester, replay, [8.0, 8.02, 7.98, 8.01, 7.99], args=("--energy-compare",))
    assert result.ret == pytest.ExitCode.OK
    assert verdict(results)["status"] == "improvement"


def test_noisy_small_change_is_inconclusive(pytester: pytest.Pytester, replay, results) -> None:
    save(pytester, replay)
    rounds = [10.0, 10.8, 10.4, 9.9, 10.9]
    result = gated_run(pytester, replay, rounds, windows=rounds, args=("--energy-compare",))
    assert result.ret == pytest.ExitCode.OK
    v = verdict(results)
    assert v["status"] == "inconclusive"
    assert "threshold" in v["reason"]


def test_flagged_benchmark_gets_confirmation_rounds(
    pytester: pytest.Pytester, replay, results
) -> None:
    save(pytester, replay, noisy(10.0, 20, 0.02, seed=1))
    screen = [10.9, 11.3, 10.8, 11.2, 11.0]
    result = gated_run(
        pytester, replay, screen, windows=noisy(11.0, 15, 0.02, seed=2), args=("--energy-compare",)
    )
    test = results()["tests"][0]
    assert test["benchmark"]["confirmation_rounds"] > 0
    assert "confirm" in test["gating"]["screen"]
    roles = [r["role"] for r in test["benchmark"]["rounds"]]
    assert roles[:5] == ["candidate"] * 5
    assert set(roles[5:]) == {"confirm"}
    assert test["verdict"]["status"] == "regression"
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_marker_threshold_overrides_the_session(pytester: pytest.Pytester, replay, results) -> None:
    save(pytester, replay)
    plus7 = [10.7, 10.71, 10.69, 10.7, 10.7]
    gated_run(pytester, replay, plus7, args=("--energy-compare",))
    assert verdict(results)["status"] == "regression"
    result = gated_run(
        pytester,
        replay,
        plus7,
        marker="@pytest.mark.energy(max_regression='8%')",
        args=("--energy-compare",),
    )
    assert result.ret == pytest.ExitCode.OK
    assert verdict(results)["status"] in ("unchanged", "inconclusive")
    assert verdict(results)["threshold"] == pytest.approx(0.08)


def test_gate_false_excludes_a_test(pytester: pytest.Pytester, replay, results) -> None:
    save(pytester, replay)
    result = gated_run(
        pytester,
        replay,
        [12.0] * 5,
        marker="@pytest.mark.energy(gate=False)",
        args=("--energy-compare",),
    )
    assert result.ret == pytest.ExitCode.OK
    assert verdict(results)["status"] == "not_gated"
    assert verdict(results)["reason"] == "gate=False in the energy marker"


def test_new_test_has_no_baseline(pytester: pytest.Pytester, replay, results) -> None:
    save(pytester, replay)
    path = replay(traces.windows((5.0, 2.0)))
    pytester.makepyfile(test_other="def test_new():\n    pass\n")
    pytester.runpytest(
        "test_other.py",
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-calibration=off",
        "--energy-compare",
        "--energy-json=results.json",
    )
    assert verdict(results)["reason"] == "no baseline for this test"


def test_unstable_session_does_not_fail_unless_asked(
    pytester: pytest.Pytester, replay, results
) -> None:
    save(pytester, replay)
    # The calibration workload reads 1 J per window at the start and 1.1 J at the end:
    # a +10 % drift. The round cap leaves no room for confirmation rounds.
    path = replay(
        traces.script(
            1.0, 1.0, 1.0, "edge", *[11.5, 11.52, 11.48, 11.5, 11.51], "edge", 1.1, 1.1, 1.1
        )
    )
    pytester.makepyfile(BENCH.format(marker="", rounds=5))
    args = [
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-max-rounds=5",
        "--energy-compare",
        "--energy-json=results.json",
    ]
    result = pytester.runpytest(*args)
    assert verdict(results)["status"] == "regression"
    gate = results()["gate"]
    assert gate["unstable"] is True
    assert "drifted +10.0%" in gate["unstable_reason"]
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["session unstable: calibration workload drifted +10.0%*"])
    result = pytester.runpytest(*args, "--energy-fail-unstable")
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_suite_total_catches_many_small_regressions(pytester, replay, results) -> None:
    """Ten tests each +7 % but too noisy to prove alone: their total proves it."""
    body = "\n".join(
        f"def test_{i}(energy_benchmark):\n    energy_benchmark.pedantic(lambda: None, "
        "rounds=ROUNDS, calls_per_round=1, units=10, unit='sample')\n"
        for i in range(10)
    )
    pytester.makepyfile(body.replace("ROUNDS", "10"))
    path = replay(traces.cycle_rounds(noisy(10.0, 10, 0.03, seed=7)), "base.json")
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-calibration=off",
        "--energy-save-baseline",
    ).assert_outcomes(passed=10)
    pytester.makepyfile(body.replace("ROUNDS", "5"))
    path = replay(traces.cycle_rounds(noisy(10.7, 37, 0.03, seed=0)), "now.json")
    result = pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-calibration=off",
        "--energy-max-rounds=5",
        "--energy-compare",
        "--energy-json=results.json",
    )
    data = results()
    statuses = {t["verdict"]["status"] for t in data["tests"]}
    assert "regression" not in statuses  # no single test proves it ...
    suite = data["gate"]["suite"]
    assert suite["status"] == "regression"  # ... their total does
    assert suite["ratio"] == pytest.approx(1.07, abs=0.03)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_xdist_gates_on_the_controller_only(pytester, replay, results) -> None:
    save(pytester, replay)
    path = replay(traces.trace([0.0, 1.0], cycle=True, period=0.001))
    pytester.makepyfile(BENCH.format(marker="", rounds=5))
    result = pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "-n",
        "2",
        "--energy-calibration=off",
        "--energy-compare",
        "--energy-json=results.json",
        "-p",
        "xdist",
    )
    assert result.ret == pytest.ExitCode.OK
    v = verdict(results)
    assert v["status"] == "not_gated"
    assert v["reason"].startswith("concurrent")


def test_update_baseline_rewrites_selected_tests_with_a_reason(
    pytester: pytest.Pytester, replay
) -> None:
    save(pytester, replay)
    baseline = pytester.path / ".energy" / "baselines" / "default.json"
    result = gated_run(
        pytester,
        replay,
        [12.0] * 5,
        args=("--energy-update-baseline", "--energy-reason=bigger batches, #42"),
    )
    assert result.ret == pytest.ExitCode.OK
    entry = next(iter(json.loads(baseline.read_text())["classes"].values()))["tests"]
    (only,) = entry.values()
    assert only["reason"] == "bigger batches, #42"
    assert only["median"] == pytest.approx(1.2)


def test_saving_over_an_existing_baseline_is_refused(pytester, replay) -> None:
    save(pytester, replay)
    baseline = pytester.path / ".energy" / "baselines" / "default.json"
    before = baseline.read_bytes()
    result = gated_run(pytester, replay, [12.0] * 5, args=("--energy-save-baseline",))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*baseline not written: *--energy-update-baseline*"])
    assert baseline.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "baseline file *default.json is truncated*left untouched*"),
        ('{"pytest_energy_baseline": 99, "name": "default", "classes": {}}', "*version*99*"),
        ('{"pytest_energy_baseline": 1, "name": "default", "cla', "*truncated*"),
        ("[]", "*default.json*"),
        ("", "*default.json*"),
    ],
)
def test_bad_baseline_files_are_usage_errors_and_untouched(
    pytester: pytest.Pytester, replay, content: str, message: str
) -> None:
    folder = pytester.mkdir(".energy")
    (folder / "baselines").mkdir()
    baseline = folder / "baselines" / "default.json"
    baseline.write_text(content)
    result = gated_run(pytester, replay, QUIET[:5], args=("--energy-compare",))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --energy-compare: {message}"])
    assert len(result.stderr.lines) <= 2
    assert baseline.read_text() == content


def test_missing_baseline_name_lists_what_exists(pytester: pytest.Pytester, replay) -> None:
    save(pytester, replay)
    result = gated_run(pytester, replay, QUIET[:5], args=("--energy-compare=nightly",))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --energy-compare: no baseline named 'nightly'*default*"])


def test_baseline_from_other_hardware_is_refused(pytester: pytest.Pytester, replay) -> None:
    save(pytester, replay)
    baseline = pytester.path / ".energy" / "baselines" / "default.json"
    data = json.loads(baseline.read_text())
    (machine_class,) = data["classes"]
    stored = data["classes"].pop(machine_class)
    stored["machine"]["cpu_model"] = "Some Other CPU"
    data["classes"]["measured-some-other-cpu-12345678"] = stored
    baseline.write_text(json.dumps(data))
    before = baseline.read_bytes()
    result = gated_run(pytester, replay, QUIET[:5], args=("--energy-compare",))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --energy-compare: *measured-some-other-cpu-12345678*"])
    assert baseline.read_bytes() == before


def test_measured_run_is_never_compared_with_a_modelled_baseline(
    pytester: pytest.Pytester, replay, results
) -> None:
    path = replay(traces.benchmark_rounds(QUIET, method="modelled"), "model.json")
    pytester.makepyfile(BENCH.format(marker="", rounds=10))
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-calibration=off",
        "--energy-save-baseline",
    ).assert_outcomes(passed=1)
    result = gated_run(pytester, replay, [20.0] * 5, args=("--energy-compare",))
    assert result.ret == pytest.ExitCode.OK
    v = verdict(results)
    assert v["status"] == "not_gated"
    assert v["reason"].startswith("method differs: the baseline is modelled, this run is measured")


@pytest.mark.parametrize("mode", XDIST_MODES)
def test_history_records_every_run(pytester: pytest.Pytester, mode: list[str]) -> None:
    pytester.makepyfile("def test_one(): pass\n")
    for _ in range(2):
        pytester.runpytest("--energy", "--energy-meter=model", "-p", "xdist", *mode)
    from pytest_energy.storage.history import History

    rows = History(pytester.path / ".energy" / "history.sqlite").trend(None)
    assert len(rows) == 2
    gitignore = (pytester.path / ".energy" / ".gitignore").read_text()
    assert "history.sqlite" in gitignore


def test_history_baseline_gates_against_the_last_runs(
    pytester: pytest.Pytester, replay, results
) -> None:
    for seed in range(3):
        result = gated_run(pytester, replay, noisy(10.0, 5, 0.005, seed=seed), name=f"h{seed}.json")
        assert result.ret == 0
    result = gated_run(
        pytester, replay, [12.0, 12.01, 11.99, 12.0, 12.0], args=("--energy-history-baseline=3",)
    )
    v = verdict(results)
    assert v["status"] == "regression", v
    assert results()["gate"]["baseline"].startswith("history: last 3 runs")
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_corrupt_history_is_refused_before_tests_run(pytester: pytest.Pytester) -> None:
    folder = pytester.mkdir(".energy")
    (folder / "history.sqlite").write_text("not a database")
    pytester.makepyfile("def test_one(): pass\n")
    result = pytester.runpytest("--energy", "--energy-meter=model")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --energy-history: *"])
    assert (folder / "history.sqlite").read_text() == "not a database"
