"""The tests' one builder of run records, in code so every field is deliberate.

For reports: ``sample_record()`` is the golden-file record, a measured GPU run whose
gate failed, with each verdict, flags, benchmarks with rounds, a model family and
carbon figures; ``hostile_record()`` puts attacker-chosen strings everywhere a pull
request can put them (test ids, parametrize values, family and variant names,
metadata); ``scale_record(n)`` is a large deterministic run for sizes and timings.

For storage and the gate: ``window_test``, ``sample_benchmark`` and ``run_record`` build
records whose every number the test chose (exact J per unit, processes, calibration).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pytest_energy.record import (
    SCHEMA_VERSION,
    Benchmark,
    BudgetNote,
    Carbon,
    CarbonSummary,
    FamilyResult,
    GateSummary,
    Idle,
    Machine,
    Measurement,
    MeterRecord,
    Quality,
    QualityRatio,
    Round,
    RoundRole,
    RunRecord,
    Session,
    SuiteCheck,
    Summary,
    TestResult,
    Totals,
    VariantResult,
    VariantVerdict,
    Verdict,
)

#: Test ids chosen to break every renderer that forgets to escape.
HOSTILE_IDS = [
    "tests/test_xss.py::test_name[<script>alert(1)</script>]",
    "tests/test_xss.py::test_quotes['single' and \"double\"]",
    "tests/test_xss.py::test_pipes[a|b||c]",
    "tests/test_xss.py::test_backticks[`code` and ``more``]",
    "tests/test_xss.py::test_newline[line1\nline2\r\nline3]",
    "tests/test_xss.py::test_percent[100%25 %0A%]",
    "tests/test_xss.py::test_colons[a::b,c:d]",
    "tests/test_xss.py::test_close[</script><script>alert(2)</script>]",
    "tests/test_xss.py::test_unicode[Ünïcødé ✓ 能源 🔋 \u202eevil]",
    "tests/test_xss.py::test_markdown[*bold* _it_ [link](http://x) <b>&amp;</b> ~~s~~ @here #1]",
    "tests/test_xss.py::test_long[" + "x" * 5000 + "]",
    "tests/test_xss.py::test_comment[--><!-- <!--]",
]

CPU = "AMD EPYC 9R14 96-Core Processor"
GPU = "NVIDIA H100 80GB HBM3"


def carbon(joules: float, *, intensity: float = 342.06) -> Carbon:
    """CO2e for ``joules`` at a German grid intensity (Ember, 2024)."""
    return Carbon(
        grams=joules / 3_600_000 * intensity,
        intensity_g_per_kwh=intensity,
        pue=1.0,
        source="Ember",
        year=2024,
        region="DEU",
    )


def machine(method: str = "measured", *, cpu: str = CPU, gpu: str | None = GPU) -> Machine:
    meters = ["nvml", "rapl"] if method == "measured" else ["model"]
    return Machine(
        cpu_model=cpu,
        cpu_count=16,
        cpu_flags=["avx2", "avx512f", "avx512_vnni"],
        gpus=[{"name": gpu, "index": 0, "driver": "580.65.06"}] if gpu else [],
        kernel="6.8.0-1024-aws",
        os="Linux",
        python="3.11.7",
        plugin_version="0.1.0",
        pytest_version="9.2.0",
        method=method,
        meters=meters,
        hardware_class=f"{method}-amd-epyc-9r14-nvidia-h100-1a2b3c4d",
    )


def meter_records(method: str = "measured") -> list[MeterRecord]:
    if method == "modelled":
        return [
            MeterRecord(
                name="model",
                method="modelled",
                update_period_s=0.01,
                resolution_j=0.035,
                domains={"cpu": "process-cpu"},
                summary="model (modelled: process CPU time x 3.5 W per core)",
                details={"watts_per_core": 3.5, "watts_source": "Cloud Carbon Footprint"},
            )
        ]
    return [
        MeterRecord(
            name="nvml",
            method="measured",
            update_period_s=0.1,
            resolution_j=0.001,
            domains={"gpu:0": "gpu-board"},
            summary="NVML total energy counter, 1 GPU",
        ),
        MeterRecord(
            name="rapl",
            method="measured",
            update_period_s=0.001,
            resolution_j=0.0000153,
            domains={"package-0": "cpu-package", "dram-0": "dram"},
            summary="RAPL powercap, package + DRAM",
        ),
    ]


def carbon_summary() -> CarbonSummary:
    """``session.carbon`` as the carbon accounting writes it for ``--energy-region=DEU``."""
    provenance = "342.06 g/kWh, DEU, Ember 2024 (lifecycle)"
    return CarbonSummary(
        intensity_g_per_kwh=342.06,
        kind="region",
        region="DEU",
        name="Germany",
        requested=None,
        source="Ember",
        year=2024,
        as_of=None,
        basis="lifecycle",
        licence="CC BY 4.0",
        attribution=(
            "Ember, Yearly Electricity Data, CC BY 4.0, via The Green Web Foundation CO2.js"
        ),
        origin="--energy-region",
        provenance=provenance,
        pue=1.0,
        pue_label="IT energy only",
        pue_source="default: no data-centre overhead added",
        header=(
            f"carbon intensity: {provenance} [set by --energy-region: DEU, Germany]; "
            "PUE 1.0 (IT energy only)"
        ),
        line=provenance,
    )


def session(method: str = "measured", **changes: Any) -> Session:
    base = Session(
        started="2025-11-20T10:00:00+00:00",
        finished="2025-11-20T10:07:31+00:00",
        machine=machine(method),
        meters=meter_records(method),
        method=method,
        idle=Idle(seconds=2.0, watts={"gpu:0": 71.8, "package-0": 42.5}, total_watts=114.3),
        scope="call",
        totals=Totals(tests=6, joules=4210.0, seconds=40.2, watts=104.7),
        exit_status=1,
        commit="3f2a9c1b7d",
        branch="feature/int8",
        carbon=carbon_summary(),
    )
    return replace(base, **changes)


def measurement(
    joules: float, seconds: float, *, method: str = "measured", flags: list[str] | None = None
) -> Measurement:
    if method == "measured":
        split = {"gpu:0": joules * 0.8, "package-0": joules * 0.15, "dram-0": joules * 0.05}
        meters = ["nvml", "rapl"]
    else:
        split = {"cpu": joules}
        meters = ["model"]
    return Measurement(
        seconds=seconds,
        joules=split,
        total_j=joules,
        method=method,
        meters=meters,
        flags=list(flags or []),
    )


def verdict(
    status: str,
    ratio: float | None = None,
    spread: float = 0.03,
    baseline: float | None = None,
    reason: str = "",
) -> Verdict:
    if ratio is None:
        return Verdict(status=status, reason=reason)  # type: ignore[arg-type]
    return Verdict(
        status=status,  # type: ignore[arg-type]
        reason=reason,
        ratio=ratio,
        ci_low=ratio - spread,
        ci_high=ratio + spread,
        baseline=baseline,
        current=None if baseline is None else baseline * ratio,
        threshold=0.05,
        method="measured",
        p_value=0.001 if status in ("regression", "improvement") else 0.4,
    )


def plain_test(
    nodeid: str,
    joules: float,
    seconds: float,
    *,
    line: int | None = 10,
    status: str | None = None,
    ratio: float | None = None,
    method: str = "measured",
    flags: list[str] | None = None,
    outcome: str = "passed",
) -> TestResult:
    return TestResult(
        nodeid=nodeid,
        file=nodeid.split("::", 1)[0],
        line=line,
        outcome=outcome,  # type: ignore[arg-type]
        scope="call",
        measurement=measurement(joules, seconds, method=method, flags=flags),
        net_j=joules - 114.3 * seconds * 0.1,
        carbon=carbon(joules),
        verdict=None if status is None else verdict(status, ratio, baseline=joules / (ratio or 1)),
    )


def rounds(
    per_unit: float,
    units_per_call: float,
    calls: int,
    n: int,
    *,
    seed: int,
    role: RoundRole = "candidate",
    jitter: float = 0.02,
) -> list[Round]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        unit_j = per_unit * (1 + rng.uniform(-jitter, jitter))
        total = unit_j * units_per_call * calls
        out.append(
            Round(
                calls=calls,
                seconds=2.0 + rng.uniform(-0.05, 0.05),
                joules={"gpu:0": total},
                total_j=total,
                role=role,
            )
        )
    return out


def benchmark_test(
    nodeid: str,
    per_unit: float,
    *,
    unit: str = "sample",
    units_per_call: float = 64,
    calls: int = 40,
    n_rounds: int = 10,
    status: str | None = None,
    ratio: float | None = None,
    seed: int = 1,
    quality: list[Quality] | None = None,
    unstable: bool = False,
    with_reference: bool = False,
    metadata: dict[str, Any] | None = None,
    line: int | None = 20,
) -> TestResult:
    bench_rounds = rounds(
        per_unit, units_per_call, calls, n_rounds, seed=seed, jitter=0.12 if unstable else 0.02
    )
    if with_reference:
        bench_rounds += rounds(
            per_unit / (ratio or 0.5),
            units_per_call,
            calls,
            n_rounds,
            seed=seed + 100,
            role="reference",
        )
    per_round = [
        r.total_j / (r.calls * units_per_call) for r in bench_rounds if r.role == "candidate"
    ]
    mean = sum(per_round) / len(per_round)
    stdev = (sum((x - mean) ** 2 for x in per_round) / (len(per_round) - 1)) ** 0.5
    median = sorted(per_round)[len(per_round) // 2]
    unit_summary = Summary(
        n=len(per_round),
        median=median,
        mean=mean,
        stdev=stdev,
        cv=stdev / mean,
        ci_low=median * 0.98,
        ci_high=median * 1.02,
    )
    call_summary = Summary(
        n=len(per_round),
        median=median * units_per_call,
        mean=mean * units_per_call,
        stdev=stdev * units_per_call,
        cv=stdev / mean,
        ci_low=median * units_per_call * 0.98,
        ci_high=median * units_per_call * 1.02,
    )
    total_j = sum(r.total_j for r in bench_rounds)
    seconds = sum(r.seconds for r in bench_rounds)
    bench = Benchmark(
        unit=unit,
        units_per_call=units_per_call,
        calls_per_round=calls,
        warmup_calls=5,
        target_window_s=2.0,
        rounds=bench_rounds,
        per_call=call_summary,
        per_unit=unit_summary,
        unstable=unstable,
        quality=list(quality or []),
        metadata=dict(metadata or {}),
    )
    base = plain_test(nodeid, total_j, seconds, status=status, ratio=ratio, line=line)
    return replace(
        base,
        benchmark=bench,
        verdict=None if status is None else verdict(status, ratio, baseline=median / (ratio or 1)),
    )


def _accuracy(quality_ratio: float) -> dict[str, QualityRatio]:
    """Accuracy next to the reference's 0.912."""
    return {
        "accuracy": QualityRatio(
            value=0.912 * quality_ratio, higher_is_better=True, reference=0.912, ratio=quality_ratio
        )
    }


