"""The gate's decisions on constructed samples: every verdict, Holm, screen, suite, stability.

Samples are built from fixed normal scores instead of random draws, so every
number here is reproducible and the expected verdicts can be reasoned out.
"""

from __future__ import annotations

import doctest
import math
from dataclasses import replace

import pytest

from pytest_energy.gate import (
    GateInput,
    Spread,
    decide,
    decision,
    evaluate,
    gate_problem,
    holm_adjust,
    holm_reject,
    not_gated,
    not_gated_for_flags,
    rule,
    screen,
    screening,
    session_stability,
    suite,
    suite_check,
    variants,
)
from pytest_energy.gate.decision import spreads
from pytest_energy.gate.rule import Evidence, weigh
from pytest_energy.gate.variants import ratio_limit_met
from pytest_energy.measure.rounds import interleaved_order
from pytest_energy.record import SuiteCheck, Verdict
from pytest_energy.stats import paired_log_ratio

# Normal scores with mean 0 over every block of 5 and of 10.
SCORES = (-1.2816, 1.2816, -0.5244, 0.5244, 0.0, -0.8416, 0.8416, -0.2533, 0.2533, 0.0)
# Three scores with mean 0 and sample standard deviation 1: three processes' offsets.
THREE = (-1.0, 0.0, 1.0)


def processes(
    level: float, spread: float, n: int = 3, *, rounds: int = 2, offset: int = 0
) -> list[list[float]]:
    """``n`` processes whose mean logs sit at log(level) + spread x a normal score
    (exactly spread for n = 3), each with ``rounds`` rounds of 0.1 % noise around it."""
    scores = THREE if n == 3 else SCORES
    groups = []
    for k in range(n):
        centre = level * math.exp(spread * scores[(k + offset) % len(scores)])
        groups.append([centre * (1.001 if r % 2 else 0.999) for r in range(rounds)])
    return groups


BASE = processes(10.0, 0.01)


def session(level: float, rounds: int = 2) -> list[list[float]]:
    """This session's one process."""
    return [[level * (1.001 if r % 2 else 0.999) for r in range(rounds)]]


def one(test: GateInput, **settings: float) -> Verdict:
    return decide([test], **settings)[0]


# --- every verdict -----------------------------------------------------------------------------


def test_a_material_and_certain_increase_is_a_regression() -> None:
    verdict = one(GateInput("t", BASE, session(11.0), confirmation=processes(11.0, 0.01)))
    assert verdict.status == "regression"
    assert verdict.ratio == pytest.approx(1.10, rel=1e-3)
    assert verdict.ci_low is not None
    assert verdict.ci_low > 1.01
    assert verdict.reason.startswith("+10.0% [")
    assert verdict.reason.endswith("baseline 3 processes vs 3 fresh processes")


def test_the_process_is_the_unit_of_replication() -> None:
    """Rounds inside one process cannot shrink its offset: only more processes can."""
    few = one(GateInput("t", BASE, current=[[11.0] * 2], confirmation=processes(11.0, 0.01)))
    many = one(
        GateInput("t", BASE, current=[[11.0] * 2], confirmation=processes(11.0, 0.01, rounds=40))
    )
    assert few.ci_low == pytest.approx(many.ci_low, rel=1e-3)
    assert few.ci_high == pytest.approx(many.ci_high, rel=1e-3)


def test_the_centres_are_geometric_means_so_they_divide_to_the_ratio() -> None:
    verdict = one(GateInput("t", BASE, session(11.0)))
    assert verdict.baseline == pytest.approx(10.0, rel=1e-3)
    assert verdict.current is not None
    assert verdict.current / verdict.baseline == pytest.approx(verdict.ratio)


def test_a_material_and_certain_decrease_is_an_improvement() -> None:
    verdict = one(GateInput("t", BASE, session(8.0)))
    assert verdict.status == "improvement"
    assert verdict.ratio == pytest.approx(0.8, rel=1e-3)


