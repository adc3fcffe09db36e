"""Baseline files: the reviewed numbers the gate compares a run with.

A baseline is a JSON file meant to be committed (default
``.energy/baselines/<name>.json``). It is written so that a pull request's diff
shows exactly which tests' numbers changed: keys are sorted, every test is its
own block, numbers keep six significant digits, and saving the same run twice
gives the same bytes.

Numbers are kept apart by hardware class (CPU model, GPU model, meter method):
a baseline recorded on one class is never used for another, so a file can
hold the numbers of several runner types side by side.

Rules for writing, chosen so a baseline never changes by accident:

* :meth:`BaselineStore.save_run` adds the run's tests to the baseline. A test
  that already has an entry for this hardware class is a conflict: the save is
  refused as a whole unless ``replace=True`` (the plugin's
  ``--energy-update-baseline``). Other hardware classes, and tests of this class
  that the run did not measure, are always kept.
* :meth:`BaselineStore.update_entries` rewrites only the named tests and
  records the required reason with each of them; every other byte stays.
* A file that cannot be read as a baseline (corrupt, truncated, a newer
  format) is never overwritten or repaired: every write reads and validates the
  current file first, under an advisory lock, and stops with a
  :class:`BaselineError` that leaves it untouched.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import statistics
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_energy.record import RunRecord, TestResult, write_atomic

__all__ = [
    "DEFAULT_DIRECTORY",
    "DEFAULT_NAME",
    "FORMAT_VERSION",
    "Baseline",
    "BaselineEntry",
    "BaselineError",
    "BaselineStore",
    "HardwareBaseline",
    "baseline_entries",
    "energy_per_unit",
    "prepare_directory",
]

FORMAT_VERSION = 1
DEFAULT_DIRECTORY = Path(".energy")
DEFAULT_NAME = "default"

#: Written once, when the folder is created: baselines are committed, the
#: history and the files of in-flight writes stay on the machine that made them.
GITIGNORE = """\
# Written by pytest-energy. Commit baselines/; the rest is local to this machine.
history.sqlite*
*.lock
*.tmp
"""

# Names become file names; keep them portable and free of path tricks.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# GPU facts that change what a number means (model, driver); the rest of the
# fingerprint (serials, UUIDs, memory in use) would only make diffs noisy.
_GPU_KEYS = ("name", "model", "driver", "driver_version")
# A window whose meter failed has no energy figure worth keeping.
_UNUSABLE_FLAGS = frozenset({"meter_failed"})


class BaselineError(ValueError):
    """A baseline that cannot be read or written; the message is one line."""


@dataclass(frozen=True)
class BaselineEntry:
    """The stored numbers of one test on one hardware class.

    ``samples`` are joules per ``unit``: one per benchmark round, or the single
    window of a plain test (unit ``"test"``). ``median`` is their median.
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

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to the file; empty optional fields are left out."""
        data: dict[str, Any] = {
            "method": self.method,
            "meters": list(self.meters),
            "unit": self.unit,
            "units_per_call": _round6(self.units_per_call),
            "samples": [_round6(s) for s in self.samples],
            "median": _round6(self.median),
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
            "normalized": [_round6(s) for s in self.normalized],
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
        )


@dataclass(frozen=True)
class HardwareBaseline:
    """The entries recorded on one hardware class, with the machine that made them."""

    hardware_class: str
    #: A subset of :class:`~pytest_energy.results.Machine`: cpu_model, gpus, method, meters.
    machine: dict[str, Any]
    tests: dict[str, BaselineEntry]


@dataclass(frozen=True)
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


class BaselineStore:
    """Baseline files under ``directory`` (default ``.energy``), in ``baselines/``."""

    def __init__(self, directory: Path = DEFAULT_DIRECTORY) -> None:
        self.directory = Path(directory)

    @property
    def baselines_dir(self) -> Path:
        return self.directory / "baselines"

    def resolve(self, name_or_path: str) -> Path:
        """A baseline name -> ``<directory>/baselines/<name>.json``; a path stays a path.

        Anything with a path separator or a ``.json`` suffix is taken as a path.
        """
        if name_or_path.endswith(".json") or any(
            sep and sep in name_or_path for sep in (os.sep, os.altsep)
        ):
            return Path(name_or_path)
        if not _NAME.fullmatch(name_or_path):
            raise BaselineError(
                f"invalid baseline name {name_or_path!r}: use letters, digits, '.', '_' "
                f"and '-' (starting with a letter or digit), or give a path ending in .json"
            )
        return self.baselines_dir / f"{name_or_path}.json"

    def names(self) -> list[str]:
        """Names of the baselines saved in this store, sorted."""
        if not self.baselines_dir.is_dir():
            return []
        return sorted(
            p.stem for p in self.baselines_dir.glob("*.json") if not p.name.startswith(".")
        )

    def load(self, name_or_path: str | Path) -> Baseline:
        """Read and validate a baseline; every problem is a one-line :class:`BaselineError`."""
        path = self._path(name_or_path)
        data = self._read(path)
        if data is None:
            raise BaselineError(self._missing(path, name_or_path))
        return _parse(data, path)

    def save_run(
        self,
        record: RunRecord,
        name: str | Path = DEFAULT_NAME,
        *,
        commit: str | None = None,
        replace: bool = False,
        reason: str | None = None,
    ) -> Path:
        """Add this run's measured tests to baseline ``name`` for its hardware class.

        Creates the file on first save. Tests that already have an entry for this
        hardware class are a conflict, refused as a whole unless ``replace``;
        entries of other hardware classes and of tests this run did not measure
        are kept. Returns the file's path.
        """
        hardware_class = record.session.machine.hardware_class
        entries = baseline_entries(record, commit=commit, reason=_clean_reason(reason))
        if not entries:
            raise BaselineError(
                "this run has no passed test with an energy figure, so there is nothing "
                "to save as a baseline"
            )
        path = self._path(name)
        with self._writing(path):
            data = self._read(path)
            if data is None:
                data = _empty(path.stem)
            else:
                _parse(data, path)  # never build on a file that does not validate
            block = _class_block(data, record)
            tests = block["tests"]
            clashes = sorted(set(tests) & set(entries))
            if clashes and not replace:
                raise BaselineError(
                    f"baseline {data['name']!r} ({path}) already has entries for {len(clashes)} "
                    f"of these tests on hardware class {hardware_class!r} (first: {clashes[0]}); "
                    f"refusing to overwrite them: pass --energy-update-baseline to replace them"
                )
            tests.update({nodeid: e.to_dict() for nodeid, e in entries.items()})
            # A new save describes the machine as it is now (a newer driver, say);
            # an update of single entries leaves the description alone.
            block["machine"] = _machine_block(record)
            write_atomic(path, _render(data))
        return path

    def update_entries(
        self,
        record: RunRecord,
        name: str | Path,
        nodeids: Iterable[str],
        reason: str,
        *,
        commit: str | None = None,
    ) -> Path:
        """Rewrite the entries of ``nodeids`` from this run, recording ``reason`` with each.

        The baseline must exist; the tests must be in the run with an energy figure.
        Every other entry keeps its bytes. Returns the file's path.
        """
        why = _clean_reason(reason)
        if why is None:
            raise BaselineError(
                "updating baseline entries needs a reason (for example 'new tokenizer, "
                "accepted +8% energy'); it is stored with each updated entry for review"
            )
        wanted = list(dict.fromkeys(nodeids))
        if not wanted:
            raise BaselineError("no tests were named to update in the baseline")
        by_id = {t.nodeid: t for t in record.tests}
        entries = baseline_entries(record, commit=commit, reason=why)
        for nodeid in wanted:
            if nodeid not in by_id:
                raise BaselineError(f"cannot update {nodeid}: it is not in this run")
            if nodeid not in entries:
                raise BaselineError(
                    f"cannot update {nodeid}: it has no usable energy figure in this run "
                    f"(outcome {by_id[nodeid].outcome}, flags {by_id[nodeid].flags or 'none'})"
                )
        path = self._path(name)
        with self._writing(path):
            data = self._read(path)
            if data is None:
                raise BaselineError(self._missing(path, name) + "; save one before updating it")
            _parse(data, path)
            tests = _class_block(data, record)["tests"]
            tests.update({nodeid: entries[nodeid].to_dict() for nodeid in wanted})
            write_atomic(path, _render(data))
        return path

    def _path(self, name_or_path: str | Path) -> Path:
        return name_or_path if isinstance(name_or_path, Path) else self.resolve(name_or_path)

    @contextmanager
    def _writing(self, path: Path) -> Iterator[None]:
        if path.parent == self.baselines_dir:
            prepare_directory(self.directory)
        with _locked(path):
            yield

    def _read(self, path: Path) -> dict[str, Any] | None:
        """The file's JSON object, or None when it does not exist."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise BaselineError(f"cannot read baseline file {path}: {_one_line(exc)}") from None
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except (json.JSONDecodeError, ValueError) as exc:
            kind = "truncated" if _looks_truncated(exc, text) else "not valid JSON"
            raise BaselineError(
                f"baseline file {path} is {kind} ({_one_line(exc)}); it was left untouched: "
                f"restore it from version control or delete it and save again"
            ) from None
        if not isinstance(data, dict):
            raise BaselineError(f"baseline file {path} must hold a JSON object")
        return data

    def _missing(self, path: Path, name_or_path: str | Path) -> str:
        if isinstance(name_or_path, str) and path.parent == self.baselines_dir:
            names = self.names()
            available = ", ".join(names) if names else "none saved yet"
            return (
                f"no baseline named {name_or_path!r} in {self.baselines_dir} "
                f"(available: {available})"
            )
        return f"baseline file {path} does not exist"


