"""The end of an energy session: the gate's decision, the baseline, and every file.

Runs on the process that reports (the xdist controller, or the only process):
the run record is completed with what only the whole run knows (families,
CO2e totals, the commit), the gate decides and sets the exit status through the
session, never by raising, then the baseline, the JSON results, the history
and the reports are written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

from pytest_energy.carbon.accounting import SessionCarbon
from pytest_energy.config.families import FamilySpec
from pytest_energy.config.settings import SettingError, Settings
from pytest_energy.gate.run_gate import RunGate
from pytest_energy.gate.variants import build_families
from pytest_energy.measure.machine import git_revision
from pytest_energy.measure.recorder import SessionRecorder
from pytest_energy.measure.replicas import merge, run_replicas
from pytest_energy.output_files import write_atomic
from pytest_energy.record import RoundRole, RunRecord
from pytest_energy.storage.baseline_file import BaselineError
from pytest_energy.storage.baselines import BaselineStore
from pytest_energy.storage.history import History, HistoryError, load_series


class SessionEnd:
    """What the end of the session decided and wrote, for the terminal section."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        recorder: SessionRecorder,
        carbon: SessionCarbon,
        gate: RunGate | None,
        family_specs: Mapping[str, FamilySpec],
    ) -> None:
        self._config = config
        self._settings = settings
        self._recorder = recorder
        self._carbon = carbon
        self._gate = gate
        self._family_specs = family_specs
        self.record: RunRecord | None = None
        #: The one line that says why the energy job failed the build, if it did.
        self.exit_reason: str | None = None

    def finish(self, session: pytest.Session) -> None:
        recorder, gate, config = self._recorder, self._gate, self._config
        if recorder.failure is not None and session.exitstatus == pytest.ExitCode.OK:
            # Numbers stop where the meter stopped: the energy job did not do its job.
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            self.exit_reason = f"energy measurement failed: {recorder.failure}"
        interrupted = session.exitstatus == pytest.ExitCode.INTERRUPTED
        record = self._complete(recorder.record(int(session.exitstatus), interrupted=interrupted))
        can_measure = (
            not interrupted
            and recorder.failure is None
            and recorder.role == "serial"
            and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
        )
        writing = self._settings.save_baseline is not None or self._settings.update_baseline
        if writing and can_measure and self._settings.processes > 1:
            record = self._replicate(
                record, _benchmarks(record), range(1, self._settings.processes), "candidate"
            )
        if gate is not None and not interrupted:
            record, flagged = gate.screen(record)
            if flagged and can_measure:
                record = self._replicate(
                    record, flagged, range(1, self._settings.processes + 1), "confirm"
                )
            record, failed = gate.decide(record, record.session.calibration)
            if failed and session.exitstatus == pytest.ExitCode.OK:
                # Fail like a failing test run, through the session, never by raising.
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
                self.exit_reason = self.exit_reason or gate_failure(record)
        config.hook.pytest_energy_run_record(config=config, record=record)
        record = self._write_baseline(record, session)
        record = replace(
            record, session=replace(record.session, exit_status=int(session.exitstatus))
        )
        self.record = record
        recorder.write_json(record)
        self._append_history(record)
        self._write_reports(record)

    def _replicate(
        self, record: RunRecord, nodeids: Sequence[str], processes: range, role: RoundRole
    ) -> RunRecord:
        """Measure ``nodeids`` again in fresh processes and add their rounds to the record."""
        if not nodeids:
            return record
        wanted = set(nodeids)
        # A variant is measured against its reference, in the same process.
        for nodeid in nodeids:
            spec = self._family_specs.get(nodeid)
            if spec is not None and not spec.is_reference:
                wanted.update(
                    other
                    for other, candidate in self._family_specs.items()
                    if candidate.family == spec.family and candidate.is_reference
                )
        ordered = [t.nodeid for t in record.tests if t.nodeid in wanted]
        expected = sum(
            t.measurement.seconds for t in record.tests if t.nodeid in wanted and t.measurement
        )
        replicas = run_replicas(
            self._config,
            self._settings,
            ordered,
            processes=list(processes),
            expected_s=expected,
            say=self._say,
        )
        notices = [f"replica: {r.problem}" for r in replicas if r.problem]
        record = merge(record, replicas, role)
        session = replace(record.session, notices=[*record.session.notices, *notices])
        return replace(record, session=session)

    def _say(self, line: str) -> None:
        reporter = self._config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and self._config.get_verbosity() >= 0:
            reporter.write_line(line)

    def _complete(self, record: RunRecord) -> RunRecord:
        """Add what only the whole run knows: families, CO2e totals, the commit."""
        commit, branch = git_revision(self._config.rootpath)
        grams = [t.carbon.grams for t in record.tests if t.carbon is not None]
        session = replace(
            record.session,
            commit=commit,
            branch=self._settings.branch or branch,
            carbon=self._carbon.session_record(sum(grams) if grams else None),
        )
        families = build_families([t.variant for t in record.tests if t.variant is not None])
        return replace(record, session=session, families=families)

    def _write_baseline(self, record: RunRecord, session: pytest.Session) -> RunRecord:
        settings = self._settings
        if settings.save_baseline is None and not settings.update_baseline:
            return record
        if session.exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            return record  # an interrupted or broken run is no baseline
        try:
            line = save_or_update(settings, record, record.session.commit)
        except SettingError as exc:
            line = f"baseline not written: {exc}"
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.USAGE_ERROR
                self.exit_reason = self.exit_reason or line
        notices = [*record.session.notices, line]
        return replace(record, session=replace(record.session, notices=notices))

    def _append_history(self, record: RunRecord) -> None:
        settings = self._settings
        if settings.history is None or record.session.interrupted:
            return
        try:
            History(settings.history).append(record)
        except HistoryError as exc:
            self._recorder.notices.append(f"history not updated: {exc}")

    def _write_reports(self, record: RunRecord) -> None:
        settings = self._settings
        if settings.html is not None:
            from pytest_energy.report.html import render_html

            history = None
            if settings.history is not None and settings.history.exists():
                history = load_series(settings.history, record.session.machine.hardware_class)
            write_atomic(settings.html, render_html(record, history))
        if settings.markdown is not None:
            from pytest_energy.report.markdown import summary_markdown

            write_atomic(settings.markdown, summary_markdown(record))

    def write_terminal(self, terminalreporter: Any) -> None:
        from pytest_energy.report.terminal import write_energy_section

        if self.record is None:
            return
        write_energy_section(
            terminalreporter,
            self.record,
            top=self._settings.top,
            json_path=self._settings.json,
            failure=self.exit_reason,
        )