def family(
    name: str = "resnet18",
    *,
    variant_names: tuple[str, ...] = ("int8", "int4-pruned"),
    metadata: list[dict[str, Any]] | None = None,
) -> FamilyResult:
    meta = metadata or [
        {"quantization": "int8", "bit_width": 8, "params": "11.7M"},
        {"quantization": "int4", "bit_width": 4, "sparsity": 0.5, "params": "5.8M"},
    ]
    reference = VariantResult(
        family=name,
        reference="fp32",
        variant="fp32",
        unit="sample",
        method="measured",
        nodeid=f"tests/test_models.py::test_{name}[fp32]",
        energy_per_unit=0.84,
        energy_ratio=1.0,
        ci_low=1.0,
        ci_high=1.0,
        quality=_accuracy(1.0),
        verdict="reference",
        on_frontier=True,
        metadata={"quantization": "none", "bit_width": 32, "params": "11.7M"},
        line="fp32: reference",
    )
    variants = [reference]
    ratios: list[tuple[float, float, VariantVerdict, bool]] = [
        (0.47, 0.995, "pass", True),
        (0.31, 0.962, "fail", True),
    ]
    for i, vname in enumerate(variant_names):
        energy_ratio, quality_ratio, verdict_word, frontier = ratios[i % len(ratios)]
        variants.append(
            replace(
                reference,
                variant=vname,
                nodeid=f"tests/test_models.py::test_{name}[{vname}]",
                energy_per_unit=0.84 * energy_ratio,
                energy_ratio=energy_ratio,
                ci_low=energy_ratio - 0.03,
                ci_high=energy_ratio + 0.04,
                quality=_accuracy(quality_ratio),
                limits={"max_energy_ratio": 0.6, "min_quality_ratio": 0.99},
                verdict=verdict_word,
                on_frontier=frontier,
                metadata=meta[i % len(meta)],
                line=f"{vname}: {energy_ratio:.2f}x of fp32, accuracy {quality_ratio:.3f}x",
            )
        )
    return FamilyResult(
        family=name,
        reference="fp32",
        unit="sample",
        method="measured",
        hardware_class="measured-amd-epyc-9r14-nvidia-h100-1a2b3c4d",
        variants=variants,
    )


