"""Honest numbers from small samples (issue 12, item 8).

One round has no spread to estimate: it must read "no interval", never "+-0.0 %"
with a CV of 0.0 %, and the gate must not call it a certain change. Percentages
the user typed read back as typed (0.5 %, not "0%"), and a carbon figure too
large to compute is refused instead of vanishing.
"""

from __future__ import annotations

import math

import pytest
import traces
from records import run_record, sample_benchmark

from pytest_energy.carbon import CarbonError, parse_embodied, parse_pue, resolve_intensity
from pytest_energy.config.families import FamilySpec
from pytest_energy.config.marker import TestSettings
from pytest_energy.gate import GateInput, evaluate
from pytest_energy.gate.budgets import budget_message, judge_benchmark
from pytest_energy.gate.variants import judge_variant
from pytest_energy.measure import sizing
from pytest_energy.record import QualityRatio, Summary
from pytest_energy.report import format as fmt
from pytest_energy.report.terminal import write_energy_section
from pytest_energy.stats import percentage, summarize

SQUARES = """
def squares(n):
    return sum(i * i for i in range(n))

{marker}
def test_squares(energy_benchmark):
    assert energy_benchmark(squares, 2000, units=2000, unit="item") > 0
"""

ONE_ROUND = ("--energy", "--energy-meter=model", "--energy-rounds=1", "--energy-processes=1")


# -- one round has no interval -------------------------------------------------------------


def test_one_round_reads_no_interval_and_no_cv_in_the_terminal(
    pytester: pytest.Pytester, results
) -> None:
    pytester.makepyfile(SQUARES.format(marker=""))
    result = pytester.runpytest(*ONE_ROUND, "--energy-json=results.json")
    result.assert_outcomes(passed=1)
    # The rounds column is as wide as its widest cell, "1x<calls>", and the calls a round
    # makes depend on the machine's speed: the spaces before it vary.
    result.stdout.fnmatch_lines(["*J/item  no interval (1 round) * — * 1x* modelled *test_squares"])
    assert "+-0.0%" not in result.stdout.str()
    assert "0.0%" not in result.stdout.str()
    # The record keeps its float fields; the reports decide what they mean.
    per_unit = results()["tests"][0]["benchmark"]["per_unit"]
    assert per_unit["n"] == 1
    assert per_unit["ci_low"] == per_unit["ci_high"] == per_unit["mean"]


def test_format_says_no_interval_below_two_rounds() -> None:
    one = summarize([3.0])
    assert fmt.relative_interval(one) == "no interval (1 round)"
    assert fmt.energy_interval(one) == "no interval (1 round)"
    assert fmt.cv(one) == fmt.DASH
    assert not fmt.has_interval(one)
    five = summarize([10.0, 11.0, 9.0, 10.0, 10.0])
    assert fmt.relative_interval(five) == "+-8.8%"
    assert fmt.energy_interval(five) == "[9.12 J, 10.9 J]"
    assert fmt.cv(five) == "7.1%"
    assert fmt.has_interval(five)
    nan = math.nan
    empty = Summary(n=0, median=nan, mean=nan, stdev=nan, cv=nan, ci_low=nan, ci_high=nan)
    assert fmt.relative_interval(empty) == "no interval (0 rounds)"


def test_a_record_of_one_round_renders_no_interval() -> None:
    """A results file read by ``pytest-energy`` goes through the same terminal section."""
    record = run_record([sample_benchmark("t.py::test_one", [0.25])])

    class Lines:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def write_sep(self, sep: str, title: str | None = None, **markup: bool) -> None:
            self.lines.append(f"{sep * 3} {title}")

        def write_line(self, line: str, **markup: bool) -> None:
            self.lines.append(line)

    out = Lines()
    write_energy_section(out, record, top=5, json_path=None, failure=None)
    (row,) = [line for line in out.lines if line.endswith("t.py::test_one") and "J/" in line]
    assert "no interval (1 round)" in row
    assert "0.0%" not in row


def test_a_budget_on_one_round_shows_no_interval(pytester: pytest.Pytester) -> None:
    marker = '@pytest.mark.energy(max_joules_per_unit=1e-15, on_modelled="fail")'
    pytester.makepyfile("import pytest\n" + SQUARES.format(marker=marker))
    result = pytester.runpytest(*ONE_ROUND)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*energy budget exceeded: J per item * J > max_joules_per_unit*"])
    assert "[95% CI" not in result.stdout.str()


def test_a_budget_on_several_rounds_keeps_its_interval() -> None:
    test = sample_benchmark("t.py::test_b", [1.0, 1.1, 0.9])
    assert test.benchmark is not None
    settings = TestSettings(
        rounds=3,
        warmup=0,
        window=None,
        max_time=None,
        cv_limit=0.05,
        on_modelled="warn",
        max_regression=0.05,
        gate=True,
        budgets={"max_joules_per_unit": 0.5},
        marker={},
    )
    (note,) = judge_benchmark(test.benchmark, "measured", ["nvml"], [], settings)
    assert "[95% CI 0.9, 1.1]" in budget_message(note)
    single = sample_benchmark("t.py::test_b", [1.0])
    assert single.benchmark is not None
    (note,) = judge_benchmark(single.benchmark, "measured", ["nvml"], [], settings)
    assert (note.low, note.high) == (None, None)


