"""Model families: compressed variants judged against their reference, energy and quality."""

from __future__ import annotations

import json

import pytest
import traces
from inner_runs import by_name

FAMILY = """
import pytest

QUALITY = {quality}

@pytest.mark.parametrize("variant", {variants})
@pytest.mark.energy(family="mlp", reference="fp32", {limits})
def test_model(energy_benchmark, variant):
    energy_benchmark.pedantic(lambda: None, rounds=5, calls_per_round=1, units=10,
                              unit="sample")
    {after}
"""


def interleaved(reference: list[float], variant: list[float]) -> list[float]:
    """Window energies in the order the plugin reads them: R V, V R, R V, ..."""
    out: list[float] = []
    for i, (r, v) in enumerate(zip(reference, variant, strict=True)):
        out += [r, v] if i % 2 == 0 else [v, r]
    return out


def family_trace(reference: list[float], *variants: list[float]) -> dict:
    steps: list[float | str] = ["edge", *reference, "edge"]
    for variant in variants:
        steps += ["edge", *interleaved(reference, variant), "edge"]
    return traces.script(*steps)


def run_family(
    pytester,
    replay,
    reference,
    variants: dict[str, list[float]],
    *,
    limits="",
    quality=None,
    after="",
    args=(),
):
    names = ["fp32", *variants]
    quality = quality or {}
    if quality and not after:
        after = "energy_benchmark.quality(accuracy=QUALITY[variant])"
    path = replay(family_trace(reference, *variants.values()))
    pytester.makepyfile(
        FAMILY.format(variants=names, limits=limits, quality=quality, after=after or "pass")
    )
    return pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-json=results.json",
        "--energy-max-rounds=5",
        "-W",
        "always",
        *args,
    )


REF = [10.0, 10.1, 9.9, 10.05, 9.95]


def test_ratio_interval_and_interleaving_on_a_known_trace(
    pytester: pytest.Pytester, replay, results
) -> None:
    int8 = [4.7, 4.75, 4.66, 4.72, 4.69]
    result = run_family(
        pytester,
        replay,
        REF,
        {"int8": int8},
        limits="max_energy_ratio=0.6, min_quality_ratio=0.99",
        quality={"fp32": 0.978, "int8": 0.975},
    )
    result.assert_outcomes(passed=2)
    tests = by_name(results())
    rounds = tests["test_model[int8]"]["benchmark"]["rounds"]
    assert [r["role"] for r in rounds] == [
        "reference",
        "candidate",
        "candidate",
        "reference",
        "reference",
        "candidate",
        "candidate",
        "reference",
        "reference",
        "candidate",
    ]
    record = tests["test_model[int8]"]["variant"]
    expected = sum(v / r for v, r in zip(int8, REF, strict=True)) / 5
    assert record["energy_ratio"] == pytest.approx(expected, rel=0.002)
    assert record["ci_low"] < record["energy_ratio"] < record["ci_high"] < 0.6
    assert record["verdict"] == "pass"
    assert record["quality"]["accuracy"]["ratio"] == pytest.approx(0.975 / 0.978)
    assert record["line"].startswith("int8: 0.47x [0.4")
    assert record["line"].endswith(
        "of fp32 energy per sample (limit 0.60x), 99.7% of its accuracy (limit 99%)"
    )
    (family,) = results()["families"]
    assert family["family"] == "mlp"
    assert family["reference"] == "fp32"
    assert [v["variant"] for v in family["variants"]] == ["fp32", "int8"]
    assert all(v["on_frontier"] for v in family["variants"])  # cheaper vs. more accurate
    result.stdout.fnmatch_lines(
        [
            "model family mlp (reference fp32, energy per sample):",
            "*variant*energy ratio*quality*frontier*verdict",
            "*fp32*1.00x*100.0%*yes*reference",
            "*int8*0.47x*99.7%*yes*pass",
        ]
    )


def test_energy_over_the_limit_fails_the_variant(pytester: pytest.Pytester, replay) -> None:
    slow = [8.0, 8.1, 7.9, 8.05, 7.95]
    result = run_family(pytester, replay, REF, {"pruned": slow}, limits="max_energy_ratio=0.6")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*model variant check failed: pruned: 0.80x ?0.80, 0.80? of fp32 energy per sample "
            "(limit 0.60x)"
        ]
    )


def test_a_ratio_whose_interval_straddles_the_limit_is_inconclusive(
    pytester: pytest.Pytester, replay, results
) -> None:
    close = [5.5, 6.6, 5.7, 6.4, 6.0]
    result = run_family(pytester, replay, REF, {"int8": close}, limits="max_energy_ratio=0.6")
    # Reported, never raised as a warning: suites running with -W error must not fail on it.
    result.assert_outcomes(passed=2, warnings=0)
    record = by_name(results())["test_model[int8]"]["variant"]
    assert record["verdict"] == "inconclusive"
    assert record["ci_low"] <= 0.6 < record["ci_high"]
    result.stdout.fnmatch_lines(["  inconclusive: int8: 0.60x*"])


