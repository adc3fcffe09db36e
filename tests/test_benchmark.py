"""The energy_benchmark fixture: calibrated rounds, J per unit, budgets."""

from __future__ import annotations

import functools
import math

import pytest
import traces
from inner_runs import by_name

from pytest_energy.measure.benchmark import calls_for_window, target_window
from pytest_energy.measure.repeat import call_times

PEDANTIC = """
import pytest

def work(x):
    return x * 2

{marker}
def test_bench(energy_benchmark):
    result = energy_benchmark.pedantic(work, (21,), rounds={rounds}, calls_per_round=10,
                                       units=100, unit="sample")
    assert result == 42
"""


def run_pedantic(pytester, replay, round_joules, *, marker="", method="measured", args=()):
    path = replay(traces.benchmark_rounds(round_joules, method=method))
    pytester.makepyfile(PEDANTIC.format(marker=marker, rounds=len(round_joules)))
    # -W always: the outer suite turns warnings into errors; the inner run must not.
    return pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-json=results.json",
        "-W",
        "always",
        *args,
    )


def test_rounds_are_sized_to_the_meter() -> None:
    # 20 counter periods, and never under 0.1 s: 2 s for NVML's ~100 ms ticks.
    assert target_window(0.1, None) == pytest.approx(2.0)
    assert target_window(0.001, None) == pytest.approx(0.1)
    assert target_window(0.01, None) == pytest.approx(0.2)
    assert target_window(0.1, 0.5) == 0.5  # --energy-window overrides
    assert calls_for_window(0.001, 2.0) == 2000
    assert calls_for_window(5.0, 2.0) == 1
    assert calls_for_window(0.0, 2.0) == 10_000_000


def test_calibration_follows_the_trace_period(pytester: pytest.Pytester, replay, results) -> None:
    path = replay(traces.trace([0.0, 1.0], period=0.02, cycle=True))
    pytester.makepyfile(
        """
        import time

        def nap():
            time.sleep(0.01)
            return "done"

        def test_nap(energy_benchmark):
            assert energy_benchmark(nap) == "done"
        """
    )
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-json=results.json",
    ).assert_outcomes(passed=1)
    bench = results()["tests"][0]["benchmark"]
    assert bench["target_window_s"] == pytest.approx(0.4)  # 20 x 0.02 s
    # Each call sleeps >= 10 ms, so at most ~40 calls fill a 0.4-s round.
    assert 1 <= bench["calls_per_round"] <= 41
    assert len(bench["rounds"]) == 5
    assert bench["warmup_calls"] == 1


def test_joules_per_unit_and_interval_on_a_known_trace(
    pytester: pytest.Pytester, replay, results
) -> None:
    result = run_pedantic(pytester, replay, [10.0, 11.0, 9.0, 10.0, 10.0])
    result.assert_outcomes(passed=1)
    bench = results()["tests"][0]["benchmark"]
    assert [r["total_j"] for r in bench["rounds"]] == pytest.approx([10, 11, 9, 10, 10])
    assert bench["calls_per_round"] == 10
    assert bench["pedantic"] is True
    per_unit = bench["per_unit"]
    assert per_unit["n"] == 5
    assert per_unit["median"] == pytest.approx(0.010)
    assert per_unit["mean"] == pytest.approx(0.010)
    stdev = math.sqrt(2e-6 / 4)
    assert per_unit["stdev"] == pytest.approx(stdev)
    half = 2.776445 * stdev / math.sqrt(5)  # t(0.975, 4 df)
    assert per_unit["ci_low"] == pytest.approx(0.010 - half, rel=1e-5)
    assert per_unit["ci_high"] == pytest.approx(0.010 + half, rel=1e-5)
    assert bench["per_call"]["median"] == pytest.approx(1.0)
    assert bench["unit"] == "sample"
    assert bench["unstable"] is True  # cv 7.1 % > 5 %
    result.stdout.fnmatch_lines(["*10.0 mJ/sample*+-8.8%*7.1%*5x10*measured*unstable*test_bench"])


def test_steady_rounds_are_not_unstable(pytester: pytest.Pytester, replay, results) -> None:
    run_pedantic(pytester, replay, [10.0, 10.1, 9.9, 10.0, 10.0]).assert_outcomes(passed=1)
    assert results()["tests"][0]["benchmark"]["unstable"] is False


def test_budget_fails_a_measured_test_with_one_readable_line(
    pytester: pytest.Pytester, replay
) -> None:
    result = run_pedantic(
        pytester,
        replay,
        [10.0, 10.0, 10.0, 10.0, 10.0],
        marker="@pytest.mark.energy(max_joules_per_unit=0.005)",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "energy budget exceeded: J per sample 0.01 J ?95% CI 0.01, 0.01? > "
            "max_joules_per_unit=0.005 J (measured by nvml)"
        ]
    )