# -- the gate does not call one round a certain change ----------------------------------------

BENCH = """
def test_bench(energy_benchmark):
    energy_benchmark.pedantic(lambda: None, rounds=1, calls_per_round=1, units=10, unit="sample")
"""


def _one_round_run(pytester: pytest.Pytester, replay, joules: float, *args: str):
    """One pedantic round in this session, and the same in a fresh process if one starts."""
    for process in (0, 1):
        replay(traces.benchmark_rounds([joules]), f"run-{process}.json")
    pytester.makepyfile(BENCH)
    return pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{pytester.path / 'run'}-{{process}}.json",
        "--energy-idle-seconds=0",
        "--energy-calibration=off",
        "--energy-processes=1",
        "--energy-json=results.json",
        "-W",
        "always",
        *args,
    )


def test_one_round_on_each_side_is_not_a_certain_regression(
    pytester: pytest.Pytester, replay, results
) -> None:
    _one_round_run(pytester, replay, 10.0, "--energy-save-baseline").assert_outcomes(passed=1)
    result = _one_round_run(
        pytester, replay, 20.0, "--energy-compare", "--energy-fail=0.5%", "--energy-margin=0.25%"
    )
    assert result.ret == pytest.ExitCode.OK  # twice the energy, but nothing to judge it by
    verdict = results()["tests"][0]["verdict"]
    assert verdict["status"] == "inconclusive", verdict
    assert verdict["ratio"] == pytest.approx(2.0)
    assert (verdict["ci_low"], verdict["ci_high"]) == (None, None)
    assert verdict["reason"].startswith("+100.0% (no interval): the spread between processes")
    result.stdout.fnmatch_lines(
        [
            "baseline default: threshold 0.5%, margin 0.25%, family-wise alpha 1%; 1 inconclusive",
            "inconclusive*2.00x  measured*test_bench",
        ]
    )
    assert "[0.00" not in result.stdout.str()


def test_one_round_with_the_model_meter_is_never_a_verdict_of_change(
    pytester: pytest.Pytester, results
) -> None:
    pytester.makepyfile(SQUARES.format(marker=""))
    pytester.runpytest(*ONE_ROUND, "--energy-save-baseline").assert_outcomes(passed=1)
    result = pytester.runpytest(*ONE_ROUND, "--energy-compare", "--energy-json=results.json")
    assert result.ret == pytest.ExitCode.OK
    verdict = results()["tests"][0]["verdict"]
    # An oversubscribed machine may leave the round below the meter's resolution:
    # then it is not gated at all, which is just as honest.
    assert verdict["status"] in ("inconclusive", "not_gated"), verdict
    assert verdict["ci_low"] is None


def test_a_zero_spread_of_other_tests_is_not_borrowed() -> None:
    """Tests that repeat exactly say nothing about the noise of a test measured once."""
    once = GateInput("once", baseline=[[2.0]], current=[[3.0]])
    exact = GateInput("exact", baseline=[[2.0], [2.0]], current=[[2.0], [2.0]])
    verdicts = evaluate([once, exact]).verdicts
    assert verdicts[0].status == "inconclusive"
    assert (verdicts[0].ci_low, verdicts[0].ci_high) == (None, None)
    assert "(no interval)" in verdicts[0].reason
    assert verdicts[1].status == "unchanged"  # its own processes repeat: judged exactly


def test_a_positive_spread_of_other_tests_is_still_borrowed() -> None:
    once = GateInput("once", baseline=[[2.0]], current=[[3.0]])
    steady = GateInput("steady", baseline=[[2.0], [2.02], [1.98]], current=[[2.0], [2.01]])
    verdicts = evaluate([once, steady]).verdicts
    assert verdicts[0].status == "regression"
    assert verdicts[0].ci_low is not None
    assert verdicts[0].ci_low > 1.4


# -- percentages read back as typed ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fraction", "text"),
    [(0.05, "5%"), (0.005, "0.5%"), (0.0125, "1.25%"), (0.07, "7%"), (1e-7, "0.00001%")],
)
def test_percentages_keep_their_precision(fraction: float, text: str) -> None:
    assert percentage(fraction) == text
    assert fmt.percentage(fraction) == text


def test_gate_reasons_print_a_half_percent_threshold_as_typed() -> None:
    stored = [[10.0], [10.01], [9.99]]
    unchanged = GateInput("t", stored, current=[[10.0], [10.01], [9.99]])
    (verdict,) = evaluate([unchanged], threshold=0.005, margin=0.0025).verdicts
    assert "below the 0.5% threshold" in verdict.reason