def test_quality_below_its_limit_fails(pytester: pytest.Pytester, replay) -> None:
    cheap = [3.0, 3.0, 3.0, 3.0, 3.0]
    result = run_family(
        pytester,
        replay,
        REF,
        {"distilled": cheap},
        limits="max_energy_ratio=0.6, min_quality_ratio=0.99",
        quality={"fp32": 0.98, "distilled": 0.93},
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*model variant check failed: distilled: 0.30x*94.9% of its accuracy (limit 99%)"]
    )


def test_lower_is_better_quality_is_inverted(pytester: pytest.Pytester, replay, results) -> None:
    after = (
        'energy_benchmark.quality("perplexity", {"fp32": 10.0, "int4": 10.5}[variant], '
        "higher_is_better=False)"
    )
    result = run_family(
        pytester,
        replay,
        REF,
        {"int4": [4.0] * 5},
        limits="max_energy_ratio=0.6, min_quality_ratio=0.9",
        after=after,
    )
    result.assert_outcomes(passed=2)
    quality = by_name(results())["test_model[int4]"]["variant"]["quality"]["perplexity"]
    assert quality["ratio"] == pytest.approx(10.0 / 10.5)
    assert quality["higher_is_better"] is False


def test_per_variant_limits(pytester: pytest.Pytester, replay, results) -> None:
    # masked costs the same as fp32 (masks leave dense compute unchanged): its own limit.
    result = run_family(
        pytester,
        replay,
        REF,
        {"int8": [4.7] * 5, "masked": [10.0, 10.1, 9.9, 10.05, 9.95]},
        limits="max_energy_ratio=0.6, variants={'masked': {'max_energy_ratio': 1.1}}",
    )
    result.assert_outcomes(passed=3)
    tests = by_name(results())
    assert tests["test_model[masked]"]["variant"]["limits"] == {"max_energy_ratio": 1.1}
    assert tests["test_model[int8]"]["variant"]["limits"] == {"max_energy_ratio": 0.6}


def test_param_marks_override_family_limits(pytester: pytest.Pytester, replay, results) -> None:
    path = replay(family_trace(REF, [7.0] * 5))
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("variant", [
            "fp32",
            pytest.param("pruned", marks=pytest.mark.energy(max_energy_ratio=0.75)),
        ])
        @pytest.mark.energy(family="mlp", reference="fp32", max_energy_ratio=0.6)
        def test_model(energy_benchmark, variant):
            energy_benchmark.pedantic(lambda: None, rounds=5, units=10, unit="sample")
        """
    )
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-json=results.json",
    ).assert_outcomes(passed=2)
    record = by_name(results())["test_model[pruned]"]["variant"]
    assert record["limits"] == {"max_energy_ratio": 0.75}
    assert record["verdict"] == "pass"


def test_variants_on_different_hardware_are_not_compared(
    pytester: pytest.Pytester, replay, results
) -> None:
    after = 'energy_benchmark.metadata(device={"fp32": "cuda", "int8": "cpu"}[variant])'
    result = run_family(
        pytester, replay, REF, {"int8": [4.7] * 5}, limits="max_energy_ratio=0.6", after=after
    )
    result.assert_outcomes(passed=2)
    record = by_name(results())["test_model[int8]"]["variant"]
    assert record["verdict"] == "inconclusive"
    assert record["line"] == (
        "int8: not compared with fp32: device differs ('cpu' vs the reference's 'cuda')"
    )


def test_reference_runs_first_whatever_the_order(
    pytester: pytest.Pytester, replay, results
) -> None:
    path = replay(family_trace(REF, [4.7] * 5))
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("variant", ["int8", "fp32"])
        @pytest.mark.energy(family="mlp", reference="fp32", max_energy_ratio=0.6)
        def test_model(energy_benchmark, variant):
            energy_benchmark.pedantic(lambda: None, rounds=5, units=10, unit="sample")
        """
    )
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-json=results.json",
    ).assert_outcomes(passed=2)
    order = [t["nodeid"] for t in results()["tests"]]
    assert order[0].endswith("[fp32]")


def test_modelled_ratios_are_judged_and_labelled(
    pytester: pytest.Pytester, replay, results
) -> None:
    steps = ["edge", *REF, "edge", "edge", *interleaved(REF, [4.7] * 5), "edge"]
    path = replay(traces.script(*steps, method="modelled"))
    pytester.makepyfile(
        FAMILY.format(
            variants=["fp32", "int8"], limits="max_energy_ratio=0.6", quality={}, after="pass"
        )
    )
    result = pytester.runpytest(
        "--energy", f"--energy-meter=replay:{path}", "--energy-json=results.json"
    )
    result.assert_outcomes(passed=2)
    record = by_name(results())["test_model[int8]"]["variant"]
    assert record["verdict"] == "pass"
    assert record["line"].endswith("(modelled)")
    result.stdout.fnmatch_lines(["*ratios of modelled numbers (CPU work)*"])