def energy_per_unit(test: TestResult) -> tuple[str, list[float]] | None:
    """The unit and the joules-per-unit samples of a test, or None when it has none.

    A benchmark gives one sample per round it measured (its ``reference`` rounds
    belong to another test and are left out); a plain test gives its single
    window, per ``"test"``. Failed tests and failed meters give nothing, since
    their numbers say nothing about the code's energy.
    """
    if test.outcome != "passed" or test.measurement is None:
        return None
    if _UNUSABLE_FLAGS & set(test.flags):
        return None
    bench = test.benchmark
    if bench is None:
        joules = test.measurement.total_j
        return ("test", [joules]) if _is_finite(joules) else None
    samples = [
        r.total_j / (r.calls * bench.units_per_call)
        for r in bench.rounds
        if r.role == "candidate" and r.calls > 0 and bench.units_per_call > 0
    ]
    samples = [s for s in samples if _is_finite(s)]
    if not samples and _is_finite(bench.per_unit.median) and bench.per_unit.n > 0:
        samples = [bench.per_unit.median]  # rounds not recorded: keep the summary
    return (bench.unit, samples) if samples else None


def normalized_per_unit(test: TestResult) -> list[float]:
    """A benchmark's per-round J per unit over its calibration J per call, if it normalized."""
    bench = test.benchmark
    if bench is None or energy_per_unit(test) is None or bench.units_per_call <= 0:
        return []
    values = [
        r.total_j / (r.calls * bench.units_per_call) / r.calibration_j
        for r in bench.rounds
        if r.role == "candidate" and r.calls > 0 and r.calibration_j
    ]
    return [v for v in values if _is_finite(v) and v > 0]