def gate(failed: bool = True, **changes: Any) -> GateSummary:
    summary = GateSummary(
        baseline=".energy/baselines/main.json",
        threshold=0.05,
        margin=0.01,
        alpha=0.05,
        method="measured",
        counts={"regression": 2, "improvement": 1, "unchanged": 2, "inconclusive": 1},
        suite=SuiteCheck(
            status="regression" if failed else "unchanged",
            ratio=1.04,
            ci_low=1.01,
            ci_high=1.07,
            baseline_j=4000.0,
            current_j=4160.0,
            tests=6,
        ),
        unstable=False,
        failed=failed,
    )
    return replace(summary, **changes)


def _budget(name: str, limit: float, value: float) -> BudgetNote:
    """A ``fail`` budget of the energy marker, judged on one call's window."""
    return BudgetNote(
        budget=name,
        limit=limit,
        value=value,
        low=None,
        high=None,
        exceeded=value > limit,
        action="fail",
        method="measured",
        meters="nvml, rapl",
        unit="call",
    )


def sample_tests() -> list[TestResult]:
    acc = [Quality("accuracy", 0.912)]
    return [
        plain_test(
            "tests/test_io.py::test_load_dataset",
            412.5,
            3.9,
            line=12,
            status="regression",
            ratio=1.23,
        ),
        benchmark_test(
            "tests/test_models.py::test_resnet18[fp32]",
            0.84,
            quality=acc,
            status="unchanged",
            ratio=1.01,
            seed=2,
            line=40,
        ),
        benchmark_test(
            "tests/test_models.py::test_resnet18[int8]",
            0.395,
            seed=3,
            quality=[Quality("accuracy", 0.907)],
            status="regression",
            ratio=1.12,
            with_reference=True,
            line=40,
            metadata={"quantization": "int8", "bit_width": 8},
        ),
        benchmark_test(
            "tests/test_models.py::test_resnet18[int4-pruned]",
            0.26,
            seed=4,
            quality=[Quality("accuracy", 0.877)],
            status="improvement",
            ratio=0.81,
            with_reference=True,
            line=40,
            unstable=True,
        ),
        plain_test(
            "tests/test_train.py::test_one_epoch",
            2950.0,
            28.7,
            line=33,
            status="inconclusive",
            ratio=1.04,
            flags=["gpu_shared"],
        ),
        plain_test(
            "tests/test_train.py::test_tokenize",
            0.0042,
            0.012,
            line=51,
            status="not_gated",
            flags=["below_resolution"],
        ),
        replace(
            plain_test("tests/test_train.py::test_new_feature", 18.3, 0.4, line=70, status=None),
            budget=[_budget("max_joules", 15.0, 18.3), _budget("max_watts", 100.0, 45.8)],
        ),
        TestResult(
            nodeid="tests/test_train.py::test_broken",
            file="tests/test_train.py",
            line=80,
            outcome="error",
            scope="call",
            measurement=None,
            error="not measured: meter nvml stopped answering",
        ),
    ]


