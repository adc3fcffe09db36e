"""The baseline file format: entries per test and hardware class, validated and rendered.

A baseline is a JSON file meant to be committed. It is written so that a pull
request's diff shows exactly which tests' numbers changed: keys are sorted,
every test is its own block, numbers keep six significant digits, and rendering
the same data twice gives the same bytes. Every read validates the whole file,
so a corrupt or foreign file is one :class:`BaselineError` line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from pytest_energy.frozen import frozen
from pytest_energy.record import RunRecord

FORMAT_VERSION = 1
# GPU facts that change what a number means (model, driver); the rest of the
# fingerprint (serials, UUIDs, memory in use) would only make diffs noisy.
_GPU_KEYS = ("name", "model", "driver", "driver_version")


class BaselineError(ValueError):
    """A baseline that cannot be read or written; the message is one line."""


@frozen
class BaselineEntry:
    """The stored numbers of one test on one hardware class.

    ``samples`` are joules per ``unit``: one per benchmark round, or the single
    window of a plain test (unit ``"test"``). ``median`` is their median.
    ``processes`` says which process measured each sample: a baseline is saved
    from several fresh processes, because each carries its own offset that more
    rounds cannot shrink (``docs/gate.md``). Entries written before it existed
    come from one process.
    """

    method: str
    meters: list[str]
    unit: str
    units_per_call: float
    samples: list[float]
    median: float
    n: int
    calls_per_round: int
    saved_at: str
    commit: str | None = None
    reason: str | None = None
    family: str | None = None
    variant: str | None = None
    flags: list[str] = field(default_factory=list)
    #: Quality metrics recorded with the energy: name -> {value, higher_is_better}.
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Per round: J per unit over the interleaved calibration workload's J per call
    #: (dimensionless), when the run normalized; the gate prefers these.
    normalized: list[float] = field(default_factory=list)
    #: Per sample, the index of the process that measured it (empty: all process 0).
    processes: list[int] = field(default_factory=list)

    def groups(self, *, normalized: bool = False) -> list[list[float]]:
        """The samples (or the normalized values), one list per process in process order."""
        values = self.normalized if normalized else self.samples
        labels = self.processes if len(self.processes) == len(values) else [0] * len(values)
        grouped: dict[int, list[float]] = {}
        for label, value in zip(labels, values, strict=True):
            grouped.setdefault(label, []).append(value)
        return [grouped[k] for k in sorted(grouped)]

    @property
    def process_count(self) -> int:
        return len(set(self.processes)) if self.processes else 1

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to the file; empty optional fields are left out."""
        data: dict[str, Any] = {
            "method": self.method,
            "meters": list(self.meters),
            "unit": self.unit,
            "units_per_call": round6(self.units_per_call),
            "samples": [round6(s) for s in self.samples],
            "median": round6(self.median),
            "n": self.n,
            "calls_per_round": self.calls_per_round,
            "saved_at": self.saved_at,
        }
        optional = {
            "commit": self.commit,
            "reason": self.reason,
            "family": self.family,
            "variant": self.variant,
            "flags": list(self.flags),
            "quality": {k: dict(v) for k, v in self.quality.items()},
            "normalized": [round6(s) for s in self.normalized],
            "processes": list(self.processes) if self.process_count > 1 else [],
        }
        data.update({k: v for k, v in optional.items() if v})
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str) -> BaselineEntry:
        """Validate one entry; ``where`` names it in the error message."""
        if not isinstance(data, dict):
            raise BaselineError(f"{where} must be an object")
        samples = data.get("samples")
        if not isinstance(samples, list) or not samples or not all(_is_number(s) for s in samples):
            raise BaselineError(f"{where}.samples must be a non-empty list of numbers")
        quality = data.get("quality", {})
        if not isinstance(quality, dict) or not all(isinstance(v, dict) for v in quality.values()):
            raise BaselineError(f"{where}.quality must map metric names to objects")
        normalized = data.get("normalized", [])
        if not isinstance(normalized, list) or not all(_is_number(s) for s in normalized):
            raise BaselineError(f"{where}.normalized must be a list of numbers")
        processes = data.get("processes", [])
        if (
            not isinstance(processes, list)
            or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in processes)
            or (processes and len(processes) != len(samples))
        ):
            raise BaselineError(
                f"{where}.processes must list a process index (0, 1, ...) for each sample"
            )
        return cls(
            method=_field(data, "method", str, where),
            meters=_str_list(data, "meters", where),
            unit=_field(data, "unit", str, where),
            units_per_call=float(_number(data, "units_per_call", where)),
            samples=[float(s) for s in samples],
            median=float(_number(data, "median", where)),
            n=_field(data, "n", int, where),
            calls_per_round=_field(data, "calls_per_round", int, where),
            saved_at=_field(data, "saved_at", str, where),
            commit=_optional_str(data, "commit", where),
            reason=_optional_str(data, "reason", where),
            family=_optional_str(data, "family", where),
            variant=_optional_str(data, "variant", where),
            flags=_str_list(data, "flags", where, required=False),
            quality=quality,
            normalized=[float(s) for s in normalized],
            processes=list(processes),
        )


