"""The regression gate inside a pytest session: baselines in, verdicts and exit status out.

* At start: load the baseline named by ``--energy-compare`` (or the last K runs
  of the history) and refuse, with one line, a file that is corrupt, unknown,
  or taken on other hardware.
* During a benchmark: screen its rounds against the baseline and ask the
  fixture for fresh confirmation rounds when they look like a regression.
* At the end: decide every test with :func:`pytest_energy.gate.evaluate`
  (Holm across tests, plus the suite total), judge the session's stability,
  and say whether the build fails.

The statistics live in :mod:`pytest_energy.gate`; this module only feeds them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pytest_energy.config.settings import SettingError, Settings
from pytest_energy.gate.rule import (
    GateInput,
    evaluate,
    not_gated,
    not_gated_for_flags,
    screen,
    session_stability,
)
from pytest_energy.record import GateRecord, Machine, RunRecord, SuiteCheck, TestResult, Verdict
from pytest_energy.storage.baselines import (
    BaselineEntry,
    BaselineError,
    BaselineStore,
    baseline_entries,
    energy_per_unit,
    normalized_per_unit,
)

Kind = Literal["rounds", "history"]


@dataclass
class Gatekeeper:
    """The baseline of this session and what the gate concluded."""

    settings: Settings
    label: str
    kind: Kind
    #: Baseline samples (J per unit) by node id, with the stored entry when from a file.
    samples: dict[str, list[float]]
    entries: dict[str, BaselineEntry]
    method: str | None
    #: Set when nothing can be compared (e.g. the baseline is modelled, this run is
    #: measured): every test is "not gated" with this reason.
    problem: str | None = None
    #: Tests compared on calibration-normalized ratios rather than joules.
    normalized: set[str] = field(default_factory=set)

    @classmethod
    def open(
        cls, settings: Settings, machine: Machine | None, branch: str | None
    ) -> Gatekeeper | None:
        """The session's gate, or None when it does not compare. Raises SettingError."""
        if settings.compare is not None:
            return cls._from_file(settings, machine)
        if settings.history_baseline is not None:
            return cls._from_history(settings, machine, branch)
        return None

    @classmethod
    def _from_file(cls, settings: Settings, machine: Machine | None) -> Gatekeeper:
        name = settings.compare
        assert name is not None
        store = BaselineStore(settings.dir)
        try:
            baseline = store.load(name)
        except BaselineError as exc:
            raise SettingError(f"--energy-compare: {exc}") from None
        entries: dict[str, BaselineEntry] = {}
        if machine is not None:
            found = baseline.entries_for(machine.hardware_class)
            if found is None:
                other = _same_hardware_other_method(baseline.classes, machine)
                if other is None:
                    reason = baseline.unavailable_reason(machine.hardware_class)
                    raise SettingError(f"--energy-compare: {reason}")
                return cls(
                    settings,
                    label=str(name),
                    kind="rounds",
                    samples={},
                    entries={},
                    method=other,
                    problem=_method_differs(other, machine.method),
                )
            entries = found
        else:
            # The xdist controller learns the hardware class from its workers.
            for hardware in baseline.hardware_classes:
                entries.update(baseline.entries_for(hardware) or {})
        return cls(
            settings,
            label=str(name),
            kind="rounds",
            samples={k: list(e.samples) for k, e in entries.items()},
            entries=entries,
            method=_single_method(entries),
        )

    @classmethod
    def _from_history(
        cls, settings: Settings, machine: Machine | None, branch: str | None
    ) -> Gatekeeper:
        from pytest_energy.storage.history import History, HistoryError

        k = settings.history_baseline
        assert k is not None and settings.history is not None
        samples: dict[str, list[float]] = {}
        if machine is not None:
            try:
                samples = History(settings.history).last_runs(machine.hardware_class, branch, k)
            except HistoryError as exc:
                raise SettingError(f"--energy-history-baseline: {exc}") from None
        where = f" of branch {branch}" if branch else ""
        return cls(
            settings,
            label=f"history: last {k} runs{where}",
            kind="history",
            samples=samples,
            entries={},
            method=None,
        )

    # -- during a benchmark ------------------------------------------------------------

    def extra_rounds(
        self,
        nodeid: str,
        unit: str,
        per_unit: Sequence[float],
        method: str,
        threshold: float | None,
        family_size: int,
        normalized: Sequence[float] = (),
    ) -> tuple[int, str]:
        """Confirmation rounds to run now for this benchmark, and the screen's reason."""
        baseline = self.samples.get(nodeid)
        entry = self.entries.get(nodeid)
        if not baseline or (entry is not None and entry.unit != unit):
            return 0, "not screened: no comparable baseline"
        if entry is not None and len(entry.normalized) > 1 and len(normalized) > 1:
            baseline, per_unit = entry.normalized, normalized
        test = GateInput(
            nodeid,
            baseline=baseline,
            current=per_unit,
            threshold=threshold,
            method=method,
            baseline_method=entry.method if entry else None,
            baseline_kind=self.kind,
        )
        result = screen(
            test,
            family_size=max(family_size, 1),
            alpha=self.settings.alpha,
            threshold=self.settings.fail,
            margin=self.settings.margin,
            max_rounds=self.settings.max_rounds,
        )
        return (result.extra_rounds if result.flagged else 0), result.reason

    # -- at the end ----------------------------------------------------------------------

    def decide(
        self, record: RunRecord, calibration: Mapping[str, Sequence[float]]
    ) -> tuple[RunRecord, bool]:
        """Every test's verdict, the gate record, and whether the build fails."""
        inputs: list[GateInput] = []
        positions: list[int] = []
        verdicts: list[Verdict | None] = []
        for index, test in enumerate(record.tests):
            prepared = self._input(test)
            if isinstance(prepared, Verdict):
                verdicts.append(prepared)
            else:
                verdicts.append(None)
                inputs.append(prepared)
                positions.append(index)
        outcome = evaluate(
            inputs,
            alpha=self.settings.alpha,
            threshold=self.settings.fail,
            margin=self.settings.margin,
        )
        for position, verdict in zip(positions, outcome.verdicts, strict=True):
            verdicts[position] = self._in_joules(record.tests[position], verdict)
        suite = outcome.suite
        gated = [v for v in outcome.verdicts if v.status != "not_gated"]
        if len(gated) < 2:
            # A suite of one test is that test, under the session's threshold instead
            # of the test's own: it adds nothing and could contradict the marker.
            suite = SuiteCheck(status="not_gated", tests=len(gated))
        regressed = any(v.status == "regression" for v in outcome.verdicts)
        regressed = regressed or suite.get("status") == "regression"
        cvs = {t.nodeid: cv for t in record.tests if (cv := _compared_cv(t)) is not None}
        stability = session_stability(
            calibration.get("start", ()),
            calibration.get("end", ()),
            cvs,
            max_cv=self.settings.cv_limit,
        )
        failed = regressed and (not stability.unstable or self.settings.fail_unstable)
        tests = [replace(t, verdict=v) for t, v in zip(record.tests, verdicts, strict=True)]
        counts: dict[str, int] = {}
        for decided in verdicts:
            if decided is not None:
                counts[decided.status] = counts.get(decided.status, 0) + 1
        gate = GateRecord(
            baseline=self.label,
            threshold=self.settings.fail,
            margin=self.settings.margin,
            alpha=self.settings.alpha,
            method=record.session.method,
            counts=counts,
            suite=suite,
            unstable=stability.unstable,
            unstable_reason=stability.reason,
            failed=failed,
        )
        session = replace(
            record.session,
            unstable=stability.unstable,
            calibration={k: list(v) for k, v in calibration.items()} or None,
        )
        return replace(record, tests=tests, gate=gate, session=session), failed

    @classmethod
    def from_record(cls, settings: Settings, baseline: RunRecord, current: RunRecord) -> Gatekeeper:
        """Compare two results files, as ``pytest-energy compare`` does. Raises SettingError."""
        before, after = baseline.session.machine, current.session.machine
        entries = baseline_entries(baseline)
        label = f"results of {baseline.session.started}"
        if before.hardware_class != after.hardware_class:
            if _hardware_key(before) != _hardware_key(after):
                raise SettingError(
                    f"not comparable: the baseline ran on {before.hardware_class}, this run on "
                    f"{after.hardware_class}; energies from different hardware are never compared"
                )
            return cls(
                settings,
                label=label,
                kind="rounds",
                samples={},
                entries={},
                method=before.method,
                problem=_method_differs(before.method, after.method),
            )
        return cls(
            settings,
            label=label,
            kind="rounds",
            samples={k: list(e.samples) for k, e in entries.items()},
            entries=entries,
            method=_single_method(entries),
        )

    def _in_joules(self, test: TestResult, verdict: Verdict) -> Verdict:
        """A verdict reached on normalized ratios, shown with the joules users know."""
        if test.nodeid not in self.normalized:
            return verdict
        entry = self.entries.get(test.nodeid)
        current = energy_per_unit(test)
        return replace(
            verdict,
            baseline=entry.median if entry else None,
            current=statistics.median(current[1]) if current else None,
            reason=f"{verdict.reason} (compared as ratios to the calibration workload)",
            kind="normalized",
        )

    def _input(self, test: TestResult) -> GateInput | Verdict:
        method = test.measurement.method if test.measurement else ""
        if self.problem is not None:
            return not_gated(self.problem, method=method)
        options: dict[str, Any] = dict(test.gating or {})
        if not options.get("enabled", True):
            return not_gated("gate=False in the energy marker", method=method)
        flagged = not_gated_for_flags(test.flags, method=method)
        if flagged is not None:
            return flagged
        baseline = self.samples.get(test.nodeid)
        if not baseline:
            return not_gated("no baseline for this test", method=method)
        per_unit = energy_per_unit(test)
        if per_unit is None:
            return not_gated(f"no usable energy figure (outcome {test.outcome})", method=method)
        unit, current = per_unit
        entry = self.entries.get(test.nodeid)
        if entry is not None and entry.unit != unit:
            return not_gated(
                f"unit changed: the baseline has J per {entry.unit}, this run J per {unit}",
                method=method,
            )
        if self.kind == "rounds" and len(current) < 2 and len(baseline) < 2:
            return not_gated(
                "a single window on each side cannot show noise; gate it with "
                "energy_benchmark or --energy-history-baseline",
                method=method,
            )
        confirmation = _confirmation(test)
        normalized = normalized_per_unit(test)
        if entry is not None and len(entry.normalized) > 1 and len(normalized) > 1:
            # Both sides interleaved the calibration workload: compare the ratios,
            # which CPU-speed changes between and within the runs do not move.
            baseline, current = entry.normalized, normalized
            confirmation = _confirmation(test, normalized=True)
            self.normalized.add(test.nodeid)
        return GateInput(
            test.nodeid,
            baseline=baseline,
            current=current,
            confirmation=confirmation,
            threshold=options.get("threshold"),
            method=method,
            baseline_method=entry.method if entry else None,
            baseline_kind=self.kind,
            weight=test.benchmark.units_per_call if test.benchmark else 1.0,
        )