def sample_record() -> RunRecord:
    """A measured run whose gate failed on two regressions and one variant."""
    return RunRecord(
        schema_version=SCHEMA_VERSION,
        session=session(notices=["test_one_epoch shared the GPU with another process"]),
        tests=sample_tests(),
        gate=gate(failed=True),
        families=[family()],
    )


def passed_record() -> RunRecord:
    tests = [
        t
        if t.verdict is None or t.verdict.status != "regression"
        else replace(t, verdict=verdict("unchanged", 1.0, baseline=1.0))
        for t in sample_tests()
    ]
    fam = family(variant_names=("int8",))
    return RunRecord(
        schema_version=SCHEMA_VERSION,
        session=session(exit_status=0),
        tests=tests,
        gate=gate(failed=False),
        families=[fam],
    )


def ungated_record(method: str = "measured") -> RunRecord:
    """No baseline: every figure reported, nothing compared."""
    tests = [replace(t, verdict=None) for t in sample_tests()]
    if method == "modelled":
        tests = [
            t
            if t.measurement is None
            else replace(
                t,
                measurement=measurement(
                    t.measurement.total_j / 20, t.measurement.seconds, method="modelled"
                ),
            )
            for t in tests
        ]
    return RunRecord(
        schema_version=SCHEMA_VERSION,
        session=session(
            method,
            exit_status=0,
            commit=None,
            branch=None,
            idle=None if method == "modelled" else session().idle,
        ),
        tests=tests,
        gate=None,
        families=[],
    )


