"""The end of an energy session: the gate's decision, the baseline, and every file.

Runs on the process that reports (the xdist controller, or the only process):
the run record is completed with what only the whole run knows (families,
CO2e totals, the commit), the gate decides and sets the exit status through the
session, never by raising, then the files are written.

Writing is fail-safe. The JSON results go first, so they exist whatever happens
next; then the baseline, the history, the HTML report and the Markdown summary,
each under its own guard, so one that fails never stops the others. Every
failure is one line in the terminal's energy section and a notice in the JSON:
when a later step added a notice, the JSON is written once more at the end, so
the final file holds them all. (A FIFO or ``/dev/stdout`` gets the JSON once,
at the end: its reader would see every write.)

The exit status, when the tests and the gate passed (a failed run keeps its own):

* a baseline that was asked for (``--energy-save-baseline``,
  ``--energy-update-baseline``) and not written: 4, pytest's usage error;
* any other file that was asked for and not written (the JSON results, the
  history, the HTML report, the Markdown summary): 1, the build fails;
* a history locked by another run past the busy timeout is no failure: the run
  is queued beside the history and added by the next run, so nothing is lost.

An interrupted run writes no baseline and is not added to the history; a run
that ended in a usage error before the end (a bad marker) writes nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_energy.carbon.accounting import SessionCarbon
from pytest_energy.config.settings import SettingError, Settings
from pytest_energy.measure.machine import git_revision
from pytest_energy.measure.recorder import SessionRecorder
from pytest_energy.record import ResultsError, RoundRole, RunRecord
from pytest_energy.storage.history import HistoryError
from pytest_energy.storage.history_store import open_history, trend_series

if TYPE_CHECKING:
    from pytest_energy.config.families import FamilySpec
    from pytest_energy.gate.run_gate import RunGate

#: What a writer raises for reasons a user can fix: shown as its message alone.


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
        #: A line per requested file that could not be written.
        self._failures: list[str] = []
        self._json_written = False
        self._paused_collector = False

    def finish(self, session: pytest.Session) -> None:
        # The collector stays paused until :meth:`close`. The results' records, made now
        # if they were rows (four objects a test), met the young collections of the end,
        # which walked them (2,000 trivial tests with --energy-json: 16.5 M instructions,
        # callgrind), and at a suite size where they tip it, one full collection more than
        # plain pytest makes (issue 16). They die at close, before pytest's own
        # collections at unconfigure walk the heap.
        self._paused_collector = self._paused_collector or gc.isenabled()
        gc.disable()
        recorder, gate, config = self._recorder, self._gate, self._config
        if session.exitstatus == pytest.ExitCode.USAGE_ERROR:
            # A run refused for a usage error (a bad marker, found at collection) measured
            # nothing worth keeping: no results, no history row, no report.
            return
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
        self.record = self._write_files(record, session)

    def _write_files(self, record: RunRecord, session: pytest.Session) -> RunRecord:
        """Write every file asked for, JSON first, each guarded; the record as finally written."""
        json_path = self._settings.json
        streamed = False
        if json_path is not None:  # output_files is imported where there is an output
            from pytest_energy.output_files import writes_through

            streamed = writes_through(json_path)
        first = self._with_status(record, session)
        written = streamed or self._guarded(
            "results", session, lambda: self._recorder.write_json(first)
        )
        record = self._write_baseline(first, session)
        record = self._note(record, self._append_history(record, session))
        record = self._write_reports(record, session)
        final = self._with_status(self._note(record, []), session)
        if written and (streamed or _told_more(final, first)):
            # A stream gets its one write here; a file gets the notices added since.
            written = self._guarded("results", session, lambda: self._recorder.write_json(final))
            final = self._with_status(self._note(final, []), session)
        self._json_written = written and json_path is not None
        return final

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
        from pytest_energy.measure.replicas import merge, run_replicas

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
        variants = [t.variant for t in record.tests if t.variant is not None]
        families = []
        if variants:
            from pytest_energy.gate.variants import build_families

            families = build_families(variants)
        return replace(record, session=session, families=families)

    def _write_baseline(self, record: RunRecord, session: pytest.Session) -> RunRecord:
        settings = self._settings
        if settings.save_baseline is None and not settings.update_baseline:
            return record
        if session.exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            return record  # an interrupted or broken run is no baseline
        try:
            line = save_or_update(settings, record, record.session.commit)
        except Exception as exc:
            line = f"baseline not written: {describe(exc)}"
            # Asked for and not written: a usage error, like a bad baseline name.
            self._fail(line, session, pytest.ExitCode.USAGE_ERROR)
        return self._note(record, [line])

    def _append_history(self, record: RunRecord, session: pytest.Session) -> list[str]:
        """Add this run to the history; the lines to show (queued runs, a locked history)."""
        history = open_history(self._settings.history, self._settings.history_url)
        if history is None or record.session.interrupted:
            return []
        lines: list[str] = []
        self._guarded("history", session, lambda: lines.extend(history.add_run(record)))
        return lines

    def _write_reports(self, record: RunRecord, session: pytest.Session) -> RunRecord:
        settings = self._settings
        html, markdown = settings.html, settings.markdown
        if html is not None:
            record, history = self._trend_series(record)
            self._guarded("HTML report", session, lambda: _write_html(html, record, history))
        if markdown is not None:
            self._guarded("Markdown summary", session, lambda: _write_markdown(markdown, record))
        return record

    def _trend_series(self, record: RunRecord) -> tuple[RunRecord, dict[str, list[float]] | None]:
        """The history's sparklines for the HTML report; a report without them if unreadable."""
        settings = self._settings
        try:
            return record, trend_series(
                settings.history, settings.history_url, record.session.machine.hardware_class
            )
        except Exception as exc:
            line = f"HTML report drawn without trends: {describe(exc)}"
            return self._note(record, [line]), None

    def _guarded(self, what: str, session: pytest.Session, write: Callable[[], object]) -> bool:
        """Run one writer; a failure is a line and a notice, never the end of the others."""
        try:
            write()
        except Exception as exc:
            # Expected errors and bugs alike: one writer must not cost the other files.
            line = f"{what} not written: {describe(exc)}"
            self._fail(line, session, pytest.ExitCode.TESTS_FAILED)
            return False
        return True

    def _fail(self, line: str, session: pytest.Session, status: pytest.ExitCode) -> None:
        """A requested file was not written: it fails a run that was otherwise OK."""
        self._failures.append(line)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = status
            self.exit_reason = self.exit_reason or line

    def _note(self, record: RunRecord, lines: Sequence[str]) -> RunRecord:
        """The record with ``lines`` and every failure so far among its notices."""
        notices = list(record.session.notices)
        for line in [*lines, *self._failures]:
            if line not in notices:
                notices.append(line)
        return replace(record, session=replace(record.session, notices=notices))

    @staticmethod
    def _with_status(record: RunRecord, session: pytest.Session) -> RunRecord:
        return replace(record, session=replace(record.session, exit_status=int(session.exitstatus)))

    def close(self) -> None:
        """Let go of the run's record and resume the collector paused by :meth:`finish`."""
        self.record = None
        if self._paused_collector:
            self._paused_collector = False
            gc.enable()

    def write_terminal(self, terminalreporter: Any) -> None:
        from pytest_energy.report.terminal import write_energy_section

        if self.record is None:
            return
        # The line that failed the build is shown once, in red, not also as a note.
        notices = [n for n in self.record.session.notices if n != self.exit_reason]
        record = replace(self.record, session=replace(self.record.session, notices=notices))
        write_energy_section(
            terminalreporter,
            record,
            top=self._settings.top,
            json_path=self._settings.json if self._json_written else None,
            failure=self.exit_reason,
        )