@pytest.mark.parametrize(
    ("variants", "limits", "args", "message"),
    [
        (
            ["fp32", "int8"],
            "max_energy_ratio=0",
            (),
            "*max_energy_ratio must be greater than 0, got 0",
        ),
        (["fp32", "int8"], "max_energy_ratio=-0.5", (), "*greater than 0*"),
        (
            ["fp16", "int8"],
            "max_energy_ratio=0.6",
            (),
            "*family 'mlp': reference variant 'fp32' is not among the selected tests (selected "
            "variants: fp16, int8)*",
        ),
        (
            ["fp32", "int8"],
            "max_energy_ratio=0.6",
            ("-k", "int8"),
            "*reference variant 'fp32' is not among the selected tests*",
        ),
        (
            ["fp32", "int8"],
            "variants={'int8': {'max_ratio': 1}}",
            (),
            "*unknown keys ?'max_ratio'?; valid: max_energy_ratio, min_quality_ratio",
        ),
    ],
)
def test_bad_family_markers_are_usage_errors(
    pytester: pytest.Pytester, variants, limits, args, message
) -> None:
    pytester.makepyfile(FAMILY.format(variants=variants, limits=limits, quality={}, after="pass"))
    result = pytester.runpytest("--energy", "--energy-meter=model", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_missing_variant_parameter_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.energy(family="mlp", reference="fp32")
        def test_model(energy_benchmark):
            pass
        """
    )
    result = pytester.runpytest("--energy", "--energy-meter=model")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*family 'mlp' tests need a 'variant' parameter*"])


def test_min_quality_without_a_quality_call_fails(pytester: pytest.Pytester, replay) -> None:
    result = run_family(
        pytester,
        replay,
        REF,
        {"int8": [4.7] * 5},
        limits="max_energy_ratio=0.6, min_quality_ratio=0.99",
    )
    # Judged right after the body, like an assertion: the variant's own test fails.
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*min_quality_ratio is set for family 'mlp' but the test recorded no quality*"]
    )


def test_results_carry_family_metadata(pytester: pytest.Pytester, replay, results) -> None:
    after = "energy_benchmark.metadata(scheme='dynamic', bits=8, batch_size=64)"
    run_family(
        pytester, replay, REF, {"int8": [4.7] * 5}, limits="max_energy_ratio=0.6", after=after
    ).assert_outcomes(passed=2)
    data = results()
    record = by_name(data)["test_model[int8]"]
    assert record["benchmark"]["metadata"]["bits"] == 8
    assert record["variant"]["metadata"]["scheme"] == "dynamic"
    json.dumps(data)  # strict JSON all the way down


def test_a_variant_that_regresses_against_its_own_baseline_fails_the_gate(
    pytester: pytest.Pytester, replay, results
) -> None:
    """Stored per variant, gated like any test: int8 got 30 % more expensive."""
    int8 = [4.7, 4.75, 4.66, 4.72, 4.69]
    run_family(
        pytester,
        replay,
        REF,
        {"int8": int8},
        limits="max_energy_ratio=0.8",
        args=("--energy-save-baseline",),
    ).assert_outcomes(passed=2)
    baseline = json.loads((pytester.path / ".energy" / "baselines" / "default.json").read_text())
    (stored,) = baseline["classes"].values()
    (entry,) = [e for nodeid, e in stored["tests"].items() if nodeid.endswith("[int8]")]
    assert (entry["family"], entry["variant"]) == ("mlp", "int8")
    heavier = [v * 1.3 for v in int8]
    result = run_family(
        pytester,
        replay,
        REF,
        {"int8": heavier},
        limits="max_energy_ratio=0.8",
        args=("--energy-compare", "--energy-calibration=off"),
    )
    result.assert_outcomes(passed=2)  # 0.61x still meets the family's 0.8x limit ...
    verdicts = {name: t["verdict"]["status"] for name, t in by_name(results()).items()}
    assert verdicts["test_model[int8]"] == "regression"  # ... but not its own baseline
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_under_xdist_variants_are_not_judged_and_do_not_fail(
    pytester: pytest.Pytester, replay, results
) -> None:
    """The reference may run on another worker, and every window holds other tests' energy."""
    path = replay(traces.trace([0.0, 1.0], cycle=True, period=0.001))
    pytester.makepyfile(
        FAMILY.format(
            variants=["fp32", "int8", "pruned"],
            limits="max_energy_ratio=0.6",
            quality={},
            after="pass",
        )
    )
    result = pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-json=results.json",
        "-n",
        "2",
        "-p",
        "xdist",
    )
    result.assert_outcomes(passed=3)
    variants = {t["nodeid"].split("[")[1][:-1]: t["variant"] for t in results()["tests"]}
    assert variants["fp32"]["verdict"] == "reference"
    for name in ("int8", "pruned"):
        assert variants[name]["verdict"] == "not_gated"
        assert (
            variants[name]["line"]
            == f"{name}: not judged: concurrent: tests ran in parallel (pytest-xdist)"
        )
