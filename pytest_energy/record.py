"""The run record: every part of a result as a frozen dataclass, and its JSON form.

Reports, the gate's ``compare`` command and the GitHub integration read results
files, never the meters. Every energy figure travels with its ``method``
(``measured`` or ``modelled``) and the meters that produced it.

The dataclasses mirror the JSON one to one (:mod:`.record_json` converts
them, checking every field's type on the way in). ``schema/results.schema.json`` describes the
same shape for other tools (:mod:`pytest_energy.record_schema` derives it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any, Literal

from pytest_energy.frozen import frozen
from pytest_energy.record_json import ResultsError, from_plain, read_results_data, to_plain
from pytest_energy.record_verdicts import (
    ABRun,
    ABTest,
    BudgetNote,
    FamilyResult,
    GateSummary,
    Gating,
    QualityRatio,
    SuiteCheck,
    VariantResult,
    VariantVerdict,
    Verdict,
    VerdictStatus,
)

__all__ = [
    "FLAGS",
    "SCHEMA_VERSION",
    "ABRun",
    "ABTest",
    "Benchmark",
    "BudgetNote",
    "Calibration",
    "Carbon",
    "CarbonSummary",
    "EmbodiedSummary",
    "FamilyResult",
    "GateSummary",
    "Gating",
    "Idle",
    "Machine",
    "Measurement",
    "MeterRecord",
    "Quality",
    "QualityRatio",
    "ResultsError",
    "Round",
    "RunRecord",
    "Session",
    "SuiteCheck",
    "Summary",
    "TestResult",
    "Totals",
    "VariantResult",
    "VariantVerdict",
    "Verdict",
    "VerdictStatus",
    "from_plain",
    "load",
    "to_plain",
]

SCHEMA_VERSION = 1

#: Flags a measurement can carry. Each one taints the number in a documented way.
FLAGS = {
    "below_resolution": "window shorter than 10 counter periods: cannot resolve +-5%",
    "counter_stalled": "a counter did not advance during a window long enough to see ticks",
    "wrapped": "a counter wrapped around during the window (corrected)",
    "gpu_shared": "another process used the GPU during the window",
    "concurrent": "tests ran in parallel (pytest-xdist): counters are machine-wide",
    "meter_failed": "a meter stopped answering; the window could not be closed",
    "unstable": "round-to-round variation exceeded the configured limit",
    "uncounted": "a modelled meter priced nothing in the window (the ops meter saw no torch "
    "operation): its energy is unknown, not zero",
}

Outcome = Literal["passed", "failed", "skipped", "error"]
#: What a benchmark round measured: the benchmarked function ("candidate"), its
#: family's reference interleaved with it ("reference"), a fresh process's rounds
#: the gate asked for ("confirm"), or in an A/B comparison the base commit's code
#: interleaved with the head's ("base"; the head's rounds are "candidate").
RoundRole = Literal["candidate", "reference", "confirm", "base"]


# -- the machine and the meters -------------------------------------------------------


@frozen
class MeterRecord:
    """A meter as recorded in the run: name, method and what it covers."""

    name: str
    method: str
    update_period_s: float
    resolution_j: float
    domains: dict[str, str]
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@frozen
class Machine:
    """The fingerprint that decides which numbers may be compared."""

    cpu_model: str
    cpu_count: int
    cpu_flags: list[str]
    #: GPU facts as the NVML meter read them (name, uuid, driver, power limit, ...).
    gpus: list[dict[str, Any]]
    kernel: str
    os: str
    python: str
    plugin_version: str
    pytest_version: str
    method: str
    meters: list[str]
    hardware_class: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gpu_names(self) -> list[str]:
        return [str(gpu.get("name", "GPU")) for gpu in self.gpus]


@frozen
class Idle:
    """Idle power, measured in a short bracket before (and after) the tests."""

    seconds: float
    watts: dict[str, float]
    total_watts: float
    #: "before" or "after" the tests. A GPU idles higher once this process has a CUDA
    #: context (~124 W against ~79 W on an H200), so the bracket taken in the same
    #: context state as the tests is the one net figures use.
    phase: str = "before"


# -- measurements ---------------------------------------------------------------------


@frozen
class Measurement:
    """One energy window: joules per domain and in total, over ``seconds``."""

    seconds: float
    joules: dict[str, float]
    total_j: float
    method: str
    meters: list[str]
    flags: list[str] = field(default_factory=list)

    @property
    def watts(self) -> float:
        return self.total_j / self.seconds if self.seconds > 0 else 0.0


@frozen
class Summary:
    """Location and spread of a sample (per call or per unit), with a 95% interval."""

    n: int
    median: float
    mean: float
    stdev: float
    cv: float
    ci_low: float
    ci_high: float


@frozen
class Round:
    """One benchmark round: its own energy window around ``calls`` calls."""

    calls: int
    seconds: float
    joules: dict[str, float]
    total_j: float
    role: RoundRole = "candidate"
    flags: list[str] = field(default_factory=list)
    #: Joules per call of the calibration workload interleaved with this round, when
    #: the session normalizes (the model meter on a shared VM): the round's J per
    #: unit divided by it cancels changes of CPU speed between and within runs.
    calibration_j: float | None = None
    #: Which process measured the round: 0 is the session's own, 1, 2, ... fresh
    #: processes started to replicate it (the unit of replication, see docs/gate.md).
    process: int = 0

    def per_unit(self, units_per_call: float) -> float:
        """Joules per unit of work (NaN for a round without calls)."""
        if self.calls <= 0 or units_per_call <= 0:
            return math.nan
        return self.total_j / (self.calls * units_per_call)

    def normalized(self, units_per_call: float) -> float | None:
        """J per unit over the calibration workload's J per call, when it was measured."""
        if not self.calibration_j:
            return None
        return self.per_unit(units_per_call) / self.calibration_j


