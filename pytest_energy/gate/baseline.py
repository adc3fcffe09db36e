"""What a run is compared with: a baseline file, the last K runs of the history, or a results file.

Each source becomes one :class:`ComparisonBaseline`: per test, the stored J per
unit samples (and the calibration-normalized ones when they were recorded), the
method they were measured with, and, when nothing at all can be compared, the
reason every test is ``not gated``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_energy.config.settings import SettingError, Settings
from pytest_energy.record import Machine, RunRecord
from pytest_energy.storage.baseline_file import BaselineEntry, BaselineError, HardwareBaseline
from pytest_energy.storage.baselines import BaselineStore, baseline_entries
from pytest_energy.storage.history import HistoryError, HistoryUnreachable
from pytest_energy.storage.history_store import open_history

Kind = Literal["rounds", "history"]


@dataclass
class ComparisonBaseline:
    """The numbers one run is compared with, by test node id."""

    label: str
    kind: Kind
    #: Per test, its J per unit grouped by the process that measured it: the stored
    #: processes of a baseline file, or one single-value group per earlier run.
    groups: dict[str, list[list[float]]]
    #: The stored entries, when the baseline is a file (units, normalized samples).
    entries: dict[str, BaselineEntry] = field(default_factory=dict)
    #: For a history: each run's calibration-normalized value, when it normalized.
    normalized: dict[str, list[list[float]]] = field(default_factory=dict)
    method: str | None = None
    #: Set when nothing can be compared: every test is "not gated" with this reason.
    problem: str | None = None


def open_baseline(settings: Settings, machine: Machine | None) -> ComparisonBaseline | None:
    """The session's baseline, or None when it does not compare. Raises SettingError."""
    if settings.compare is not None:
        return _from_file(settings, settings.compare, machine)
    if settings.history_baseline is not None:
        return _from_history(settings, machine)
    return None


def _from_file(settings: Settings, name: str, machine: Machine | None) -> ComparisonBaseline:
    """A baseline file; only one that cannot be read as a baseline is a usage error.

    A baseline that does not exist yet, or holds no numbers for this hardware
    class, is normal in CI (a new branch, a runner of another CPU model under the
    same label): every test is then "not gated" with the reason, and the run's
    exit status is the tests' own.
    """
    store = BaselineStore(settings.dir)
    try:
        path = store.resolve(name)
        if not path.exists():
            return _nothing(name, store.missing_reason(path, name))
        baseline = store.load(name)
    except BaselineError as exc:
        raise SettingError(f"--energy-compare: {exc}") from None
    if machine is None:
        # The xdist controller learns the hardware class from its workers.
        entries: dict[str, BaselineEntry] = {}
        for hardware in baseline.hardware_classes:
            entries.update(baseline.entries_for(hardware) or {})
        return _with_entries(name, entries)
    found = baseline.entries_for(machine.hardware_class)
    if found is not None:
        return _with_entries(name, found)
    other = _same_hardware_other_method(baseline.classes, machine)
    if other is not None:
        return _nothing(name, method_differs(other, machine), method=other)
    reason = baseline.unavailable_reason(machine.hardware_class) or "no entries"
    return _nothing(name, f"baseline from other hardware: {reason}")


def _nothing(label: str, problem: str, method: str | None = None) -> ComparisonBaseline:
    return ComparisonBaseline(label=label, kind="rounds", groups={}, method=method, problem=problem)


def _with_entries(label: str, entries: dict[str, BaselineEntry]) -> ComparisonBaseline:
    return ComparisonBaseline(
        label=label,
        kind="rounds",
        groups={k: e.groups() for k, e in entries.items()},
        entries=entries,
        method=_single_method(entries),
    )


def _from_history(settings: Settings, machine: Machine | None) -> ComparisonBaseline:
    k = settings.history_baseline
    assert k is not None and settings.history is not None
    raw: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    # A pull request compares with its default branch's runs (--energy-history-branch).
    branch = settings.history_branch or settings.branch
    where = f" of branch {branch}" if branch else ""
    if machine is not None:
        history = open_history(settings.history, settings.history_url)
        assert history is not None
        try:
            raw = history.last_runs(machine.hardware_class, branch, k)
            ratios = history.last_runs(machine.hardware_class, branch, k, normalized=True)
        except HistoryUnreachable as exc:
            # A server down costs the comparison, not the run: every test is "not gated".
            return ComparisonBaseline(
                label=f"history: last {k} runs{where}", kind="history", groups={}, problem=str(exc)
            )
        except HistoryError as exc:
            raise SettingError(f"--energy-history-baseline: {exc}") from None
    return ComparisonBaseline(
        label=f"history: last {k} runs{where}",
        kind="history",
        # Each earlier run is one process: its geometric mean is one observation.
        groups={nodeid: [[value] for value in values] for nodeid, values in raw.items()},
        normalized={
            nodeid: [[value] for value in values]
            for nodeid, values in ratios.items()
            if len(values) == len(raw.get(nodeid, []))
        },
    )


def from_results(baseline: RunRecord, current: RunRecord) -> ComparisonBaseline:
    """Compare two results files, as ``pytest-energy compare`` does."""
    before, after = baseline.session.machine, current.session.machine
    label = f"results of {baseline.session.started}"
    if before.hardware_class == after.hardware_class:
        return _with_entries(label, baseline_entries(baseline))
    if hardware_key(before) == hardware_key(after):
        return _nothing(label, method_differs(before.method, after), method=before.method)
    return _nothing(
        label,
        f"baseline from other hardware: the baseline ran on {before.hardware_class}, this run "
        f"on {after.hardware_class}; energies from different hardware are never compared",
    )


def hardware_key(machine: Machine | Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The hardware part of a hardware class: CPU model and GPU models, not the method."""
    if isinstance(machine, Machine):
        cpu, gpus = machine.cpu_model, machine.gpus
    else:
        cpu, gpus = str(machine.get("cpu_model", "")), list(machine.get("gpus", []))
    return cpu, tuple(sorted(str(g.get("name", "")) for g in gpus if isinstance(g, Mapping)))


def method_differs(baseline: str | None, machine: Machine) -> str:
    return (
        f"method differs: the baseline is {baseline}, this run is {machine.method}; "
        "measured and modelled energies are never compared"
    )


def _same_hardware_other_method(
    classes: Mapping[str, HardwareBaseline], machine: Machine
) -> str | None:
    """The method of a baseline class on this very hardware, when only the method differs."""
    for stored in classes.values():
        if stored.tests and hardware_key(stored.machine) == hardware_key(machine):
            return str(stored.machine.get("method", ""))
    return None


def _single_method(entries: Mapping[str, BaselineEntry]) -> str | None:
    methods = {e.method for e in entries.values()}
    return methods.pop() if len(methods) == 1 else None