def baseline_entries(
    record: RunRecord, *, commit: str | None = None, reason: str | None = None
) -> dict[str, BaselineEntry]:
    """The entries this run would save, by node id: its passed, measured tests."""
    session = record.session
    saved_at = session.finished or session.started
    entries: dict[str, BaselineEntry] = {}
    for test in record.tests:
        per_unit = energy_per_unit(test)
        if per_unit is None or test.measurement is None:
            continue
        unit, samples = per_unit
        bench = test.benchmark
        variant = test.variant or {}
        entries[test.nodeid] = BaselineEntry(
            method=test.measurement.method,
            meters=list(test.measurement.meters),
            unit=unit,
            units_per_call=bench.units_per_call if bench else 1.0,
            samples=samples,
            median=statistics.median(samples),
            n=len(samples),
            calls_per_round=bench.calls_per_round if bench else 1,
            saved_at=saved_at,
            commit=commit or session.commit,
            reason=reason,
            family=_str_or_none(variant.get("family")),
            variant=_str_or_none(variant.get("variant")),
            flags=sorted(set(test.flags)),
            quality={
                q.name: {"value": _round6(q.value), "higher_is_better": q.higher_is_better}
                for q in (bench.quality if bench else [])
                if _is_finite(q.value)
            },
            normalized=normalized_per_unit(test),
        )
    return entries


def prepare_directory(directory: Path) -> None:
    """Create the pytest-energy folder, with its ``.gitignore``, if it does not exist.

    The ``.gitignore`` is written only when the folder is created, so a user who
    edits or removes it is not overruled.
    """
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        return
    write_atomic(directory / ".gitignore", GITIGNORE)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock for ``path`` during a read-modify-write.

    The lock lives in its own file: the baseline itself is replaced by rename on
    every write, so a lock on it would guard an inode nobody reads any more. The
    lock file is left in place, since removing it would let a third writer lock a
    fresh file while the second still holds the old one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _parse(data: dict[str, Any], path: Path) -> Baseline:
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
        at = f"{where}: classes[{hardware_class!r}]"
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
                nodeid: BaselineEntry.from_dict(entry, f"{at}.tests[{nodeid!r}]")
                for nodeid, entry in tests.items()
            },
        )
    return Baseline(name=name, path=path, classes=parsed)


def _empty(name: str) -> dict[str, Any]:
    return {"pytest_energy_baseline": FORMAT_VERSION, "name": name, "classes": {}}


def _class_block(data: dict[str, Any], record: RunRecord) -> dict[str, Any]:
    """The (validated) block of the run's hardware class, created with its machine."""
    classes: dict[str, dict[str, Any]] = data["classes"]
    return classes.setdefault(
        record.session.machine.hardware_class,
        {"machine": _machine_block(record), "tests": {}},
    )


def _machine_block(record: RunRecord) -> dict[str, Any]:
    machine = record.session.machine
    return {
        "cpu_model": machine.cpu_model,
        "gpus": [{k: g[k] for k in _GPU_KEYS if g.get(k) is not None} for g in machine.gpus],
        "method": machine.method,
        "meters": list(machine.meters),
    }


def _render(data: dict[str, Any]) -> str:
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


def _round6(value: float) -> float:
    """Six significant digits: beyond any meter's accuracy, and stable in diffs."""
    return float(f"{value:.6g}")


def _clean_reason(reason: str | None) -> str | None:
    text = " ".join((reason or "").split())
    return text or None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_finite(value: float) -> bool:
    return math.isfinite(value)


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


def _str_or_none(value: Any) -> str | None:
    return str(value) if value is not None else None


def _looks_truncated(exc: ValueError, text: str) -> bool:
    """An error at the very end, or a string never closed, means the text was cut short."""
    if not isinstance(exc, json.JSONDecodeError):
        return False
    return exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not allowed in a baseline")


def _show(value: Any) -> str:
    """A value for an error message, cut short: a whole object would swamp the line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