@frozen
class Quality:
    """A named quality metric recorded with the energy, e.g. accuracy."""

    name: str
    value: float
    higher_is_better: bool = True


@frozen
class Benchmark:
    """What ``energy_benchmark`` measured: calibrated rounds and per-unit statistics."""

    unit: str
    units_per_call: float
    calls_per_round: int
    warmup_calls: int
    target_window_s: float
    rounds: list[Round]
    per_call: Summary
    per_unit: Summary
    unstable: bool
    confirmation_rounds: int = 0
    pedantic: bool = False
    #: Per unit of work over the interleaved calibration workload's J per call
    #: (dimensionless), when the session normalizes; what the gate compares then.
    normalized: Summary | None = None
    flags: list[str] = field(default_factory=list)
    quality: list[Quality] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def rounds_of(self, *roles: RoundRole) -> list[Round]:
        """This benchmark's rounds in the given roles (all of its own when none given)."""
        wanted = roles or ("candidate", "confirm")
        return [r for r in self.rounds if r.role in wanted]

    def per_unit_samples(self, *roles: RoundRole) -> list[float]:
        """J per unit of each round in ``roles`` (default: the candidate rounds), finite only."""
        values = [
            r.per_unit(self.units_per_call) for r in self.rounds_of(*(roles or ("candidate",)))
        ]
        return [v for v in values if math.isfinite(v)]

    def by_process(
        self, role: RoundRole = "candidate", *, normalized: bool = False
    ) -> list[list[float]]:
        """The values of ``role`` rounds, one list per process in process order.

        Values are J per unit, or J per unit over the calibration workload's J per
        call with ``normalized`` (rounds without a calibration are left out).
        """
        groups: dict[int, list[float]] = {}
        for one in self.rounds_of(role):
            value = (
                one.normalized(self.units_per_call)
                if normalized
                else one.per_unit(self.units_per_call)
            )
            if value is not None and math.isfinite(value) and value > 0:
                groups.setdefault(one.process, []).append(value)
        return [groups[k] for k in sorted(groups)]

    def normalized_samples(self, *roles: RoundRole) -> list[float]:
        """Per-round normalized values of ``roles`` (default: candidate), positive and finite."""
        rounds = self.rounds_of(*(roles or ("candidate",)))
        values = [r.normalized(self.units_per_call) for r in rounds]
        return [v for v in values if v is not None and math.isfinite(v) and v > 0]


@frozen
class Carbon:
    """CO2e of a figure, with where the intensity came from."""

    grams: float
    intensity_g_per_kwh: float
    pue: float
    source: str
    year: int | None
    region: str
    #: Embodied emissions of the device for the window time, never added to ``grams``.
    embodied_grams: float | None = None
    #: For benchmarks: operational grams per unit of work (median J per unit x intensity).
    grams_per_unit: float | None = None


# -- the session ------------------------------------------------------------------------


@frozen
class EmbodiedSummary:
    """The device's embodied emissions, reported next to operational CO2e, never added."""

    kg_co2e: float
    lifetime_years: float
    share: float
    label: str
    source: str