def test_no_change_is_unchanged() -> None:
    verdict = one(GateInput("t", processes(10.0, 0.002), session(10.0)))
    assert verdict.status == "unchanged", verdict.reason
    assert "stays below the 5% threshold" in verdict.reason


def test_a_certain_but_immaterial_change_is_unchanged() -> None:
    verdict = one(GateInput("t", processes(10.0, 0.001), session(10.2)))
    assert verdict.status == "unchanged"


def test_a_material_but_uncertain_increase_is_inconclusive() -> None:
    # Processes that disagree by 8 % cannot prove +10 %.
    noisy = processes(10.0, 0.08)
    verdict = one(GateInput("t", noisy, session(11.0), confirmation=processes(11.0, 0.08)))
    assert verdict.status == "inconclusive"
    assert "not certain" in verdict.reason


def test_an_interval_reaching_the_threshold_is_inconclusive() -> None:
    verdict = one(GateInput("t", processes(10.0, 0.02), session(10.2)))
    assert verdict.status == "inconclusive"
    assert "reaches the 5% threshold" in verdict.reason


def test_one_process_each_side_is_inconclusive_not_a_crash() -> None:
    verdict = one(GateInput("t", [[10.0, 10.1, 9.9]], session(11.0)))
    assert verdict.status == "inconclusive"
    assert "spread between processes is unknown" in verdict.reason
    assert "--energy-processes" in verdict.reason


def test_a_history_run_is_one_process() -> None:
    runs = [[10.0], [10.1], [9.9], [10.05]]
    verdict = one(GateInput("t", runs, session(12.0), confirmation=[[12.0], [12.1], [11.9]]))
    assert verdict.status == "regression"
    assert verdict.reason.endswith("baseline 4 processes vs 3 fresh processes")


def test_deterministic_values_are_judged_exactly() -> None:
    same = GateInput("t", [[2.0], [2.0]], [[2.0], [2.0]])
    up = GateInput("u", [[2.0], [2.0]], [[3.0], [3.0]])
    assert one(same).status == "unchanged"
    assert one(up).status == "regression"


@pytest.mark.parametrize(
    ("test", "reason"),
    [
        (GateInput("t", [], [[1.0]]), "no baseline for this test"),
        (GateInput("t", [[1.0]], []), "no current rounds"),
        (GateInput("t", [[1.0]], [[-1.0]]), "current energy -1.0 J per unit is not positive"),
        (GateInput("t", [[math.nan]], [[1.0]]), "baseline energy nan is not a finite number"),
        (
            GateInput("t", [[1.0]], [[1.0]], method="measured", baseline_method="modelled"),
            "baseline is modelled, this run is measured",
        ),
    ],
)
def test_tests_that_cannot_be_gated_say_why(test: GateInput, reason: str) -> None:
    verdict = one(test)
    assert verdict.status == "not_gated"
    assert verdict.reason.startswith(reason)


def test_not_gated_tests_stay_in_place_and_out_of_the_family() -> None:
    tests = [
        GateInput("a", BASE, session(10.0)),
        GateInput("bad", [], session(10.0)),
        GateInput("b", BASE, session(10.0)),
    ]
    verdicts = decide(tests)
    assert [v.status for v in verdicts] == ["unchanged", "not_gated", "unchanged"]
    assert "over 2" not in verdicts[0].reason  # only the gated ones form Holm's family


def test_not_gated_helpers() -> None:
    assert not_gated("why").reason == "why"
    assert not_gated_for_flags(["wrapped"]) is None
    flagged = not_gated_for_flags(["gpu_shared", "concurrent"])
    assert flagged is not None
    assert flagged.reason.startswith("concurrent")
    assert gate_problem(GateInput("t", BASE, session(10.0))) is None


# --- the spread between processes ---------------------------------------------------------------


def test_the_spread_between_processes_is_pooled_across_tests() -> None:
    alone = one(GateInput("t", BASE, session(10.6), confirmation=processes(10.6, 0.01)))
    others = [GateInput(f"o{i}", BASE, session(10.0)) for i in range(4)]
    together = decide(
        [GateInput("t", BASE, session(10.6), confirmation=processes(10.6, 0.01)), *others]
    )[0]
    # The same spread, but with 2 x 5 - ... degrees of freedom instead of 4: a narrower interval.
    assert together.ci_high - together.ci_low < alone.ci_high - alone.ci_low