def test_budget_within_limits_passes(pytester: pytest.Pytester, replay, results) -> None:
    run_pedantic(
        pytester,
        replay,
        [10.0] * 5,
        marker="@pytest.mark.energy(max_joules_per_unit=0.02, max_joules=2.0, max_watts=20)",
    ).assert_outcomes(passed=1)
    notes = results()["tests"][0]["budget"]
    assert {n["budget"] for n in notes} == {"max_joules_per_unit", "max_joules", "max_watts"}
    assert not any(n["exceeded"] for n in notes)


def test_modelled_budget_warns_by_default(pytester: pytest.Pytester, replay) -> None:
    result = run_pedantic(
        pytester,
        replay,
        [10.0] * 5,
        method="modelled",
        marker="@pytest.mark.energy(max_joules=0.5)",
    )
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*EnergyBudgetWarning: energy budget exceeded: J per call 1 J * > max_joules=0.5 J "
            "(modelled by model); the number is modelled, so it warns*"
        ]
    )


@pytest.mark.parametrize(
    ("marker", "args", "outcome"),
    [
        ("@pytest.mark.energy(max_joules=0.5, on_modelled='fail')", (), {"failed": 1}),
        ("@pytest.mark.energy(max_joules=0.5, on_modelled='ignore')", (), {"passed": 1}),
        ("@pytest.mark.energy(max_joules=0.5)", ("--energy-on-modelled=fail",), {"failed": 1}),
        (
            "@pytest.mark.energy(max_joules=0.5, on_modelled='warn')",
            ("--energy-on-modelled=fail",),
            {"passed": 1, "warnings": 1},
        ),
    ],
)
def test_on_modelled_is_configurable(pytester, replay, marker, args, outcome) -> None:
    result = run_pedantic(pytester, replay, [10.0] * 5, method="modelled", marker=marker, args=args)
    result.assert_outcomes(**outcome)
    if "failed" in outcome:
        result.stdout.fnmatch_lines(
            ["*energy budget exceeded*(modelled by model); the number is modelled"]
        )


def test_module_marker_applies_to_every_test(pytester: pytest.Pytester, replay, results) -> None:
    path = replay(traces.trace([0.0, 1.0], period=0.001, cycle=True))
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.energy(rounds=3)

        def test_module_rounds(energy_benchmark):
            energy_benchmark(lambda: None)

        @pytest.mark.energy(rounds=2)
        def test_own_rounds(energy_benchmark):
            energy_benchmark(lambda: None)
        """
    )
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-window=0.01",
        "--energy-json=results.json",
    ).assert_outcomes(passed=2)
    tests = by_name(results())
    assert len(tests["test_module_rounds"]["benchmark"]["rounds"]) == 3
    assert len(tests["test_own_rounds"]["benchmark"]["rounds"]) == 2


def test_markers_are_read_closest_first_for_every_test_of_a_class(
    pytester: pytest.Pytester, replay, results
) -> None:
    # A parent's markers are read once for all its tests (a cache per collection):
    # every test of the class must still see them, and its own must still win.
    path = replay(traces.trace([0.0, 1.0], period=0.001, cycle=True))
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.energy(rounds=3)

        @pytest.mark.energy(rounds=4)
        class TestGroup:
            def test_class_rounds(self, energy_benchmark):
                energy_benchmark(lambda: None)

            def test_class_rounds_again(self, energy_benchmark):
                energy_benchmark(lambda: None)

            @pytest.mark.energy(rounds=2)
            def test_own_rounds(self, energy_benchmark):
                energy_benchmark(lambda: None)

            @pytest.mark.parametrize(
                "n", [1, pytest.param(2, marks=pytest.mark.energy(rounds=5))]
            )
            def test_param(self, energy_benchmark, n):
                energy_benchmark(lambda: None)

        def test_module_rounds(energy_benchmark):
            energy_benchmark(lambda: None)
        """
    )
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-window=0.01",
        "--energy-json=results.json",
    ).assert_outcomes(passed=6)
    rounds = {
        t["nodeid"].split("::", 1)[1]: len(t["benchmark"]["rounds"]) for t in results()["tests"]
    }
    assert rounds == {
        "TestGroup::test_class_rounds": 4,
        "TestGroup::test_class_rounds_again": 4,
        "TestGroup::test_own_rounds": 2,
        "TestGroup::test_param[1]": 4,
        "TestGroup::test_param[2]": 5,
        "test_module_rounds": 3,
    }


def test_a_raising_function_propagates_and_leaves_no_window_open(
    pytester: pytest.Pytester, replay, results
) -> None:
    path = replay(traces.trace([0.0, 1.0], period=0.001, cycle=True))
    pytester.makepyfile(
        """
        calls = []

        def flaky():
            calls.append(1)
            if len(calls) == 3:
                raise ValueError("boom on call 3")

        def test_raises(energy_benchmark):
            energy_benchmark.pedantic(flaky, rounds=5, calls_per_round=1)

        def test_after(energy_benchmark):
            energy_benchmark.pedantic(lambda: None, rounds=2)
        """
    )
    result = pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-json=results.json",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*ValueError: boom on call 3"])
    tests = by_name(results())
    assert tests["test_raises"]["benchmark"] is None
    assert tests["test_raises"]["outcome"] == "failed"
    assert len(tests["test_after"]["benchmark"]["rounds"]) == 2