@frozen
class CarbonSummary:
    """The settings behind every CO2e figure of a run, with their provenance."""

    intensity_g_per_kwh: float
    kind: str
    region: str
    name: str
    requested: str | None
    source: str
    year: int | None
    as_of: str | None
    basis: str
    licence: str
    attribution: str
    origin: str
    provenance: str
    pue: float
    pue_label: str
    pue_source: str
    header: str
    embodied: EmbodiedSummary | None = None
    notices: list[str] = field(default_factory=list)
    #: The short line shown after the CO2e total.
    line: str = ""
    #: A cleaner cloud region, when one is known.
    hint: str = ""


@frozen
class Totals:
    """Sums over the session's measured tests."""

    tests: int
    joules: float
    seconds: float
    watts: float
    net_joules: float | None = None


@frozen
class Calibration:
    """The drift check: a fixed workload's J per call at the start and the end of the session."""

    start: list[float] = field(default_factory=list)
    end: list[float] = field(default_factory=list)
    #: The workload, in the meter's own domain ("a fixed CPU loop", "a ... matmul on the GPU").
    workload: str = ""
    #: Why the check did not run, when it did not.
    skipped: str = ""


@frozen
class TestResult:
    """Everything recorded for one test."""

    __test__ = False  # not a pytest test class, despite the name

    nodeid: str
    file: str
    line: int | None
    outcome: Outcome
    scope: str
    measurement: Measurement | None
    net_j: float | None = None
    benchmark: Benchmark | None = None
    carbon: Carbon | None = None
    verdict: Verdict | None = None
    variant: VariantResult | None = None
    budget: list[BudgetNote] = field(default_factory=list)
    error: str | None = None
    worker: str | None = None
    gating: Gating | None = None
    #: In an A/B comparison (``pytest-energy ab``): how the test fared on each side.
    ab: ABTest | None = None

    @property
    def flags(self) -> list[str]:
        flags = set(self.measurement.flags) if self.measurement else set()
        if self.benchmark is not None:
            flags.update(self.benchmark.flags)
            if self.benchmark.unstable:
                flags.add("unstable")
        return sorted(flags)

    @property
    def joules(self) -> float | None:
        return self.measurement.total_j if self.measurement else None

    def per_unit_samples(self) -> tuple[str, list[float]] | None:
        """The unit and the J-per-unit samples the gate and the baseline use, or None.

        A benchmark gives one sample per candidate round (its ``reference`` rounds
        belong to another test); a plain test gives its single window, per
        ``"test"``. Failed tests and failed meters give nothing: their numbers say
        nothing about the code's energy.
        """
        if self.outcome != "passed" or self.measurement is None:
            return None
        if "meter_failed" in self.flags:
            return None
        bench = self.benchmark
        if bench is None:
            joules = self.measurement.total_j
            return ("test", [joules]) if math.isfinite(joules) else None
        samples = bench.per_unit_samples()
        if not samples and math.isfinite(bench.per_unit.median) and bench.per_unit.n > 0:
            samples = [bench.per_unit.median]  # rounds not recorded: keep the summary
        return (bench.unit, samples) if samples else None


@frozen
class Session:
    """The session: where, when, with which meters and settings."""

    started: str
    finished: str | None
    machine: Machine
    meters: list[MeterRecord]
    method: str
    idle: Idle | None
    scope: str
    totals: Totals
    exit_status: int | None = None
    interrupted: bool = False
    workers: int = 0
    commit: str | None = None
    branch: str | None = None
    carbon: CarbonSummary | None = None
    notices: list[str] = field(default_factory=list)
    calibration: Calibration | None = None
    unstable: bool = False
    #: Idle power before and after the tests, when measured; ``idle`` is the one net
    #: figures use (see ``idle_note``).
    idle_before: Idle | None = None
    idle_after: Idle | None = None
    #: Which idle bracket net figures use, and why.
    idle_note: str = ""


@frozen
class RunRecord:
    """A whole results file."""

    schema_version: int
    session: Session
    tests: list[TestResult]
    gate: GateSummary | None = None
    families: list[FamilyResult] = field(default_factory=list)
    #: Set by ``pytest-energy ab`` (then ``gate.mode`` is "ab").
    ab: ABRun | None = None

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self)
        return plain

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise ResultsError(
                f"unsupported schema_version {version!r} "
                f"(this pytest-energy reads {SCHEMA_VERSION})"
            )
        return from_plain(cls, data)


def load(path: Path) -> RunRecord:
    """Read a results file, with one-line errors for every way it can be bad.

    The file is untrusted (a CI artifact, a pull request's upload): it is parsed as
    strict JSON with a depth limit, then every field's type is checked.
    """
    data = read_results_data(path)
    try:
        return RunRecord.from_dict(data)
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None