def save_or_update(settings: Settings, record: RunRecord, commit: str | None) -> str:
    """Write the baseline this run was asked to write; the line to show. Raises SettingError."""
    store = BaselineStore(settings.dir)
    name = settings.baseline_name
    try:
        if settings.update_baseline:
            assert settings.reason is not None
            nodeids = [t.nodeid for t in record.tests if t.per_unit_samples() is not None]
            path = store.update_entries(record, name, nodeids, settings.reason, commit=commit)
            return f"baseline {path}: updated {len(nodeids)} tests ({settings.reason})"
        path = store.save_run(record, name, commit=commit)
    except BaselineError as exc:
        raise SettingError(str(exc)) from None
    saved = sum(1 for t in record.tests if t.per_unit_samples() is not None)
    return f"baseline {path}: saved {saved} tests for {record.session.machine.hardware_class}"


def gate_failure(record: RunRecord) -> str:
    """The one line that says why the gate failed the build."""
    gate = record.gate
    if gate is None:
        return "energy gate failed"
    regressions = gate.counts.get("regression", 0)
    parts = [f"{regressions} regression{'s' if regressions != 1 else ''}"]
    if gate.suite.status == "regression":
        parts.append("the suite total regressed")
    return f"energy gate failed: {', '.join(parts)} against baseline {gate.baseline}"


def _benchmarks(record: RunRecord) -> list[str]:
    """The passed benchmarks of a run: what a baseline's fresh processes measure again."""
    return [
        t.nodeid
        for t in record.tests
        if t.benchmark is not None and t.outcome == "passed" and t.per_unit_samples() is not None
    ]
