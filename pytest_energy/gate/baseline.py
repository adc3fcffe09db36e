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
from pytest_energy.storage.history import History, HistoryError

Kind = Literal["rounds", "history"]


@dataclass
class ComparisonBaseline:
    """The numbers one run is compared with, by test node id."""

    label: str
    kind: Kind
    #: J per unit per test: one per stored round ("rounds") or per earlier run ("history").
    samples: dict[str, list[float]]
    #: The stored entries, when the baseline is a file (units, normalized samples).
    entries: dict[str, BaselineEntry] = field(default_factory=dict)
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
    try:
        baseline = BaselineStore(settings.dir).load(name)
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
    if other is None:
        reason = baseline.unavailable_reason(machine.hardware_class)
        raise SettingError(f"--energy-compare: {reason}")
    return ComparisonBaseline(
        label=name, kind="rounds", samples={}, method=other, problem=method_differs(other, machine)
    )


def _with_entries(label: str, entries: dict[str, BaselineEntry]) -> ComparisonBaseline:
    return ComparisonBaseline(
        label=label,
        kind="rounds",
        samples={k: list(e.samples) for k, e in entries.items()},
        entries=entries,
        method=_single_method(entries),
    )


def _from_history(settings: Settings, machine: Machine | None) -> ComparisonBaseline:
    k = settings.history_baseline
    assert k is not None and settings.history is not None
    samples: dict[str, list[float]] = {}
    if machine is not None:
        try:
            samples = History(settings.history).last_runs(
                machine.hardware_class, settings.branch, k
            )
        except HistoryError as exc:
            raise SettingError(f"--energy-history-baseline: {exc}") from None
    where = f" of branch {settings.branch}" if settings.branch else ""
    return ComparisonBaseline(
        label=f"history: last {k} runs{where}", kind="history", samples=samples
    )


def from_results(baseline: RunRecord, current: RunRecord) -> ComparisonBaseline:
    """Compare two results files, as ``pytest-energy compare`` does. Raises SettingError."""
    before, after = baseline.session.machine, current.session.machine
    label = f"results of {baseline.session.started}"
    if before.hardware_class != after.hardware_class:
        if hardware_key(before) != hardware_key(after):
            raise SettingError(
                f"not comparable: the baseline ran on {before.hardware_class}, this run on "
                f"{after.hardware_class}; energies from different hardware are never compared"
            )
        return ComparisonBaseline(
            label=label,
            kind="rounds",
            samples={},
            method=before.method,
            problem=method_differs(before.method, after),
        )
    return _with_entries(label, baseline_entries(baseline))


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
