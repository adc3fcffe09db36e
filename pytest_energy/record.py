"""The run record: what a session measured, as versioned, plain JSON.

Reports, the gate's ``compare`` command and the GitHub integration read these
files, never the meters. Every energy figure travels with its ``method``
(``measured`` or ``modelled``) and the meters that produced it.

The dataclasses mirror the JSON one to one (``to_dict`` / ``from_dict``);
``schema/results.schema.json`` describes the same shape for other tools.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypedDict, TypeVar

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
}

Outcome = Literal["passed", "failed", "skipped", "error"]
VerdictStatus = Literal["regression", "improvement", "unchanged", "inconclusive", "not_gated"]
T = TypeVar("T")


class ResultsError(ValueError):
    """A results file that cannot be used; the message is one line."""


@dataclass(frozen=True)
class MeterRecord:
    """A meter as recorded in the run: name, method and what it covers."""

    name: str
    method: str
    update_period_s: float
    resolution_j: float
    domains: dict[str, str]
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Machine:
    """The fingerprint that decides which numbers may be compared."""

    cpu_model: str
    cpu_count: int
    cpu_flags: list[str]
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


@dataclass(frozen=True)
class Idle:
    """Idle power, measured once per session in a short bracket before the tests."""

    seconds: float
    watts: dict[str, float]
    total_watts: float


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Summary:
    """Location and spread of a sample (per call or per unit), with a 95% interval."""

    n: int
    median: float
    mean: float
    stdev: float
    cv: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Round:
    """One benchmark round: its own energy window around ``calls`` calls."""

    calls: int
    seconds: float
    joules: dict[str, float]
    total_j: float
    #: "candidate": the benchmarked function; "reference": the family's reference,
    #: interleaved with a variant's rounds; "confirm": extra rounds the gate asked for.
    role: str = "candidate"
    flags: list[str] = field(default_factory=list)
    #: Joules per call of the calibration workload interleaved with this round, when
    #: the session normalizes (the model meter on a shared VM): the round's J per
    #: unit divided by it cancels changes of CPU speed between and within runs.
    calibration_j: float | None = None


@dataclass(frozen=True)
class Quality:
    """A named quality metric recorded with the energy, e.g. accuracy."""

    name: str
    value: float
    higher_is_better: bool = True


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Verdict:
    """The gate's decision for one test or one variant."""

    status: VerdictStatus
    reason: str = ""
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    baseline: float | None = None
    current: float | None = None
    threshold: float | None = None
    method: str = ""
    p_value: float | None = None
    kind: str = "baseline"


@dataclass(frozen=True)
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
    variant: dict[str, Any] | None = None
    budget: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    worker: str | None = None
    #: What the gate needs from the test's marker and screen: enabled, threshold, screen.
    gating: dict[str, Any] | None = None

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


@dataclass(frozen=True)
class Session:
    """The session: where, when, with which meters and settings."""

    started: str
    finished: str | None
    machine: Machine
    meters: list[MeterRecord]
    method: str
    idle: Idle | None
    scope: str
    totals: dict[str, float]
    exit_status: int | None = None
    interrupted: bool = False
    workers: int = 0
    commit: str | None = None
    branch: str | None = None
    carbon: dict[str, Any] | None = None
    notices: list[str] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    unstable: bool = False
    settings: dict[str, Any] = field(default_factory=dict)


class SuiteCheck(TypedDict, total=False):
    """The suite-level check: total energy of all gated tests, baseline vs now."""

    status: VerdictStatus
    ratio: float
    ci_low: float
    ci_high: float
    baseline_j: float
    current_j: float
    tests: int


class GateRecord(TypedDict, total=False):
    """``RunRecord.gate``: how the gate was configured and what it decided."""

    baseline: str  # baseline name, path, or "history:K"
    threshold: float  # material regression, e.g. 0.05 for 5 %
    margin: float  # certainty margin on the ratio's confidence bound, e.g. 0.01
    alpha: float  # family-wise false-alarm rate across gated tests (Holm)
    method: str  # measured or modelled: the comparison never mixes them
    counts: dict[str, int]  # verdict status -> number of tests
    suite: SuiteCheck
    unstable: bool
    unstable_reason: str
    failed: bool  # True when the gate failed the build