@frozen
class HardwareBaseline:
    """The entries recorded on one hardware class, with the machine that made them."""

    hardware_class: str
    #: A subset of :class:`~pytest_energy.results.Machine`: cpu_model, gpus, method, meters.
    machine: dict[str, Any]
    tests: dict[str, BaselineEntry]


@frozen
class Baseline:
    """A loaded baseline file."""

    name: str
    path: Path
    classes: dict[str, HardwareBaseline]

    @property
    def hardware_classes(self) -> list[str]:
        return sorted(self.classes)

    def entries_for(self, hardware_class: str) -> dict[str, BaselineEntry] | None:
        """The entries for ``hardware_class`` by node id, or None when it has none.

        None means "nothing comparable": :meth:`unavailable_reason` says why.
        """
        found = self.classes.get(hardware_class)
        return dict(found.tests) if found is not None and found.tests else None

    def unavailable_reason(self, hardware_class: str) -> str | None:
        """One line saying why this baseline cannot serve ``hardware_class``, or None."""
        if self.entries_for(hardware_class) is not None:
            return None
        others = [c for c in self.hardware_classes if self.classes[c].tests]
        held = f"only for {', '.join(repr(c) for c in others)}" if others else "nor for any other"
        return (
            f"baseline {self.name!r} ({self.path}) has no entries for hardware class "
            f"{hardware_class!r}, {held}; numbers from other hardware or meter methods are "
            f"never compared, so save a baseline on this hardware class"
        )


def parse_baseline(data: dict[str, Any], path: Path) -> Baseline:
    version = data.get("pytest_energy_baseline")
    if version is None:
        raise BaselineError(
            f"{path} is not a pytest-energy baseline (no 'pytest_energy_baseline' key)"
        )
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise BaselineError(
            f"{path} has baseline format version {version!r}; this pytest-energy reads "
            f"version {FORMAT_VERSION}: upgrade pytest-energy to use it"
        )
    where = str(path)
    name = _field(data, "name", str, where)
    classes = data.get("classes")
    if not isinstance(classes, dict):
        raise BaselineError(f"{where}: 'classes' must be an object keyed by hardware class")
    parsed: dict[str, HardwareBaseline] = {}
    for hardware_class, block in classes.items():
        at = f"{where}: classes[{_show(hardware_class)}]"
        if not isinstance(block, dict):
            raise BaselineError(f"{at} must be an object")
        machine = block.get("machine", {})
        tests = block.get("tests")
        if not isinstance(machine, dict):
            raise BaselineError(f"{at}.machine must be an object")
        if not isinstance(tests, dict):
            raise BaselineError(f"{at}.tests must be an object keyed by test node id")
        parsed[hardware_class] = HardwareBaseline(
            hardware_class=hardware_class,
            machine=machine,
            tests={
                nodeid: BaselineEntry.from_dict(entry, f"{at}.tests[{_show(nodeid)}]")
                for nodeid, entry in tests.items()
            },
        )
    return Baseline(name=name, path=path, classes=parsed)


def empty_baseline(name: str) -> dict[str, Any]:
    return {"pytest_energy_baseline": FORMAT_VERSION, "name": name, "classes": {}}


def machine_block(record: RunRecord) -> dict[str, Any]:
    machine = record.session.machine
    return {
        "cpu_model": machine.cpu_model,
        "gpus": [{k: g[k] for k in _GPU_KEYS if g.get(k) is not None} for g in machine.gpus],
        "method": machine.method,
        "meters": list(machine.meters),
    }


def render_baseline(data: dict[str, Any]) -> str:
    """Deterministic, review-friendly JSON: sorted keys, one key per line, short lists inline."""
    return _block(data, 0) + "\n"


def _block(value: Any, depth: int) -> str:
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{_scalar(k)}: {_block(value[k], depth + 1)}" for k in sorted(value)]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        items = [f"{inner}{_block(v, depth + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    if isinstance(value, list):  # numbers and strings: one line, like a table row
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return _scalar(value)


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def round6(value: float) -> float:
    """Six significant digits: beyond any meter's accuracy, and stable in diffs."""
    return float(f"{value:.6g}")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        return False


def _number(data: Mapping[str, Any], key: str, where: str) -> float:
    value = data.get(key)
    if not isinstance(value, int | float) or not _is_number(value):
        raise BaselineError(f"{where}.{key} must be a finite number, got {_show(value)}")
    return float(value)


def _field(data: Mapping[str, Any], key: str, kind: type[Any], where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BaselineError(f"{where}.{key} must be {kind.__name__}, got {_show(value)}")
    return value


def _optional_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise BaselineError(f"{where}.{key} must be a string, got {_show(value)}")
    return value


def _str_list(data: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> list[str]:
    value = data.get(key, None if required else [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BaselineError(f"{where}.{key} must be a list of strings, got {_show(value)}")
    return list(value)


def _show(value: Any) -> str:
    """A value for an error message, cut short: a whole object would swamp the line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