def save_or_update(settings: Settings, record: RunRecord, commit: str | None) -> str:
    """Write the baseline this run was asked to write; the line to show. Raises SettingError."""
    from pytest_energy.storage.baseline_file import BaselineError
    from pytest_energy.storage.baselines import BaselineStore

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


def describe(exc: BaseException) -> str:
    """Why a writer failed, on one line: the message of an error a user can fix, else its type
    too (a bug somewhere, still without a traceback that would hide the other files)."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    elif isinstance(exc, _user_errors()):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _told_more(final: RunRecord, first: RunRecord) -> bool:
    """Whether the steps after the first JSON changed what it says: notices, exit status."""
    return (final.session.notices, final.session.exit_status) != (
        first.session.notices,
        first.session.exit_status,
    )


def _write_html(path: Path, record: RunRecord, history: dict[str, list[float]] | None) -> None:
    from pytest_energy.output_files import write_atomic
    from pytest_energy.report.html import render_html

    write_atomic(path, render_html(record, history))


def _write_markdown(path: Path, record: RunRecord) -> None:
    from pytest_energy.output_files import write_atomic
    from pytest_energy.report.markdown import summary_markdown

    write_atomic(path, summary_markdown(record))


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


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors a user can fix: their message says it all. Imported only on a failure."""
    from pytest_energy.storage.baseline_file import BaselineError

    return (OSError, SettingError, HistoryError, BaselineError, ResultsError)
