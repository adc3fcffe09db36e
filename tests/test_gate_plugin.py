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

QUIET = [10.0, 10.05, 9.95, 10.02, 9.98]
#: Each process carries its own offset, which more rounds cannot shrink (docs/gate.md).
OFFSETS = (1.0, 1.004, 0.996)


def noisy(level: float, n: int, cv: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [level * (1 + rng.gauss(0, cv)) for _ in range(n)]


def scaled(rounds: list[float], factor: float) -> list[float]:
    return [r * factor for r in rounds]


def process_traces(pytester, replay, name: str, processes: list[list[float]], **kw) -> str:
    """One trace per process (``name-0.json`` is this session's, ``name-1.json`` ... the
    fresh processes'); returns the replay meter spec that picks each process's own."""
    for index, rounds in enumerate(processes):
        replay(traces.benchmark_rounds(rounds, **kw), f"{name}-{index}.json")
    return f"--energy-meter=replay:{pytester.path / name}-{{process}}.json"


def gated_run(pytester, replay, rounds, *, fresh=None, marker="", args=(), name="now"):
    """One benchmark test measuring ``rounds`` in this session; ``fresh`` are the rounds of
    the fresh processes the gate may start (default: three more like ``rounds``)."""
    processes = [list(rounds), *(fresh if fresh is not None else [list(rounds)] * 3)]
    pytester.makepyfile(BENCH.format(marker=marker, rounds=len(rounds)))
    return pytester.runpytest(
        "--energy",
        process_traces(pytester, replay, name, processes),
        "--energy-idle-seconds=0",
        "--energy-calibration=off",
        "--energy-json=results.json",
        "-W",
        "always",
        *args,
    )


def save(pytester, replay, rounds=QUIET, offsets=OFFSETS) -> None:
    """A baseline from three processes, each with its own small offset."""
    processes = [scaled(rounds, offset) for offset in offsets]
    result = gated_run(
        pytester,
        replay,
        processes[0],
        fresh=processes[1:],
        args=("--energy-save-baseline",),
        name="base",
    )
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["note: baseline *default.json: saved 1 tests for measured-*"])


def verdict(results) -> dict:
    return results()["tests"][0]["verdict"]


def test_a_baseline_is_saved_from_several_processes(pytester: pytest.Pytester, replay) -> None:
    save(pytester, replay)
    baseline = json.loads((pytester.path / ".energy" / "baselines" / "default.json").read_text())
    (entry,) = next(iter(baseline["classes"].values()))["tests"].values()
    assert entry["processes"] == [0] * 5 + [1] * 5 + [2] * 5
    assert entry["samples"][5] == pytest.approx(1.004)  # process 1's first round, J/sample


def test_unchanged_passes(pytester: pytest.Pytester, replay, results) -> None:
    save(pytester, replay)
    result = gated_run(
        pytester, replay, [10.01, 9.99, 10.02, 9.98, 10.0], args=("--energy-compare",)
    )
    assert result.ret == pytest.ExitCode.OK
    v = verdict(results)
    assert v["status"] == "unchanged", v
    assert v["reason"].endswith("baseline 3 processes vs 1 process of this session")
    result.stdout.fnmatch_lines(
        ["*energy regressions*", "baseline default: threshold 5%*1 unchanged*"]
    )
    assert results()["gate"]["failed"] is False


