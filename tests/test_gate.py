"""The gate's decisions on constructed samples: every verdict, Holm, screen, suite, stability.

Samples are built from fixed normal scores instead of random draws, so every
number here is reproducible and the expected verdicts can be reasoned out.
"""

from __future__ import annotations

import doctest
import functools
import math

import pytest

from pytest_energy.gate import (
    GateInput,
    confirmation_rounds,
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
from pytest_energy.gate.variants import ratio_limit_met
from pytest_energy.measure.rounds import interleaved_order
from pytest_energy.record import SuiteCheck, Verdict
from pytest_energy.stats import paired_log_ratio

# Normal scores with mean 0 over every block of 5 and of 10.
SCORES = (-1.2816, 1.2816, -0.5244, 0.5244, 0.0, -0.8416, 0.8416, -0.2533, 0.2533, 0.0)


def rounds(level: float, spread: float, n: int = 5, *, offset: int = 0) -> tuple[float, ...]:
    """``n`` rounds whose log has mean log(level) (n = 5 or 10) and spread ~``spread``."""
    return tuple(level * math.exp(spread * SCORES[(k + offset) % len(SCORES)]) for k in range(n))


BASE = rounds(10.0, 0.01, 10)


def one(test: GateInput, **settings: float) -> Verdict:
    return decide([test], **settings)[0]


# --- every verdict -----------------------------------------------------------------------------


def test_a_material_and_certain_increase_is_a_regression() -> None:
    v = one(GateInput("t", BASE, rounds(11.5, 0.01)))
    assert v.status == "regression"
    assert v.ratio == pytest.approx(1.15)
    assert v.ratio is not None
    assert v.ci_low is not None
    assert v.ci_high is not None
    assert 1.05 < v.ci_low < v.ratio < v.ci_high
    assert v.p_value is not None
    assert v.p_value < 1e-6
    assert v.threshold == 0.05
    assert (v.method, v.kind) == ("measured", "baseline")
    assert v.reason.startswith("+15.0% [")
    assert "above the 5% threshold" in v.reason


def test_the_centres_are_geometric_means_so_they_divide_to_the_ratio() -> None:
    v = one(GateInput("t", BASE, rounds(11.5, 0.01)))
    assert v.baseline == pytest.approx(10.0)
    assert v.current == pytest.approx(11.5)
    assert v.current is not None
    assert v.baseline is not None
    assert v.current / v.baseline == pytest.approx(v.ratio)


def test_a_material_and_certain_decrease_is_an_improvement() -> None:
    v = one(GateInput("t", BASE, rounds(8.0, 0.01)))
    assert v.status == "improvement"
    assert v.ratio == pytest.approx(0.8)
    assert v.p_value is not None
    assert v.p_value < 1e-6
    assert "-20.0%" in v.reason


def test_no_change_is_unchanged() -> None:
    v = one(GateInput("t", BASE, rounds(10.0, 0.01, offset=2)))
    assert v.status == "unchanged"
    assert v.ci_high is not None
    assert v.ci_high < 1.05
    assert "stays below the 5% threshold" in v.reason


def test_a_certain_but_immaterial_change_is_unchanged() -> None:
    v = one(GateInput("t", BASE, rounds(10.2, 0.002)))
    assert v.ci_low is not None
    assert v.ci_low > 1.01
    assert v.status == "unchanged"  # ...but by 2 %, under the 5 % that matters


def test_a_material_but_uncertain_increase_is_inconclusive() -> None:
    v = one(GateInput("t", rounds(10.0, 0.08), rounds(10.8, 0.08, offset=1)))
    assert v.ratio is not None
    assert v.ratio > 1.05
    assert v.status == "inconclusive"
    assert "not certain" in v.reason


def test_an_interval_reaching_the_threshold_is_inconclusive() -> None:
    v = one(GateInput("t", BASE, rounds(10.35, 0.02)))
    assert v.ci_low is not None
    assert v.ci_low > 1.01
    assert v.ci_high is not None
    assert v.ci_high > 1.05
    assert v.status == "inconclusive"
    assert "too little evidence" in v.reason


def test_a_noisy_material_improvement_is_not_claimed() -> None:
    v = one(GateInput("t", rounds(10.0, 0.15), rounds(9.0, 0.15, offset=1)))
    assert v.status == "inconclusive"


def test_one_round_each_side_is_inconclusive_not_a_crash() -> None:
    v = one(GateInput("t", [10.0], [13.0]))
    assert v.status == "inconclusive"
    assert v.ratio == pytest.approx(1.3)
    assert (v.ci_low, v.ci_high) == (0.0, math.inf)
    assert "no spread" in v.reason
    assert "baseline 1 round vs 1 round" in v.reason


def test_one_baseline_round_borrows_the_current_spread() -> None:
    v = one(GateInput("t", [10.0], rounds(12.0, 0.005)))
    assert v.status == "regression"


def test_deterministic_values_are_judged_exactly() -> None:
    assert one(GateInput("t", [5.0, 5.0, 5.0], [6.0, 6.0])).status == "regression"
    same = one(GateInput("t", [5.0, 5.0], [5.0, 5.0, 5.0]))
    assert (same.status, same.ci_low, same.ci_high) == ("unchanged", 1.0, 1.0)


@pytest.mark.parametrize(
    ("test", "reason"),
    [
        (GateInput("t", (), (1.0,)), "no baseline for this test"),
        (GateInput("t", (1.0,), ()), "no current rounds"),
        (GateInput("t", (1.0, 2.0), (1.0,), method="modelled"), "the gate never compares"),
        (
            GateInput("t", (1.0,), (1.0,), method="measured", baseline_method="modelled"),
            "baseline is modelled, this run is measured",
        ),
        (GateInput("t", (1.0, 0.0), (1.0,)), "baseline energy 0.0 J per unit is not positive"),
        (GateInput("t", (1.0,), (1.0, -0.3)), "current energy -0.3 J per unit is not positive"),
        (GateInput("t", (1.0,), (1.0,), confirmation=(2.0, -1.0)), "confirmation energy -1.0"),
        (GateInput("t", (1.0,), (math.nan,)), "not a finite number"),
        (GateInput("t", (1.0,), (1.0,), baseline_kind="history"), "history holds 1 run"),
    ],
)
def test_tests_that_cannot_be_gated_say_why(test: GateInput, reason: str) -> None:
    if test.method == "modelled" and test.baseline_method is None:
        test = GateInput("t", (1.0, 2.0), (1.0,), method="modelled", baseline_method="measured")
    v = one(test)
    assert v.status == "not_gated"
    assert reason in v.reason
    assert gate_problem(test) == v.reason
    assert v.ratio is None


def test_not_gated_tests_stay_in_place_and_out_of_the_family() -> None:
    tests = [
        GateInput("a", BASE, rounds(11.5, 0.01)),
        GateInput("b", (), rounds(10.0, 0.01)),
        GateInput("c", BASE, rounds(10.0, 0.01)),
    ]
    verdicts = decide(tests)
    assert [v.status for v in verdicts] == ["regression", "not_gated", "unchanged"]
    assert "over 2" in verdicts[0].reason


def test_not_gated_helpers() -> None:
    v = not_gated("below_resolution: window too short", method="measured", threshold=0.05)
    assert (v.status, v.method, v.threshold, v.kind) == ("not_gated", "measured", 0.05, "baseline")
    assert not_gated_for_flags(["wrapped"]) is None
    assert not_gated_for_flags([]) is None
    blocked = not_gated_for_flags(["wrapped", "below_resolution", "concurrent"], method="measured")
    assert blocked is not None
    assert blocked.reason.startswith("concurrent: ")  # the most basic cause is named first
    assert blocked.method == "measured"


# --- the per-test limits and the decision inputs ---------------------------------------------


def test_a_marker_threshold_overrides_the_run_threshold() -> None:
    current = rounds(11.5, 0.01)
    assert one(GateInput("t", BASE, current)).status == "regression"
    loose = one(GateInput("t", BASE, current, threshold=0.20))
    assert (loose.status, loose.threshold) == ("unchanged", 0.20)
    strict = one(GateInput("t", BASE, rounds(10.3, 0.002), threshold=0.02))
    assert strict.status == "regression"


def test_the_margin_never_exceeds_the_threshold() -> None:
    # threshold 2 %, run margin 5 %: the margin is cut to 2 %, so +3 % can still fail.
    v = one(GateInput("t", BASE, rounds(10.3, 0.002), threshold=0.02), margin=0.05)
    assert v.status == "regression"
    assert "above +2%" in v.reason


def test_the_decision_uses_the_fresh_confirmation_rounds() -> None:
    flagged = GateInput(
        "t", BASE, current=rounds(11.0, 0.01), confirmation=rounds(10.0, 0.01, 10, offset=3)
    )
    v = one(flagged)
    assert v.status == "unchanged"  # the high screen was luck; the fresh rounds say so
    assert v.ratio == pytest.approx(1.0, abs=0.003)
    assert "10 confirmation rounds" in v.reason


def test_a_history_baseline_is_judged_as_one_more_run() -> None:
    history = (10.0, 10.3, 9.8, 10.1, 9.9, 10.2)
    up = one(GateInput("t", history, rounds(12.0, 0.01), baseline_kind="history"))
    assert up.status == "regression"
    assert "baseline 6 runs" in up.reason
    within = one(GateInput("t", history, rounds(10.2, 0.01), baseline_kind="history"))
    assert within.status in {"unchanged", "inconclusive"}


def test_gate_input_normalises_and_validates() -> None:
    test = GateInput("t", [1, 2], [3.0])
    assert test.baseline == (1.0, 2.0)
    assert hash(test) == hash(GateInput("t", (1.0, 2.0), (3.0,)))
    assert test.deciding_rounds == (3.0,)
    with pytest.raises(ValueError, match="threshold must be > 0"):
        GateInput("t", [1.0], [1.0], threshold=0.0)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        GateInput("t", [1.0], [1.0], margin=-0.01)
    with pytest.raises(ValueError, match="weight must be > 0"):
        GateInput("t", [1.0], [1.0], weight=0.0)
    with pytest.raises(ValueError, match="baseline_kind"):
        GateInput("t", [1.0], [1.0], baseline_kind="median")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"threshold": 0.0}, "threshold"),
        ({"margin": -0.1}, "margin"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decide([GateInput("t", BASE, BASE)], **settings)


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


def test_evidence_enough_for_one_test_is_not_enough_among_fifty() -> None:
    suspect = GateInput("suspect", rounds(10.0, 0.02), rounds(10.7, 0.02))
    alone = one(suspect)
    assert alone.status == "regression"
    clean = [GateInput(f"c{i}", BASE, rounds(10.0, 0.01, offset=i)) for i in range(49)]
    among = decide([suspect, *clean])[0]
    assert among.status == "inconclusive"
    assert among.p_value is not None
    assert alone.p_value is not None
    assert among.p_value == pytest.approx(min(1.0, 50 * alone.p_value))
    assert "over 50" in among.reason


def test_reported_p_values_are_holm_adjusted() -> None:
    tests = [
        GateInput("a", BASE, rounds(11.5, 0.01)),
        GateInput("b", BASE, rounds(10.9, 0.01)),
        GateInput("c", BASE, rounds(10.0, 0.01)),
    ]
    raw = [decide([t])[0].p_value for t in tests]
    adjusted = [v.p_value for v in decide(tests)]
    assert all(p is not None for p in raw)
    assert adjusted == pytest.approx(holm_adjust([p for p in raw if p is not None]))


def test_improvements_form_their_own_family() -> None:
    tests = [GateInput("down", BASE, rounds(8.0, 0.01)), GateInput("up", BASE, rounds(12.0, 0.01))]
    statuses = [v.status for v in decide(tests)]
    assert statuses == ["improvement", "regression"]


# --- screen and confirm ------------------------------------------------------------------------


def test_a_clean_screen_is_not_flagged() -> None:
    s = screen(GateInput("t", BASE, rounds(10.0, 0.01)), family_size=50)
    assert (s.flagged, s.extra_rounds) == (False, 0)
    assert s.p_value is not None
    assert s.p_value >= 0.05
    assert "not flagged" in s.reason


def test_a_quiet_clear_regression_needs_few_confirmation_rounds() -> None:
    s = screen(GateInput("t", BASE, rounds(11.0, 0.003)), family_size=50)
    assert s.flagged
    assert 3 <= s.extra_rounds <= 6
    assert s.ratio == pytest.approx(1.10)
    assert "confirm" in s.reason


def test_a_noisy_suspect_is_flagged_on_its_estimate_and_confirmed_to_the_cap() -> None:
    s = screen(GateInput("t", rounds(10.0, 0.05), rounds(10.4, 0.05)), family_size=50)
    assert s.p_value is not None
    assert s.p_value > 0.05
    assert s.flagged  # ...but above half the threshold
    assert "above half the threshold" in s.reason
    assert s.extra_rounds == 15  # 20 rounds in all


def test_the_cap_counts_screening_rounds() -> None:
    noisy = GateInput("t", rounds(10.0, 0.05), rounds(11.0, 0.05))
    assert screen(noisy, family_size=50, max_rounds=12).extra_rounds == 7
    assert screen(noisy, family_size=50, max_rounds=6).extra_rounds == 0  # no room for 3


def test_the_screen_asks_no_rounds_of_a_history() -> None:
    history = (10.0, 10.3, 9.8, 10.1)
    s = screen(GateInput("t", history, rounds(12.0, 0.01), baseline_kind="history"), family_size=5)
    assert (s.flagged, s.extra_rounds) == (True, 0)


def test_the_screen_skips_what_cannot_be_gated() -> None:
    s = screen(GateInput("t", (), rounds(10.0, 0.01)), family_size=3)
    assert (s.flagged, s.extra_rounds) == (False, 0)
    assert s.reason == "not gated: no baseline for this test"


def test_the_screen_refuses_settings_that_break_the_guarantee() -> None:
    test = GateInput("t", BASE, BASE)
    with pytest.raises(ValueError, match=r"at most 0\.05"):
        screen(test, family_size=10, alpha=0.1)
    with pytest.raises(ValueError, match="family_size"):
        screen(test, family_size=0)


def test_unflagged_tests_can_never_fail_the_build() -> None:
    # Whatever the screen lets through has p >= 0.05, above any Holm level at alpha <= 0.05.
    for level in (9.0, 10.0, 10.2, 10.4):
        for spread in (0.005, 0.02, 0.06):
            test = GateInput("t", rounds(10.0, spread), rounds(level, spread, offset=1))
            if not screen(test, family_size=1).flagged:
                assert one(test, alpha=0.05).status != "regression"


def test_confirmation_sizing() -> None:
    size = functools.partial(
        confirmation_rounds, baseline_rounds=20, room=15, effect=1.05, margin=0.01, level=2e-4
    )
    sizes = [size(spread=s) for s in (0.001, 0.005, 0.01, 0.02, 0.05)]
    assert sizes == sorted(sizes)  # noisier tests need more rounds
    assert sizes[0] == 3
    assert sizes[-1] == 15
    assert size(spread=None) == 15
    assert size(spread=0.0) == 3
    assert size(spread=0.01, room=1) == 1
    assert size(spread=0.01, room=0) == 0
    # A single stored round: the fresh rounds carry all the degrees of freedom.
    assert size(spread=0.001, baseline_rounds=1) >= 3


def test_confirmation_sizing_targets_the_requested_power() -> None:
    size = functools.partial(
        confirmation_rounds, spread=0.01, baseline_rounds=20, room=15, margin=0.01, level=2e-4
    )
    easy = size(effect=1.10)
    hard = size(effect=1.05)
    assert easy < hard
    assert size(effect=1.05, power=0.5) <= hard


# --- the suite total ---------------------------------------------------------------------------


def suite_of(factor: float, n: int = 20, spread: float = 0.02) -> list[GateInput]:
    return [
        GateInput(f"t{i}", rounds(1.0 + i, spread, 10), rounds((1.0 + i) * factor, spread, 5))
        for i in range(n)
    ]


def test_many_small_regressions_fail_the_suite_while_no_single_test_can() -> None:
    tests = [
        GateInput(f"t{i}", rounds(5.0 + i, 0.06, 5), rounds((5.0 + i) * 1.07, 0.06, 5, offset=i))
        for i in range(40)
    ]
    assert all(v.status != "regression" for v in decide(tests))
    check = suite_check(tests)
    assert check.status == "regression"
    assert check.ratio == pytest.approx(1.07, rel=0.01)
    assert check.tests == 40
    assert check.ci_low < check.ratio < check.ci_high
    assert check.current_j / check.baseline_j == pytest.approx(check.ratio)


def test_a_clean_suite_is_unchanged_and_an_improved_one_improves() -> None:
    assert suite_check(suite_of(1.0)).status == "unchanged"
    assert suite_check(suite_of(0.85)).status == "improvement"


def test_the_suite_weights_tests_by_their_energy() -> None:
    heavy = GateInput("heavy", rounds(100.0, 0.01, 10), rounds(120.0, 0.01))
    light = GateInput("light", rounds(1.0, 0.01, 10), rounds(0.5, 0.01))
    check = suite_check([heavy, light])
    assert check.ratio == pytest.approx(120.5 / 101.0, rel=1e-3)
    per_call = suite_check([heavy, GateInput("light", light.baseline, light.current, weight=200)])
    assert per_call.ratio == pytest.approx((120.0 + 100.0) / (100.0 + 200.0), rel=1e-3)


def test_the_suite_leaves_out_what_cannot_be_gated() -> None:
    tests = [*suite_of(1.0, n=3), GateInput("bad", (1.0,), (-2.0,))]
    assert suite_check(tests).tests == 3
    assert suite_check([GateInput("bad", (), (1.0,))]) == SuiteCheck(status="not_gated", tests=0)


def test_the_suite_without_any_spread_is_inconclusive() -> None:
    check = suite_check([GateInput("a", (10.0,), (13.0,)), GateInput("b", (5.0,), (6.0,))])
    assert check.status == "inconclusive"
    assert check.ratio == pytest.approx(19.0 / 15.0)


def test_the_suite_handles_single_rounds_and_histories() -> None:
    borrowed = suite_check([GateInput("a", rounds(10.0, 0.01), (10.0,))])
    assert borrowed.status == "unchanged"
    history = (10.0, 10.3, 9.8, 10.1, 9.9)
    runs = suite_check([GateInput("h", history, rounds(13.0, 0.01), baseline_kind="history")])
    assert runs.status == "regression"


def test_evaluate_puts_the_suite_in_the_family() -> None:
    tests = suite_of(1.0, n=3)
    outcome = evaluate(tests)
    assert not outcome.failed
    assert outcome.counts == {"unchanged": 3}
    assert outcome.suite.status == "unchanged"
    hot = GateInput("hot", BASE, rounds(12.0, 0.01))
    up = evaluate([*tests, hot])
    assert up.failed
    assert up.counts == {"unchanged": 3, "regression": 1}
    assert "over 5" in up.verdicts[3].reason  # 4 tests and the suite total
    assert "over 4" in decide([*tests, hot])[3].reason


def test_evaluate_fails_on_the_suite_alone() -> None:
    tests = [
        GateInput(f"t{i}", rounds(5.0 + i, 0.06, 5), rounds((5.0 + i) * 1.07, 0.06, 5, offset=i))
        for i in range(40)
    ]
    outcome = evaluate(tests)
    assert "regression" not in outcome.counts
    assert outcome.suite.status == "regression"
    assert outcome.failed


# --- session stability -------------------------------------------------------------------------


def test_a_steady_session_is_stable() -> None:
    s = session_stability([100.0, 100.2, 99.9], [100.5, 100.4], {"a": 0.01, "b": 0.02})
    assert not s.unstable
    assert s.reason == ""
    assert s.drift == pytest.approx(100.45 / 100.0 - 1)
    assert s.noisy_tests == ()


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