def _compared_cv(test: TestResult) -> float | None:
    """The round-to-round CV of what the gate compares: normalized ratios when present."""
    bench = test.benchmark
    if bench is None:
        return None
    spread = bench.normalized if bench.normalized is not None else bench.per_unit
    return spread.cv if spread.n > 1 and math.isfinite(spread.cv) else None


def _confirmation(test: TestResult, *, normalized: bool = False) -> list[float]:
    bench = test.benchmark
    if bench is None:
        return []
    if normalized:
        return [
            r.total_j / (r.calls * bench.units_per_call) / r.calibration_j
            for r in bench.rounds
            if r.role == "confirm" and r.calls > 0 and r.calibration_j
        ]
    return [
        r.total_j / (r.calls * bench.units_per_call)
        for r in bench.rounds
        if r.role == "confirm" and r.calls > 0
    ]


def _hardware_key(machine: Machine | Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The hardware part of a hardware class: CPU model and GPU models, not the method."""
    if isinstance(machine, Machine):
        cpu, gpus = machine.cpu_model, machine.gpus
    else:
        cpu, gpus = str(machine.get("cpu_model", "")), list(machine.get("gpus", []))
    return cpu, tuple(sorted(str(g.get("name", "")) for g in gpus if isinstance(g, Mapping)))


def _same_hardware_other_method(classes: Mapping[str, Any], machine: Machine) -> str | None:
    """The method of a baseline class on this very hardware, when only the method differs."""
    for stored in classes.values():
        info = getattr(stored, "machine", {})
        if stored.tests and _hardware_key(info) == _hardware_key(machine):
            return str(info.get("method", ""))
    return None


def _method_differs(baseline: str | None, current: str) -> str:
    return (
        f"method differs: the baseline is {baseline}, this run is {current}; "
        "measured and modelled energies are never compared"
    )


def _single_method(entries: Mapping[str, BaselineEntry]) -> str | None:
    methods = {e.method for e in entries.values()}
    return methods.pop() if len(methods) == 1 else None


def save_or_update(settings: Settings, record: RunRecord, commit: str | None) -> str:
    """Write the baseline this run was asked to write; the line to show. Raises SettingError."""
    store = BaselineStore(settings.dir)
    name = settings.baseline_name
    try:
        if settings.update_baseline:
            assert settings.reason is not None
            nodeids = [t.nodeid for t in record.tests if energy_per_unit(t) is not None]
            path = store.update_entries(record, name, nodeids, settings.reason, commit=commit)
            return f"baseline {path}: updated {len(nodeids)} tests ({settings.reason})"
        path = store.save_run(record, name, commit=commit)
    except BaselineError as exc:
        raise SettingError(str(exc)) from None
    saved = sum(1 for t in record.tests if energy_per_unit(t) is not None)
    return f"baseline {path}: saved {saved} tests for {record.session.machine.hardware_class}"


# -- the calibration workload ------------------------------------------------------------


def calibration_work() -> int:
    """A fixed, deterministic CPU workload: the same instructions every time.

    About 1 ms here. Much smaller calls normalize worse (measured: 2 % round-to-round
    CV at 0.1 ms against 0.6 % at 1 ms), as call overhead starts to dominate them.
    """
    total = 0
    for i in range(20_000):
        total += i * i % 7
    return total