class VariantRecord(TypedDict, total=False):
    """One variant of a model family compared with the family's reference."""

    variant: str
    nodeid: str
    energy_per_unit: float
    energy_ratio: float  # variant / reference, energy per unit, from interleaved rounds
    ci_low: float
    ci_high: float
    quality: dict[str, dict[str, Any]]  # name -> {value, reference, ratio, higher_is_better}
    limits: dict[str, float]  # max_energy_ratio, min_quality_ratio
    verdict: Literal["pass", "fail", "inconclusive", "reference"]
    line: str  # the one readable line, e.g. "int8: 0.47x [0.44, 0.51] of fp32 ..."
    on_frontier: bool  # on the energy-quality Pareto frontier of the family
    metadata: dict[str, Any]


class FamilyRecord(TypedDict, total=False):
    """``RunRecord.families`` entries: a model and its compressed variants."""

    family: str
    reference: str
    unit: str
    method: str
    hardware_class: str
    variants: list[VariantRecord]


@dataclass(frozen=True)
class RunRecord:
    """A whole results file."""

    schema_version: int
    session: Session
    tests: list[TestResult]
    gate: GateRecord | None = None
    families: list[FamilyRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self)
        return plain

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ResultsError(
                f"unsupported schema_version {version!r} "
                f"(this pytest-energy reads {SCHEMA_VERSION})"
            )
        try:
            return _build(cls, data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultsError(f"malformed results: {exc}") from None


def _jsonable(value: Any) -> Any:
    """Plain JSON data: dataclasses become dicts, non-finite floats None (strict JSON).

    One pass, no deep copies (unlike ``dataclasses.asdict``): results of big suites
    are converted on every checkpoint and into the history.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    names = getattr(value, "__dataclass_fields__", None)
    if names is not None and not isinstance(value, type):
        return {name: _jsonable(getattr(value, name)) for name in names}
    return value


# Nested dataclass types, resolved by name because annotations are strings.
_TYPES: dict[str, type] = {}


def _build(cls: type[T], data: Any) -> T:
    if not isinstance(data, Mapping):
        raise TypeError(f"{cls.__name__} must be an object, got {type(data).__name__}")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        kwargs[f.name] = _convert(str(f.type), data[f.name])
    return cls(**kwargs)


def _convert(annotation: str, value: Any) -> Any:
    if value is None:
        return None
    head = annotation.split(" | ", maxsplit=1)[0]
    if head.startswith("list[") and head[5:-1] in _TYPES:
        return [_build(_TYPES[head[5:-1]], item) for item in value]
    if head in _TYPES:
        return _build(_TYPES[head], value)
    return value


for _cls in (
    MeterRecord,
    Machine,
    Idle,
    Measurement,
    Summary,
    Round,
    Quality,
    Benchmark,
    Carbon,
    Verdict,
    TestResult,
    Session,
):
    _TYPES[_cls.__name__] = _cls


def from_plain(cls: type[T], data: Mapping[str, Any]) -> T:
    """Rebuild a results dataclass from :func:`to_plain` output (e.g. sent by an xdist worker)."""
    return _build(cls, data)


def to_plain(value: Any) -> Any:
    """A dataclass (or nested structure) as plain JSON-ready data."""
    return _jsonable(value)


def load(path: Path) -> RunRecord:
    """Read a results file, with one-line errors for every way it can be bad."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"results file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"cannot read results file {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"results file {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"results file {path} must hold a JSON object")
    try:
        return RunRecord.from_dict(data)
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def iter_measured(tests: Iterable[TestResult]) -> Iterable[TestResult]:
    """Tests that have an energy figure."""
    return (t for t in tests if t.measurement is not None)