def test_without_energy_the_function_runs_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        calls = []

        def test_once(energy_benchmark):
            assert energy_benchmark(calls.append, 1, units=5) is None
            energy_benchmark.quality(accuracy=0.9)
            assert calls == [1]
            assert energy_benchmark.result is None
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.runpytest(
        "--energy", "--energy-meter=model", "--energy-benchmark-disable"
    ).assert_outcomes(passed=1)


def test_time_budget_stops_rounds(pytester: pytest.Pytester, replay, results) -> None:
    path = replay(traces.trace([0.0, 1.0], period=0.001, cycle=True))
    pytester.makepyfile(
        """
        import time

        def test_slow(energy_benchmark):
            energy_benchmark(time.sleep, 0.03)
        """
    )
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-window=0.03",
        "--energy-max-time=0.01",
        "--energy-json=results.json",
    ).assert_outcomes(passed=1)
    assert len(results()["tests"][0]["benchmark"]["rounds"]) == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("energy_benchmark(f); energy_benchmark(f)", "*can benchmark one function per test"),
        ("energy_benchmark(f, units=0)", "*units must be a positive number, got 0"),
        ("energy_benchmark(f, unit='')", "*unit must be a non-empty string*"),
        (
            "energy_benchmark.quality(accuracy='high')",
            "*quality 'accuracy' must be a finite number*",
        ),
    ],
)
def test_misuse_is_a_clear_error(pytester: pytest.Pytester, call: str, message: str) -> None:
    pytester.makepyfile(f"def f(): pass\n\ndef test_x(energy_benchmark):\n    {call}\n")
    result = pytester.runpytest("--energy", "--energy-meter=model", "--energy-window=0.01")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([message])


def test_benchmark_with_the_model_meter_end_to_end(pytester: pytest.Pytester, results) -> None:
    pytester.makepyfile(
        """
        def squares(n):
            return sum(i * i for i in range(n))

        def test_squares(energy_benchmark):
            assert energy_benchmark(squares, 2000, units=2000, unit="item") > 0
        """
    )
    result = pytester.runpytest("--energy", "--energy-meter=model", "--energy-json=results.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*J/item*5x*modelled*test_squares"])
    bench = results()["tests"][0]["benchmark"]
    assert bench["per_unit"]["median"] > 0
    assert all(r["total_j"] > 0 for r in bench["rounds"])
    assert results()["tests"][0]["carbon"]["grams_per_unit"] > 0


def test_long_benchmarks_announce_themselves_only_on_a_terminal(
    pytester: pytest.Pytester, replay, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = replay(traces.trace([0.0, 1.0], period=0.001, cycle=True))
    pytester.makepyfile(
        """
        def test_long(energy_benchmark, request):
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            reporter.isatty = True  # pretend: an interactive terminal
            energy_benchmark.pedantic(lambda: None, rounds=4, units=1)
        """
    )
    args = (
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-window=1",
    )
    result = pytester.runpytest_subprocess(*args)
    result.stdout.fnmatch_lines(["energy: measuring *::test_long for about 4 s*"])
    result = pytester.runpytest_subprocess(*args, "-q")
    result.stdout.no_fnmatch_line("energy: measuring*")


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        ((1,), {}),
        ((1, "b"), {}),
        ((1, "b", None), {}),
        ((1, 2, 3, 4), {}),
        ((1,), {"k": 5}),
    ],
)
def test_a_round_calls_the_function_with_its_arguments_as_often_as_asked(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    # Rounds unpack a partial's arguments once (a call CPython inlines); every call must
    # still be the one the test wrote, whatever the number of arguments or keywords.
    seen: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def fn(*got: object, **named: object) -> None:
        seen.append((got, named))

    call_times(functools.partial(fn, *args, **kwargs), 7)
    assert seen == [(args, kwargs)] * 7
    seen.clear()
    call_times(lambda: fn(*args, **kwargs), 3)  # not a partial: called as it is
    assert seen == [(args, kwargs)] * 3
    call_times(functools.partial(fn, *args, **kwargs), 0)
    assert seen == [(args, kwargs)] * 3


def test_an_exception_in_a_round_stops_it_where_it_was_raised() -> None:
    calls: list[int] = []

    def fn(limit: int) -> None:
        calls.append(limit)
        if len(calls) == limit:
            raise ValueError("third call")

    with pytest.raises(ValueError, match="third call"):
        call_times(functools.partial(fn, 3), 10)
    assert calls == [3, 3, 3]