def test_a_quality_limit_reads_as_typed() -> None:
    spec = FamilySpec("f", "fp32", "int8", max_energy_ratio=None, min_quality_ratio=0.9995)
    _, line = judge_variant(
        spec,
        ratio=0.5,
        ci_low=0.45,
        ci_high=0.55,
        unit="sample",
        method="measured",
        qualities={"accuracy": QualityRatio(0.91, True, 0.911, 0.91 / 0.911)},
    )
    assert "(limit 99.95%)" in line  # was "(limit 100%)"


# -- carbon figures too large to compute are refused ----------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "1e308,4",  # kg x 1000 overflowed to inf: stored as null, shown as a dash
        "1e20,4",
        "1000,1e300",  # amortised to nothing over 1e300 years
        "1000,1e-300",
        "1000,4,1e-300",
    ],
)
def test_an_embodied_figure_out_of_range_is_refused(raw: str) -> None:
    with pytest.raises(CarbonError) as info:
        parse_embodied(raw, origin="PYTEST_ENERGY_EMBODIED")
    message = str(info.value)
    assert "\n" not in message
    assert "PYTEST_ENERGY_EMBODIED" in message
    assert "0 <= kg <= 1000000" in message


def test_the_largest_embodied_figure_is_computed() -> None:
    largest = parse_embodied("1000000,0.1,1")
    assert largest is not None
    grams = largest.grams(3600.0)
    assert math.isfinite(grams)
    assert grams == pytest.approx(1e9 * 3600 / (0.1 * 365 * 24 * 3600))


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--energy-embodied=1e308,4", "ERROR: invalid embodied emissions '1e308,4' from *"),
        ("--energy-carbon-intensity=1e308", "ERROR: invalid carbon intensity '1e308' from *"),
        ("--energy-pue=1e308", "ERROR: invalid PUE '1e308' from --energy-pue*"),
    ],
)
def test_a_huge_carbon_factor_is_a_usage_error(
    pytester: pytest.Pytester, option: str, message: str
) -> None:
    pytester.makepyfile("def test_one():\n    pass\n")
    result = pytester.runpytest("--energy", "--energy-meter=model", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_large_sane_embodied_figure_reaches_the_results(
    pytester: pytest.Pytester, results
) -> None:
    pytester.makepyfile("def test_one():\n    sum(range(10000))\n")
    result = pytester.runpytest(
        "--energy", "--energy-meter=model", "--energy-embodied=1000000,4", "--energy-json=r.json"
    )
    result.assert_outcomes(passed=1)
    embodied = results("r.json")["tests"][0]["carbon"]["embodied_grams"]
    assert embodied is not None
    assert embodied > 0
    assert "embodied: — CO2e" not in result.stdout.str()


def test_carbon_factors_at_their_limits_are_accepted() -> None:
    assert parse_pue("10").value == 10.0
    assert resolve_intensity("5000", None).value == 5000.0
    with pytest.raises(CarbonError):
        parse_pue("10.5")
    with pytest.raises(CarbonError):
        resolve_intensity("5001", None)


# -- pilot sizing on a busy machine -----------------------------------------------------------


class FakeClock:
    """``perf_counter`` for a call that takes 1 ms, except the calls another process interrupts."""

    def __init__(self, interrupted: set[int], lost_s: float) -> None:
        self.now = 0.0
        self.calls = 0
        self.interrupted = interrupted
        self.lost_s = lost_s

    def perf_counter(self) -> float:
        return self.now

    def call(self) -> None:
        self.calls += 1
        self.now += 0.001 + (self.lost_s if self.calls in self.interrupted else 0.0)


def test_a_descheduled_pilot_batch_does_not_shrink_the_rounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Batches of 1, 10 and 20 calls; call 15 falls in the 20-call batch that ends the
    # pilot, and loses 50 ms to another process.
    clock = FakeClock(interrupted={15}, lost_s=0.05)
    monkeypatch.setattr(sizing.time, "perf_counter", clock.perf_counter)
    per_call = sizing.time_per_call(clock.call, 0.2)
    assert per_call == pytest.approx(0.001)
    assert sizing.calls_for_window(per_call, 0.2) == 200  # 0.2 s, not 57 ms


def test_a_pilot_of_one_long_call_is_timed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(interrupted={1}, lost_s=0.5)
    monkeypatch.setattr(sizing.time, "perf_counter", clock.perf_counter)
    assert sizing.time_per_call(clock.call, 2.0) == pytest.approx(0.501)
    assert clock.calls == 1


def test_a_variant_from_one_pair_of_rounds_has_no_interval() -> None:
    spec = FamilySpec("f", "fp32", "int8", max_energy_ratio=0.6, min_quality_ratio=None)
    verdict, line = judge_variant(
        spec,
        ratio=0.5,
        ci_low=0.0,
        ci_high=math.inf,
        unit="sample",
        method="measured",
        qualities={},
    )
    assert verdict == "inconclusive"
    assert line.startswith("int8: 0.50x (no interval) of fp32 energy per sample (limit 0.60x)")