def hostile_record() -> RunRecord:
    """Attacker-chosen strings in every field a pull request controls."""
    tests: list[TestResult] = []
    for i, nodeid in enumerate(HOSTILE_IDS):
        if i % 3 == 0:
            tests.append(
                benchmark_test(
                    nodeid,
                    0.5 + i / 10,
                    unit="<b>unit</b>|x",
                    seed=i,
                    status="regression",
                    ratio=1.2 + i / 100,
                    line=i + 1,
                )
            )
        else:
            status = "inconclusive" if i % 3 == 1 else "improvement"
            ratio = 1.0 + i / 100 if status == "inconclusive" else 0.9 - i / 100
            tests.append(plain_test(nodeid, 10.0 + i, 1.0, status=status, ratio=ratio, line=i + 1))
    fam = family(
        "<img src=x onerror=alert(3)>|fam",
        variant_names=("<script>alert(4)</script>", "a|b`c`\nd"),
        metadata=[{"quantization": "<i>q</i>", "note": "</script>"}, {"bits": "|4|"}],
    )
    hostile_machine = replace(
        machine(),
        cpu_model="<script>alert('cpu')</script> | `x`",
        gpus=[{"name": "</script><b>gpu</b>"}],
    )
    return RunRecord(
        schema_version=SCHEMA_VERSION,
        session=session(
            machine=hostile_machine,
            branch="evil<script>|`b`",
            commit="<img src=x>",
            notices=["<script>alert('notice')</script>"],
        ),
        tests=tests,
        gate=gate(failed=True, baseline="<b>base</b>|x"),
        families=[fam],
    )


def scale_record(n: int = 5000, *, seed: int = 7, benchmark_every: int = 25) -> RunRecord:
    """``n`` tests: mostly plain ones, every ``benchmark_every``-th a benchmark."""
    rng = random.Random(seed)
    statuses = (
        ["unchanged"] * 80
        + ["regression"] * 3
        + ["improvement"] * 5
        + ["inconclusive"] * 7
        + ["not_gated"] * 5
    )
    tests: list[TestResult] = []
    for i in range(n):
        module = f"tests/pkg{i % 40:02d}/test_module{i % 97:02d}.py"
        nodeid = f"{module}::test_case[{i}-param-{rng.randrange(10**6)}]"
        status = rng.choice(statuses)
        ratio = {"regression": 1.1, "improvement": 0.9}.get(status, 1.0) * rng.uniform(0.97, 1.03)
        if i % benchmark_every == 0:
            tests.append(
                benchmark_test(
                    nodeid, rng.uniform(0.01, 2.0), seed=i, status=status, ratio=ratio, n_rounds=20
                )
            )
        else:
            tests.append(
                plain_test(
                    nodeid,
                    rng.uniform(0.5, 500),
                    rng.uniform(0.1, 5),
                    status=status,
                    ratio=ratio,
                    line=i % 400 + 1,
                )
            )
    fam = family()
    return RunRecord(
        schema_version=SCHEMA_VERSION,
        session=session(),
        tests=tests,
        gate=gate(failed=True),
        families=[fam],
    )


def scale_history(record: RunRecord, points: int = 20, *, seed: int = 11) -> dict[str, list[float]]:
    """A history series for every measured test: ``points`` earlier figures."""
    rng = random.Random(seed)
    series = {}
    for test in record.tests:
        if test.measurement is None:
            continue
        value = test.benchmark.per_unit.median if test.benchmark else test.measurement.total_j
        series[test.nodeid] = [value * rng.uniform(0.9, 1.1) for _ in range(points)]
    return series


# --- exact records: every number chosen by the test (storage and gate tests) ------------------