def test_regression_fails_the_build_through_the_session(
    pytester: pytest.Pytester, replay, results
) -> None:
    save(pytester, replay)
    now = scaled(QUIET, 1.15)
    fresh = [scaled(now, offset) for offset in OFFSETS]
    result = gated_run(pytester, replay, now, fresh=fresh, args=("--energy-compare",))
    result.assert_outcomes(passed=1)  # the test passed; the energy gate failed the build
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    v = verdict(results)
    assert v["status"] == "regression"
    assert v["ratio"] == pytest.approx(1.15, rel=0.01)
    assert v["ci_low"] > 1.01
    assert v["reason"].endswith("baseline 3 processes vs 3 fresh processes")
    result.stdout.fnmatch_lines(
        [
            "energy: measuring 1 benchmark(s) again in fresh process 1 of 3*",
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
    # Processes that disagree by a few percent cannot tell +4 % from nothing.
    save(pytester, replay, offsets=(1.0, 1.03, 0.97))
    now = scaled(QUIET, 1.04)
    fresh = [scaled(now, offset) for offset in (0.98, 1.05, 1.01)]
    result = gated_run(pytester, replay, now, fresh=fresh, args=("--energy-compare",))
    assert result.ret == pytest.ExitCode.OK
    v = verdict(results)
    assert v["status"] == "inconclusive", v
    assert "threshold" in v["reason"]


def test_a_flagged_benchmark_is_decided_on_fresh_processes(
    pytester: pytest.Pytester, replay, results
) -> None:
    save(pytester, replay)
    screen = scaled(QUIET, 1.10)
    fresh = [scaled(QUIET, 1.10 * offset) for offset in OFFSETS]
    result = gated_run(pytester, replay, screen, fresh=fresh, args=("--energy-compare",))
    test = results()["tests"][0]
    assert "confirm in fresh processes" in test["gating"]["screen"]
    rounds = test["benchmark"]["rounds"]
    assert [(r["role"], r["process"]) for r in rounds[:5]] == [("candidate", 0)] * 5
    assert {(r["role"], r["process"]) for r in rounds[5:]} == {
        ("confirm", 1),
        ("confirm", 2),
        ("confirm", 3),
    }
    assert test["verdict"]["status"] == "regression"
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_an_unflagged_benchmark_starts_no_process(
    pytester: pytest.Pytester, replay, results
) -> None:
    save(pytester, replay)
    result = gated_run(pytester, replay, QUIET, args=("--energy-compare",))
    assert "fresh process" not in result.stdout.str()
    assert "not flagged" in results()["tests"][0]["gating"]["screen"]


def test_marker_threshold_overrides_the_session(pytester: pytest.Pytester, replay, results) -> None:
    save(pytester, replay)
    plus7 = scaled(QUIET, 1.07)
    fresh = [scaled(plus7, offset) for offset in OFFSETS]
    gated_run(pytester, replay, plus7, fresh=fresh, args=("--energy-compare",))
    assert verdict(results)["status"] == "regression"
    result = gated_run(
        pytester,
        replay,
        plus7,
        fresh=fresh,
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
    path = replay(traces.windows((5.0, 2.0)), "plain.json")
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


def drifting_run(pytester, replay, level: float, *args: str):
    """A CPU-package meter whose drift check reads about 1 J per window at the start and
    1.1 J at the end (+10 %), around a benchmark at ``level`` x the baseline's."""
    now = scaled(QUIET, level)
    # Five drift windows each side, with a little noise, so a +10 % shift is significant.
    start = (1.0, 1.01, 0.99, 1.005, 0.995)
    end = tuple(1.1 * joules for joules in start)
    session = traces.script("edge", *start, *now, "edge", *end, meter="rapl")
    replay(session, "drift-0.json")
    for index, offset in enumerate(OFFSETS, start=1):
        fresh = traces.script("edge", *scaled(now, offset), "edge", meter="rapl")
        replay(fresh, f"drift-{index}.json")
    pytester.makepyfile(BENCH.format(marker="", rounds=5))
    return pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{pytester.path}/drift-{{process}}.json",
        "--energy-idle-seconds=0",
        "--energy-compare",
        "--energy-json=results.json",
        *args,
    )


def save_on_rapl(pytester, replay) -> None:
    for index, offset in enumerate(OFFSETS):
        replay(
            traces.script("edge", *scaled(QUIET, offset), "edge", meter="rapl"), f"b-{index}.json"
        )
    pytester.makepyfile(BENCH.format(marker="", rounds=5))
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{pytester.path}/b-{{process}}.json",
        "--energy-idle-seconds=0",
        "--energy-save-baseline",
    ).assert_outcomes(passed=1)


def test_an_unstable_session_does_not_fail_on_what_the_drift_explains(
    pytester: pytest.Pytester, replay, results
) -> None:
    save_on_rapl(pytester, replay)
    result = drifting_run(pytester, replay, 1.15)
    assert verdict(results)["status"] == "regression"
    gate = results()["gate"]
    assert gate["unstable"] is True
    assert "drifted +10.0%" in gate["unstable_reason"]
    assert results()["session"]["calibration"]["workload"] == "a fixed CPU loop"
    assert result.ret == pytest.ExitCode.OK
    assert gate["decision"].startswith("the build does not fail: 1 regression within")
    result.stdout.fnmatch_lines(["session unstable: calibration workload drifted +10.0%*"])
    result = drifting_run(pytester, replay, 1.15, "--energy-fail-unstable")
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_an_unstable_session_still_fails_on_a_regression_beyond_the_drift(
    pytester: pytest.Pytester, replay, results
) -> None:
    save_on_rapl(pytester, replay)
    result = drifting_run(pytester, replay, 1.40)
    gate = results()["gate"]
    assert gate["unstable"] is True
    assert verdict(results)["ci_low"] > 1.05 * 1.10
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "even allowing for the measured drift" in gate["decision"]


def test_the_suite_total_is_judged_per_process(pytester, replay, results) -> None:
    """Ten tests, all +7 %: their total is +7 %, and every baseline process gives one total."""
    body = "\n".join(
        f"def test_{i}(energy_benchmark):\n    energy_benchmark.pedantic(lambda: None, "
        "rounds=5, calls_per_round=1, units=10, unit='sample')\n"
        for i in range(10)
    )
    pytester.makepyfile(body)
    for index, offset in enumerate(OFFSETS):
        replay(
            traces.cycle_rounds(scaled(noisy(10.0, 10, 0.01, seed=7), offset)), f"b-{index}.json"
        )
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{pytester.path}/b-{{process}}.json",
        "--energy-idle-seconds=0",
        "--energy-calibration=off",
        "--energy-save-baseline",
    ).assert_outcomes(passed=10)
    for index, offset in enumerate(OFFSETS * 2):
        rounds = scaled(noisy(10.7, 10, 0.01, seed=index), offset)
        replay(traces.cycle_rounds(rounds), f"n-{index}.json")
    result = pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{pytester.path}/n-{{process}}.json",
        "--energy-idle-seconds=0",
        "--energy-calibration=off",
        "--energy-compare",
        "--energy-json=results.json",
    )
    suite = results()["gate"]["suite"]
    assert suite["tests"] == 10
    assert suite["ratio"] == pytest.approx(1.07, abs=0.02)
    assert suite["status"] in ("regression", "inconclusive")
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
    # Refused before the first test, so no minutes are spent measuring a run that cannot be kept.
    result.stderr.fnmatch_lines(
        [
            "ERROR: --energy-save-baseline: baseline *default.json already has entries"
            " for 1 of the selected tests*--energy-update-baseline*"
        ]
    )
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
    result = gated_run(pytester, replay, QUIET, args=("--energy-compare",))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --energy-compare: {message}"])
    assert len(result.stderr.lines) <= 2
    assert baseline.read_text() == content