def test_a_test_noisier_than_the_others_is_judged_by_its_own_spread() -> None:
    calm = [GateInput(f"c{i}", processes(10.0, 0.005), session(10.0)) for i in range(6)]
    wild = GateInput(
        "wild", processes(10.0, 0.10), session(12.0), confirmation=processes(12.0, 0.10)
    )
    verdict = decide([wild, *calm])[0]
    assert verdict.status != "regression"
    assert "its own spread between processes" in verdict.reason


def test_spread_values() -> None:
    assert Spread.of([0.0, 1.0], [5.0, 6.0, 7.0]).variance == pytest.approx((0.5 + 2.0) / 3)
    assert Spread.of([0.0]).df == 0
    assert Spread.pooled([Spread(1.0, 2.0), Spread(4.0, 1.0), Spread(math.nan, 0.0)]) == Spread(
        2.0, 3.0
    )


# --- the per-test limits and the decision inputs ---------------------------------------------


def test_a_marker_threshold_overrides_the_run_threshold() -> None:
    plus7 = processes(10.7, 0.002)
    assert (
        one(GateInput("t", processes(10.0, 0.002), session(10.7), confirmation=plus7)).status
        == "regression"
    )
    relaxed = GateInput(
        "t", processes(10.0, 0.002), session(10.7), confirmation=plus7, threshold=0.08
    )
    verdict = one(relaxed)
    assert verdict.status == "unchanged"
    assert verdict.threshold == pytest.approx(0.08)


def test_the_margin_never_exceeds_the_threshold() -> None:
    verdict = one(GateInput("t", processes(10.0, 0.001), session(10.4), threshold=0.03, margin=0.1))
    assert verdict.status == "regression"


def test_the_decision_uses_the_fresh_processes_only() -> None:
    screen_high = GateInput("t", BASE, session(12.0), confirmation=processes(10.0, 0.01))
    assert one(screen_high).status == "unchanged"