def window_test(
    nodeid: str,
    joules: float,
    *,
    seconds: float = 2.0,
    outcome: str = "passed",
    flags: Sequence[str] = (),
    verdict: Verdict | None = None,
) -> TestResult:
    """A plain test whose one window on ``gpu:0`` measured exactly ``joules``."""
    return TestResult(
        nodeid=nodeid,
        file=nodeid.split("::", maxsplit=1)[0],
        line=1,
        outcome=outcome,  # type: ignore[arg-type]
        scope="call",
        measurement=Measurement(
            seconds, {"gpu:0": joules}, joules, "measured", ["nvml"], list(flags)
        ),
        verdict=verdict,
    )


def exact_summary(values: Sequence[float]) -> Summary:
    median = statistics.median(values)
    mean = statistics.fmean(values)
    stdev = statistics.stdev(values) if len(values) > 1 else 0.0
    return Summary(len(values), median, mean, stdev, stdev / mean, min(values), max(values))


def sample_benchmark(
    nodeid: str,
    per_unit: Sequence[float],
    *,
    unit: str = "sample",
    units_per_call: float = 8.0,
    calls: int = 10,
    variant: VariantResult | None = None,
    quality: Sequence[Quality] = (),
    reference_rounds: Sequence[float] = (),
    calibration_j: float | None = None,
    method: str = "measured",
    processes: int = 1,
) -> TestResult:
    """A benchmark whose candidate rounds measured exactly ``per_unit`` J per unit, in order,
    in each of ``processes`` processes."""
    domain, meters = ("gpu:0", ["nvml"]) if method == "measured" else ("cpu", ["model"])

    def one(j: float, role: RoundRole, process: int = 0) -> Round:
        total = j * calls * units_per_call
        return Round(
            calls,
            1.0,
            {domain: total},
            total,
            role=role,
            calibration_j=calibration_j,
            process=process,
        )

    rounds = [one(j, "candidate", k) for k in range(processes) for j in per_unit] + [
        one(j, "reference") for j in reference_rounds
    ]
    normalized = [j / calibration_j for j in per_unit] if calibration_j else []
    total = sum(r.total_j for r in rounds)
    return TestResult(
        nodeid=nodeid,
        file=nodeid.split("::", maxsplit=1)[0],
        line=1,
        outcome="passed",
        scope="call",
        measurement=Measurement(float(len(rounds)), {domain: total}, total, method, meters),
        benchmark=Benchmark(
            unit=unit,
            units_per_call=units_per_call,
            calls_per_round=calls,
            warmup_calls=2,
            target_window_s=1.0,
            rounds=rounds,
            per_call=exact_summary([j * units_per_call for j in per_unit]),
            per_unit=exact_summary(per_unit),
            unstable=False,
            normalized=exact_summary(normalized) if normalized else None,
            quality=list(quality),
        ),
        variant=variant,
    )


def run_record(
    tests: Sequence[TestResult],
    *,
    method: str = "measured",
    hardware_class: str = "measured-xeon-8480-h100-00000000",
    cpu: str = "Intel Xeon Platinum 8480",
    gpus: Sequence[dict[str, Any]] = ({"name": GPU, "driver": "580.65"},),
    started: str = "2025-03-01T12:00:00+00:00",
    finished: str | None = "2025-03-01T12:00:05+00:00",
    commit: str | None = "1a2b3c4",
    branch: str | None = "main",
    interrupted: bool = False,
    exit_status: int | None = 0,
) -> RunRecord:
    """A run of ``tests`` on one machine, with nothing but what the test chose."""
    meters = ["nvml"] if method == "measured" else ["model"]
    machine = Machine(
        cpu_model=cpu,
        cpu_count=16,
        cpu_flags=["avx2"],
        gpus=[dict(g) for g in gpus],
        kernel="6.8.0",
        os="Linux",
        python="3.11.7",
        plugin_version="0.1.0",
        pytest_version="9.0.0",
        method=method,
        meters=meters,
        hardware_class=hardware_class,
    )
    measured = [t.measurement for t in tests if t.measurement is not None]
    joules = sum(m.total_j for m in measured)
    seconds = sum(m.seconds for m in measured)
    session = Session(
        started=started,
        finished=finished,
        machine=machine,
        meters=[],
        method=method,
        idle=None,
        scope="call",
        totals=Totals(len(measured), joules, seconds, joules / seconds if seconds else 0.0),
        exit_status=exit_status,
        interrupted=interrupted,
        commit=commit,
        branch=branch,
    )
    return RunRecord(schema_version=SCHEMA_VERSION, session=session, tests=list(tests))