def test_a_missing_baseline_is_not_gated_and_says_what_exists(
    pytester: pytest.Pytester, replay, results
) -> None:
    save(pytester, replay)
    result = gated_run(pytester, replay, QUIET, args=("--energy-compare=nightly",))
    assert result.ret == pytest.ExitCode.OK
    reason = verdict(results)["reason"]
    assert reason.startswith("no baseline named 'nightly'")
    assert "default" in reason
    result.stdout.fnmatch_lines(["*1 not gated*"])


def test_a_baseline_from_other_hardware_is_not_gated_and_untouched(
    pytester: pytest.Pytester, replay, results
) -> None:
    save(pytester, replay)
    baseline = pytester.path / ".energy" / "baselines" / "default.json"
    data = json.loads(baseline.read_text())
    (machine_class,) = data["classes"]
    stored = data["classes"].pop(machine_class)
    stored["machine"]["cpu_model"] = "Some Other CPU"
    data["classes"]["measured-some-other-cpu-12345678"] = stored
    baseline.write_text(json.dumps(data))
    before = baseline.read_bytes()
    # A PR job on another CPU model of the same runner label: normal in CI, not a usage error.
    result = gated_run(pytester, replay, scaled(QUIET, 1.5), args=("--energy-compare",))
    assert result.ret == pytest.ExitCode.OK
    v = verdict(results)
    assert v["status"] == "not_gated"
    assert v["reason"].startswith("baseline from other hardware:")
    assert "measured-some-other-cpu-12345678" in v["reason"]
    assert baseline.read_bytes() == before