def test_gate_input_normalises_and_validates() -> None:
    test = GateInput("t", [[1, 2]], [(3,)])
    assert test.baseline == ((1.0, 2.0),)
    assert test.current == ((3.0,),)
    assert test.deciding == ((3.0,),)
    with pytest.raises(ValueError, match="threshold"):
        GateInput("t", [[1.0]], [[1.0]], threshold=0.0)
    with pytest.raises(ValueError, match="margin"):
        GateInput("t", [[1.0]], [[1.0]], margin=-0.1)
    with pytest.raises(ValueError, match="weight"):
        GateInput("t", [[1.0]], [[1.0]], weight=0.0)
    with pytest.raises(ValueError, match="at least one value"):
        GateInput("t", [[]], [[1.0]])
    with pytest.raises(TypeError, match="sequence of processes"):
        GateInput("t", 1.0, [[1.0]])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"alpha": 0.0}, "alpha"), ({"threshold": 0.0}, "threshold"), ({"margin": -0.01}, "margin")],
)
def test_bad_settings_are_refused(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decide([GateInput("t", BASE, session(10.0))], **settings)


def test_no_tests_no_verdicts() -> None:
    assert decide([]) == []
    outcome = evaluate([])
    assert (outcome.verdicts, outcome.failed, outcome.counts) == ([], False, {})
    assert outcome.suite == SuiteCheck(status="not_gated", tests=0)


# --- Holm's correction -------------------------------------------------------------------------


def test_holm_adjusts_in_step_down_order() -> None:
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_reject([0.01, 0.04, 0.03, 0.005], 0.05) == [True, False, False, True]
    # Step-down stops at the first failure even if a later p would pass its own level.
    assert holm_reject([0.001, 0.04, 0.045], 0.05) == [True, False, False]
    assert holm_adjust([0.5, 0.9]) == [1.0, 1.0]
    assert holm_adjust([]) == []
    assert holm_adjust([0.02]) == [0.02]
    assert holm_adjust([0.01, 0.01]) == [0.02, 0.02]


def test_holm_is_never_weaker_than_bonferroni() -> None:
    p = [0.001, 0.012, 0.0125, 0.3, 0.02]
    bonferroni = [min(1.0, v * len(p)) for v in p]
    assert all(h <= b for h, b in zip(holm_adjust(p), bonferroni, strict=True))


def test_the_level_is_shared_among_fifty_tests() -> None:
    suspect = GateInput("suspect", BASE, session(10.7), confirmation=processes(10.7, 0.01))
    family = [suspect, *[GateInput(f"c{i}", BASE, session(10.0)) for i in range(49)]]
    (spread, _), *_ = spreads(family)
    evidence = weigh(suspect, 0.05, 0.01, spread)
    assert isinstance(evidence, Evidence)
    among = decide(family)[0]
    # The smallest p-value of fifty is multiplied by fifty (Holm's first step).
    assert among.p_value == pytest.approx(min(1.0, 50 * evidence.p_regression))
    assert "over 50" in among.reason


def test_reported_p_values_are_holm_adjusted() -> None:
    tests = [
        GateInput("a", BASE, session(11.5)),
        GateInput("b", BASE, session(10.9)),
        GateInput("c", BASE, session(10.0)),
    ]
    raw = [decide(tests, alpha=0.01)[i].p_value for i in range(3)]
    assert all(p is not None and 0 <= p <= 1 for p in raw)
    assert raw[0] <= raw[1] <= raw[2]  # type: ignore[operator]


def test_improvements_form_their_own_family() -> None:
    tests = [GateInput("down", BASE, session(8.0)), GateInput("up", BASE, session(12.0))]
    statuses = [v.status for v in decide(tests)]
    assert statuses == ["improvement", "regression"]


# --- the screen ---------------------------------------------------------------------------------


def test_a_clean_screen_is_not_flagged() -> None:
    (result,) = screen([GateInput("t", BASE, session(10.0))])
    assert not result.flagged
    assert "not flagged" in result.reason


def test_a_clear_suspect_is_flagged_for_fresh_processes() -> None:
    (result,) = screen([GateInput("t", BASE, session(11.0))])
    assert result.flagged
    assert result.reason.endswith("confirm in fresh processes")


def test_a_noisy_suspect_is_flagged_on_its_estimate() -> None:
    (result,) = screen([GateInput("t", processes(10.0, 0.2), session(10.4))])
    assert result.flagged
    assert "above half the threshold" in result.reason


def test_the_screen_ignores_fresh_processes_already_there() -> None:
    test = GateInput("t", BASE, session(11.0), confirmation=processes(10.0, 0.01))
    assert screen([test])[0].flagged


def test_the_screen_skips_what_cannot_be_gated() -> None:
    (result,) = screen([GateInput("t", [], session(11.0))])
    assert not result.flagged
    assert result.reason.startswith("not screened: no baseline")


def test_the_screen_refuses_settings_that_break_the_guarantee() -> None:
    with pytest.raises(ValueError, match="alpha must be at most"):
        screen([GateInput("t", BASE, session(10.0))], alpha=0.1)


def test_unflagged_tests_can_never_fail_the_build() -> None:
    """An unflagged test has p >= 0.05 against 1 + margin: above any Holm level."""
    for level in (10.0, 10.1, 10.2, 10.3):
        test = GateInput("t", processes(10.0, 0.03), session(level))
        if not screen([test])[0].flagged:
            assert one(test).status != "regression"


# --- the suite total ---------------------------------------------------------------------------


def suite_of(factor: float, n: int = 20) -> list[GateInput]:
    """``n`` tests, all scaled by ``factor``; every baseline process measured all of them."""
    return [GateInput(f"t{i}", processes(10.0, 0.002), session(10.0 * factor)) for i in range(n)]


def test_the_suite_total_is_compared_per_process() -> None:
    check = suite_check(suite_of(1.08))
    assert check.status == "regression"
    assert check.ratio == pytest.approx(1.08, rel=0.01)
    assert check.tests == 20
    assert check.ci_low is not None
    assert check.ci_low < check.ratio < check.ci_high
    assert check.current_j / check.baseline_j == pytest.approx(check.ratio)  # type: ignore[operator]


def test_a_clean_suite_is_unchanged_and_an_improved_one_improves() -> None:
    assert suite_check(suite_of(1.0)).status == "unchanged"
    assert suite_check(suite_of(0.85)).status == "improvement"


def test_an_offset_shared_by_a_process_is_not_averaged_away() -> None:
    """Processes whose offset hits every test alike: the total's spread is theirs."""
    shared = [
        GateInput(f"t{i}", [[10.0 * (1 + 0.03 * s)] for s in THREE], session(10.7))
        for i in range(20)
    ]
    assert suite_check(shared).status == "inconclusive"


def test_the_suite_weights_tests_by_their_energy() -> None:
    heavy = GateInput("heavy", processes(100.0, 0.002), session(120.0))
    light = GateInput("light", processes(1.0, 0.002), session(1.0))
    check = suite_check([heavy, light])
    assert check.ratio == pytest.approx(121.0 / 101.0, rel=1e-3)
    per_call = suite_check([heavy, replace(light, weight=200)])
    assert per_call.ratio == pytest.approx((120.0 + 200.0) / (100.0 + 200.0), rel=1e-3)


def test_the_suite_leaves_out_what_cannot_be_gated() -> None:
    tests = [*suite_of(1.0, n=3), GateInput("bad", [[1.0]], [[-2.0]])]
    assert suite_check(tests).tests == 3
    assert suite_check([GateInput("bad", [], [[1.0]])]) == SuiteCheck(status="not_gated", tests=0)


def test_the_suite_of_one_baseline_process_is_inconclusive() -> None:
    check = suite_check([GateInput(f"t{i}", [[10.0]], session(19.0)) for i in range(3)])
    assert check.status == "inconclusive"


def test_evaluate_puts_the_suite_in_the_family() -> None:
    assert evaluate(suite_of(1.0, n=3)).suite.status == "unchanged"
    outcome = evaluate(suite_of(1.08, n=3))
    assert outcome.suite.status == "regression"
    assert all("over 4" in v.reason for v in outcome.verdicts)  # 3 tests and the suite


def test_evaluate_fails_on_the_suite_alone() -> None:
    tests = [
        GateInput(f"t{i}", processes(10.0, 0.001), session(10.6), threshold=0.5) for i in range(5)
    ]
    outcome = evaluate(tests)
    assert not any(v.status == "regression" for v in outcome.verdicts)
    assert outcome.suite.status == "regression"
    assert outcome.failed


# --- session stability -------------------------------------------------------------------------


def test_a_steady_session_is_stable() -> None:
    s = session_stability([100.0, 100.2, 99.9], [100.5, 100.4], {"a": 0.01, "b": 0.02})
    assert not s.unstable
    assert s.reason == ""
    # The geometric means of the windows, as the significance test sees them.
    assert s.drift == pytest.approx((100.5 * 100.4) ** 0.5 / (100.0 * 100.2 * 99.9) ** (1 / 3) - 1)
    assert s.noisy_tests == ()


def test_a_drift_within_the_windows_own_noise_is_not_believed() -> None:
    # One window in five read ~5 % high on an H200: the median of three cannot show 2 %.
    noisy = session_stability([1520.0, 1585.0, 1512.0], [1517.0, 1508.0, 1590.0], {})
    assert not noisy.unstable
    steady = session_stability([1520.0, 1518.0, 1522.0], [1600.0, 1602.0, 1598.0], {})
    assert steady.unstable
    assert steady.drift == pytest.approx(0.0526, abs=0.001)


def test_calibration_drift_makes_the_session_unstable() -> None:
    s = session_stability([100.0], [96.5], {"a": 0.01})
    assert s.unstable
    assert s.reason == "calibration workload drifted -3.5% between session start and end (limit 2%)"
    assert not session_stability([100.0], [96.5], {}, max_drift=0.05).unstable


def test_noisy_rounds_make_the_session_unstable() -> None:
    cvs = {"a": 0.06, "b": 0.08, "c": 0.01}
    s = session_stability([], [], cvs)
    assert s.unstable
    assert s.drift is None
    assert "median round-to-round CV 6.0% across 3 tests exceeds the 5% limit" in s.reason
    assert s.noisy_tests == ("a", "b")


def test_one_noisy_test_is_listed_without_condemning_the_session() -> None:
    s = session_stability([50.0], [50.1], {"a": 0.2, "b": 0.01, "c": 0.02})
    assert not s.unstable
    assert s.noisy_tests == ("a",)
    assert session_stability([], [], {"nan": math.nan}).noisy_tests == ("nan",)


def test_both_causes_are_reported_together() -> None:
    s = session_stability([10.0], [11.0], {"a": 0.09})
    assert s.unstable
    assert s.reason.count(";") == 1


def test_a_non_positive_calibration_is_suspect() -> None:
    s = session_stability([0.0], [10.0], {})
    assert s.unstable
    assert "not positive" in s.reason
    assert s.drift is None


# --- variants: paired, interleaved ratios and limits ----------------------------------------


def test_interleaved_rounds_give_a_paired_ratio_that_cancels_drift() -> None:
    order = [side for pair in range(4) for side in interleaved_order(pair)]
    assert order == [
        "reference",
        "candidate",
        "candidate",
        "reference",
        "reference",
        "candidate",
        "candidate",
        "reference",
    ]
    drift = iter(1.0 + 0.01 * k for k in range(8))  # the machine heats up, 1 % a round
    energy = {"reference": 10.0, "candidate": 4.7}
    recorded = [(side, energy[side] * next(drift)) for side in order]
    reference = [value for side, value in recorded if side == "reference"]
    candidate = [value for side, value in recorded if side == "candidate"]
    estimate = paired_log_ratio(reference, candidate)
    assert estimate.ratio == pytest.approx(0.47, rel=0.01)
    assert ratio_limit_met(estimate.interval(0.95), 0.6, "at_most") == "pass"


def test_a_single_pair_leaves_every_limit_inconclusive() -> None:
    interval = paired_log_ratio([10.0], [4.0]).interval(0.95)
    assert interval == (0.0, math.inf)
    assert ratio_limit_met(interval, 0.6, "at_most") == "inconclusive"


@pytest.mark.parametrize(
    ("ci", "limit", "direction", "outcome"),
    [
        ((0.44, 0.51), 0.6, "at_most", "pass"),
        ((0.50, 0.60), 0.6, "at_most", "pass"),  # a bound on the limit clears it
        ((0.55, 0.65), 0.6, "at_most", "inconclusive"),
        ((0.60, 0.70), 0.6, "at_most", "inconclusive"),
        ((0.61, 0.70), 0.6, "at_most", "fail"),
        ((0.992, 0.999), 0.99, "at_least", "pass"),
        ((0.99, 0.99), 0.99, "at_least", "pass"),
        ((0.985, 0.995), 0.99, "at_least", "inconclusive"),
        ((0.95, 0.98), 0.99, "at_least", "fail"),
    ],
)
def test_a_limit_is_met_only_when_the_bound_clears_it(
    ci: tuple[float, float], limit: float, direction: str, outcome: str
) -> None:
    assert ratio_limit_met(ci, limit, direction) == outcome  # type: ignore[arg-type]


def test_ratio_limit_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="direction"):
        ratio_limit_met((0.5, 0.6), 0.6, "below")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a confidence interval"):
        ratio_limit_met((0.7, 0.6), 0.6, "at_most")
    with pytest.raises(ValueError, match="not a confidence interval"):
        ratio_limit_met((math.nan, 0.6), 0.6, "at_most")


@pytest.mark.parametrize("module", [decision, rule, screening, suite, variants])
def test_gate_docstring_examples_hold(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.failed == 0
