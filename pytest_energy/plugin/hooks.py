"""The hooks that run while ``--energy`` is on: windows around tests, results, files.

Each test's window opens before its call (or its setup, with
``--energy-scope=protocol``) and closes after it; the finished result rides on
the teardown report, so it reaches the controller the same way with or
without pytest-xdist. The controller alone writes files, gates and reports.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import replace
from typing import Any

import pytest

from pytest_energy.carbon.accounting import SessionCarbon
from pytest_energy.config.settings import SettingError, Settings, TestSettings, marker_options
from pytest_energy.gate.run_gate import Gatekeeper, save_or_update
from pytest_energy.measure.recorder import EnergySession, Role
from pytest_energy.meters import MeterUnavailable
from pytest_energy.record import (
    Measurement,
    RunRecord,
    TestResult,
    from_plain,
    to_plain,
    write_atomic,
)

REPORT_KEY = "pytest_energy"
TEST_SETTINGS = pytest.StashKey[TestSettings]()
WINDOW = pytest.StashKey[Any]()
MEASUREMENT = pytest.StashKey[Measurement | None]()
OUTCOME = pytest.StashKey[str]()
BENCHMARK = pytest.StashKey[Any]()
BUDGET_NOTES = pytest.StashKey[list[dict[str, Any]]]()
SCREEN = pytest.StashKey[str]()


class EnergyWarning(UserWarning):
    """A pytest-energy condition the user should see, e.g. a modelled budget breach."""


def _role(config: pytest.Config) -> tuple[Role, int]:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        count = int(
            workerinput.get("workercount", os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        )
        return "worker", count
    processes = getattr(config.option, "numprocesses", None)
    if processes and getattr(config.option, "dist", "no") != "no":
        return "controller", int(processes)
    return "serial", 0


class EnergyRun:
    """The active plugin object of an energy session."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        session: EnergySession,
        carbon: SessionCarbon,
        gate: Gatekeeper | None,
    ) -> None:
        from pytest_energy.measure.families import FamilyRegistry, FamilySpec

        self.config = config
        self.settings = settings
        self.session = session
        self.carbon = carbon
        self.gate = gate
        #: Collected tests with a baseline: the size of the gate's Holm family.
        self.gated_tests = 0
        self.exit_reason: str | None = None
        self.families = FamilyRegistry()
        self.family_specs: dict[str, FamilySpec] = {}

    @classmethod
    def start(cls, config: pytest.Config, settings: Settings) -> EnergyRun:
        role, workers = _role(config)
        try:
            # Workers only need the carbon settings for CO2e budgets: the live
            # provider, if any, is asked once, by the process that reports.
            carbon = SessionCarbon.resolve(settings, config, live=role != "worker")
        except SettingError as exc:
            raise pytest.UsageError(str(exc)) from None
        try:
            session = EnergySession(settings, role, workers=workers)
        except MeterUnavailable as exc:
            raise pytest.UsageError(f"--energy-meter={settings.meter}: {exc}") from None
        except (SettingError, ValueError) as exc:
            raise pytest.UsageError(f"--energy-meter={settings.meter}: {exc}") from None
        session.notices.extend(carbon.notices)
        try:
            if role != "worker":
                _check_history(settings)
            gate = Gatekeeper.open(settings, session.machine, settings.branch)
        except SettingError as exc:
            session.close()
            raise pytest.UsageError(str(exc)) from None
        run = cls(config, settings, session, carbon, gate)
        if role == "controller" and config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(_XdistController(run), "energy-xdist")
        return run

    # -- header and collection -----------------------------------------------

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        lines = [self.session.header_line(), f"energy: {self.carbon.header_line()}"]
        lines.extend(f"energy: {notice}" for notice in self.session.notices)
        return lines

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        from pytest_energy.measure.families import family_spec, order_families

        try:
            for item in items:
                marker = marker_options(item)
                item.stash[TEST_SETTINGS] = self._test_settings(marker)
                if self.gate is not None and item.nodeid in self.gate.samples:
                    self.gated_tests += 1
                if "max_gco2e" in marker:
                    self.carbon.check_budget(
                        marker["max_gco2e"], f"{item.nodeid}: @pytest.mark.energy"
                    )
                spec = family_spec(item, marker)
                if spec is not None:
                    self.family_specs[item.nodeid] = spec
            order_families(items, self.family_specs)
        except SettingError as exc:
            raise pytest.UsageError(str(exc)) from None

    def family_spec(self, item: pytest.Item) -> Any:
        return self.family_specs.get(item.nodeid)

    def gate_extra_rounds(
        self, item: pytest.Item, rounds: list[Any], units: float, unit: str
    ) -> int:
        """Confirmation rounds the gate wants for this benchmark (0 when not gating)."""
        if self.gate is None or self.session.concurrent or not rounds:
            return 0
        settings = self.test_settings(item)
        if not settings.gate:
            return 0
        mine = [r for r in rounds if r.role == "candidate" and r.calls > 0]
        per_unit = [r.total_j / (r.calls * units) for r in mine]
        threshold = settings.marker.get("max_regression")
        normalized = [
            r.total_j / (r.calls * units) / r.calibration_j for r in mine if r.calibration_j
        ]
        extra, reason = self.gate.extra_rounds(
            item.nodeid,
            unit,
            per_unit,
            self.session.method,
            threshold,
            self.gated_tests,
            normalized,
        )
        item.stash[SCREEN] = reason
        return extra

    def grams_per_joule(self) -> float | None:
        """Fixed g CO2e per joule for CO2e budgets, or None when the intensity is not fixed."""
        return self.carbon.grams_per_joule()

    def _test_settings(self, marker: dict[str, Any]) -> TestSettings:
        settings = TestSettings.for_item(self.settings, marker)
        writing = self.settings.save_baseline is not None or self.settings.update_baseline
        if writing and "rounds" not in marker and self.settings.origins.get("rounds") == "default":
            from pytest_energy.gate.rule import RECOMMENDED_BASELINE_ROUNDS

            # A stored baseline limits every later comparison more than the
            # current run does (benchmarks/gate_power.py), and it is saved once.
            rounds = min(RECOMMENDED_BASELINE_ROUNDS, self.settings.max_rounds)
            settings = replace(settings, rounds=max(rounds, settings.rounds))
        return settings

    def test_settings(self, item: pytest.Item) -> TestSettings:
        if TEST_SETTINGS not in item.stash:
            item.stash[TEST_SETTINGS] = self._test_settings(marker_options(item))
        return item.stash[TEST_SETTINGS]

    # -- the session around the tests ----------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        measuring = self.session.role != "controller" and not self.config.option.collectonly
        # Normalized benchmarks carry their own calibration, round by round; the
        # start-and-end drift check is for sessions that compare raw joules.
        calibrating = (
            measuring
            and self.gate is not None
            and self.settings.calibration
            and not self.session.concurrent
            and not self.session.normalizing
        )
        if measuring:
            self.session.measure_idle()
        if calibrating:
            self.session.calibration["start"] = self.session.measure_calibration()
        if self.session.role == "controller":
            self.session.notices.append(
                f"tests ran in {self.session.workers} parallel workers and energy counters are "
                "machine-wide, so every test is flagged 'concurrent'; run the energy job "
                "serially (-n 0) for numbers you can compare"
            )
        try:
            return (yield)
        finally:
            if calibrating and self.session.failure is None:
                self.session.calibration["end"] = self.session.measure_calibration()

    # -- windows around each test --------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, object, object]:
        if self.settings.scope == "protocol":
            item.stash[WINDOW] = self.session.open_window()
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        if self.settings.scope == "call":
            item.stash[WINDOW] = self.session.open_window()
        try:
            result = yield
        finally:
            if self.settings.scope == "call":
                item.stash[MEASUREMENT] = self.session.close_window(item.stash.get(WINDOW, None))
        if self.settings.scope == "call" and BENCHMARK not in item.stash:
            self._check_test_budgets(item, item.stash.get(MEASUREMENT, None))
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            if self.settings.scope == "protocol":
                item.stash[MEASUREMENT] = self.session.close_window(item.stash.get(WINDOW, None))

    def _check_test_budgets(self, item: pytest.Item, measurement: Measurement | None) -> None:
        """Budgets of a plain test (no energy_benchmark) judge its one window."""
        settings = self.test_settings(item)
        if measurement is None or not settings.budgets:
            return
        from pytest_energy.gate.budgets import judge_window

        notes = judge_window(measurement, settings, self.grams_per_joule())
        item.stash[BUDGET_NOTES] = [note.as_dict() for note in notes]
        for note in notes:
            note.enforce(_location(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        outcome = item.stash.get(OUTCOME, "passed")
        if report.when == "setup" and not report.passed:
            outcome = "skipped" if report.skipped else "error"
        elif report.when == "call":
            outcome = report.outcome
        elif report.when == "teardown" and report.failed:
            outcome = "error"
        item.stash[OUTCOME] = outcome
        if report.when == "teardown":
            result = self._result(item, outcome)
            if result is not None:
                if self.session.role == "worker":
                    # Rides to the xdist controller on the report, as plain data.
                    report.__dict__[REPORT_KEY] = to_plain(result)
                else:
                    self._collect(result)
        return report

    def _result(self, item: pytest.Item, outcome: str) -> TestResult | None:
        measurement = item.stash.get(MEASUREMENT, None)
        benchmark = item.stash.get(BENCHMARK, None)
        failure = self.session.failure
        if measurement is None and benchmark is None and failure is None:
            return None  # never measured (skipped in setup with call scope)
        path, line, _ = item.location
        flags_error = None
        if measurement is None and failure is not None:
            flags_error = f"not measured: {failure}"
        return TestResult(
            nodeid=item.nodeid,
            file=path,  # already relative to the rootdir
            line=None if line is None else line + 1,
            outcome=outcome,  # type: ignore[arg-type]
            scope=self.settings.scope,
            measurement=measurement,
            net_j=None if measurement is None else self.session.net_joules(measurement),
            benchmark=getattr(benchmark, "result", None),
            variant=getattr(benchmark, "variant_record", None),
            budget=item.stash.get(BUDGET_NOTES, []) + list(getattr(benchmark, "budget_notes", [])),
            error=flags_error,
            worker=os.environ.get("PYTEST_XDIST_WORKER"),
            gating=self._gating(item),
        )

    def _gating(self, item: pytest.Item) -> dict[str, Any] | None:
        if self.gate is None:
            return None
        settings = self.test_settings(item)
        return {
            "enabled": settings.gate,
            "threshold": settings.marker.get("max_regression"),
            "screen": item.stash.get(SCREEN, ""),
        }

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """On the xdist controller: the workers' results arrive on their reports."""
        if self.session.role != "controller" or report.when != "teardown":
            return
        data = report.__dict__.get(REPORT_KEY)
        if isinstance(data, dict):
            self._collect(from_plain(TestResult, data))

    def _collect(self, result: TestResult) -> None:
        if result.measurement is not None:
            per_unit = result.benchmark.per_unit.median if result.benchmark else None
            result = replace(result, carbon=self.carbon.carbon(result.measurement, per_unit))
        self.session.add_result(result)
        self.config.hook.pytest_energy_test_result(config=self.config, result=result)

    # -- the end -----------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.session.role == "worker":
            workeroutput = getattr(self.config, "workeroutput", None)
            if workeroutput is not None:
                workeroutput[REPORT_KEY] = self.session.worker_output()
            return
        if self.session.failure is not None and session.exitstatus == pytest.ExitCode.OK:
            # Numbers stop where the meter stopped: the energy job did not do its job.
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            self.exit_reason = f"energy measurement failed: {self.session.failure}"
        interrupted = session.exitstatus == pytest.ExitCode.INTERRUPTED
        record = self.session.record(int(session.exitstatus), interrupted=interrupted)
        record = self._complete(record)
        if self.gate is not None and not interrupted:
            record, failed = self.gate.decide(record, self.session.calibration)
            if failed and session.exitstatus == pytest.ExitCode.OK:
                # Fail like a failing test run, through the session, never by raising.
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
                self.exit_reason = self.exit_reason or _gate_failure(record)
        self.config.hook.pytest_energy_run_record(config=self.config, record=record)
        record = self._write_baseline(record, session)
        record = replace(
            record, session=replace(record.session, exit_status=int(session.exitstatus))
        )
        self.record = record
        self.session.write_json(record)
        self._append_history(record)
        self._write_reports(record)

    def _write_baseline(self, record: RunRecord, session: pytest.Session) -> RunRecord:
        settings = self.settings
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
        if self.settings.history is None or record.session.interrupted:
            return
        from pytest_energy.storage.history import History, HistoryError

        try:
            History(self.settings.history).append(record)
        except HistoryError as exc:
            self.session.notices.append(f"history not updated: {exc}")

    def _write_reports(self, record: RunRecord) -> None:
        if self.settings.html is not None:
            from pytest_energy.report.html import render_html

            history = None
            if self.settings.history is not None and self.settings.history.exists():
                from pytest_energy.cli import load_history

                history = load_history(self.settings.history, record)
            write_atomic(self.settings.html, render_html(record, history))
        if self.settings.markdown is not None:
            from pytest_energy.report.markdown import summary_markdown

            write_atomic(self.settings.markdown, summary_markdown(record))

    def _complete(self, record: RunRecord) -> RunRecord:
        """Add what only the whole run knows: families, CO2e totals, the commit."""
        from pytest_energy.measure.families import build_families
        from pytest_energy.measure.machine import git_revision

        commit, branch = git_revision(self.config.rootpath)
        record = replace(
            record,
            session=replace(record.session, commit=commit, branch=self.settings.branch or branch),
        )

        grams = [t.carbon.grams for t in record.tests if t.carbon is not None]
        session = replace(
            record.session, carbon=self.carbon.session_record(sum(grams) if grams else None)
        )
        families = build_families([t.variant for t in record.tests if t.variant])  # type: ignore[misc]
        return replace(record, session=session, families=families)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.session.role == "worker":
            return
        from pytest_energy.report.terminal import write_energy_section

        record = getattr(self, "record", None)
        if record is None:
            return
        write_energy_section(
            terminalreporter,
            record,
            top=self.settings.top,
            json_path=self.settings.json,
            failure=self.exit_reason,
        )

    def pytest_unconfigure(self) -> None:
        self.session.close()


def _location(item: pytest.Item) -> tuple[str, int]:
    """Where warnings about a test point: its file and (1-based) line."""
    path, line, _ = item.reportinfo()
    return str(path), (line or 0) + 1


def _check_history(settings: Settings) -> None:
    """Refuse, before any test runs, a history path that holds someone else's file."""
    if settings.history is None or not settings.history.exists():
        return
    from pytest_energy.storage.history import History, HistoryError

    try:
        History(settings.history).trend(None, limit=1)
    except HistoryError as exc:
        raise SettingError(f"--energy-history: {exc}") from None


def _gate_failure(record: RunRecord) -> str:
    gate = record.gate or {}
    counts = gate.get("counts", {})
    regressions = counts.get("regression", 0)
    suite = gate.get("suite", {})
    parts = [f"{regressions} regression{'s' if regressions != 1 else ''}"]
    if suite.get("status") == "regression":
        parts.append("the suite total regressed")
    return f"energy gate failed: {', '.join(parts)} against baseline {gate.get('baseline')}"


class _XdistController:
    """xdist hooks, registered only when xdist drives this session."""

    def __init__(self, run: EnergyRun) -> None:
        self.run = run

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", {}).get(REPORT_KEY)
        if isinstance(output, dict):
            self.run.session.merge_worker(output)