def test_measured_run_is_never_compared_with_a_modelled_baseline(
    pytester: pytest.Pytester, replay, results
) -> None:
    path = replay(traces.benchmark_rounds(QUIET, method="modelled"), "model.json")
    pytester.makepyfile(BENCH.format(marker="", rounds=5))
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
        result = gated_run(pytester, replay, noisy(10.0, 5, 0.005, seed=seed), name=f"h{seed}")
        assert result.ret == 0
    now = [12.0, 12.01, 11.99, 12.0, 12.0]
    result = gated_run(
        pytester,
        replay,
        now,
        fresh=[scaled(now, offset) for offset in OFFSETS],
        args=("--energy-history-baseline=3",),
    )
    v = verdict(results)
    assert v["status"] == "regression", v
    assert v["reason"].endswith("baseline 3 processes vs 3 fresh processes")
    assert results()["gate"]["baseline"].startswith("history: last 3 runs")
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_history_baselines_leave_out_runs_measured_under_xdist(
    pytester: pytest.Pytester, replay, results
) -> None:
    pytester.makepyfile(BENCH.format(marker="", rounds=5))
    path = replay(traces.trace([0.0, 1.0], cycle=True, period=0.001), "x.json")
    for _ in range(2):
        pytester.runpytest(
            "--energy", f"--energy-meter=replay:{path}", "-n", "2", "-p", "xdist"
        ).assert_outcomes(passed=1)
    gated_run(pytester, replay, QUIET, args=("--energy-history-baseline=2",))
    assert verdict(results)["reason"] == "no baseline for this test"


def test_saving_a_baseline_under_xdist_is_refused_before_tests_run(
    pytester: pytest.Pytester, replay
) -> None:
    pytester.makepyfile(BENCH.format(marker="", rounds=5))
    path = replay(traces.trace([0.0, 1.0], cycle=True, period=0.001), "x.json")
    result = pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "-n",
        "2",
        "-p",
        "xdist",
        "--energy-save-baseline",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --energy-save-baseline / --energy-update-baseline: refused*"]
    )
    assert not (pytester.path / ".energy" / "baselines").exists()


def test_corrupt_history_is_refused_before_tests_run(pytester: pytest.Pytester) -> None:
    folder = pytester.mkdir(".energy")
    (folder / "history.sqlite").write_text("not a database")
    pytester.makepyfile("def test_one(): pass\n")
    result = pytester.runpytest("--energy", "--energy-meter=model")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --energy-history: *"])
    assert (folder / "history.sqlite").read_text() == "not a database"


def test_a_benchmark_too_noisy_to_gate_says_so_everywhere(
    pytester: pytest.Pytester, replay, results
) -> None:
    save(pytester, replay)
    wild = [10.0, 13.0, 8.0, 12.5, 9.0]  # CV ~20 %, over the 5 % limit
    result = gated_run(
        pytester, replay, wild, args=("--energy-compare", "--energy-markdown=summary.md")
    )
    assert result.ret == pytest.ExitCode.OK
    v = verdict(results)
    assert v["status"] == "not_gated"
    assert v["reason"].startswith("unstable (CV ")
    assert v["reason"].endswith("% over the limit)")
    result.stdout.fnmatch_lines(["not gated: 1 x unstable (CV *% over the limit)"])
    summary = (pytester.path / "summary.md").read_text()
    assert summary.startswith("### ⚪ Energy not gated\\: 0 of 1 test gated (unstable (CV ")
    assert "Not gated: 1 × unstable (CV " in summary
