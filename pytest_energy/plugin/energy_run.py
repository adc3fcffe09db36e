"""The hooks that run while ``--energy`` is on: windows around tests, and their results.

Each test's window opens before its call (or its setup, with
``--energy-scope=protocol``) and closes after it; the finished result rides on
the teardown report, so it reaches the controller the same way with or without
pytest-xdist. The controller alone gates and writes files
(:mod:`.session_end`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Mapping
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pytest

from pytest_energy.carbon.accounting import SessionCarbon
from pytest_energy.config.marker import TestSettings, marker_options
from pytest_energy.config.settings import SettingError, Settings
from pytest_energy.measure.recorder import SessionRecorder
from pytest_energy.measure.rows import EdgeRows, Row, RowShape
from pytest_energy.measure.window import Edge, EdgeWindows, EnergyWindow
from pytest_energy.meters.model import DOMAIN as MODEL_DOMAIN
from pytest_energy.plugin.session_end import SessionEnd
from pytest_energy.plugin.session_start import open_session
from pytest_energy.plugin.xdist import REPORT_KEY, XdistController, role
from pytest_energy.record import (
    BudgetNote,
    Gating,
    Measurement,
    TestResult,
    VariantResult,
    from_plain,
    to_plain,
)

if TYPE_CHECKING:
    from pytest_energy.config.families import FamilySpec

    # Imported where used: a session that neither compares nor benchmarks never loads
    # the gate or the benchmark machinery (benchmarks/overhead.py, the fixed cost).
    from pytest_energy.gate.run_gate import RunGate
    from pytest_energy.measure.benchmark import EnergyBenchmark
    from pytest_energy.measure.drift import DriftCheck

TEST_SETTINGS = pytest.StashKey[TestSettings]()
WINDOW = pytest.StashKey[EnergyWindow | None]()
MEASUREMENT = pytest.StashKey[Measurement | None]()
BENCHMARK = pytest.StashKey["EnergyBenchmark"]()
BUDGET_NOTES = pytest.StashKey[list[BudgetNote]]()
#: The empty budget list of every test without budgets (records never mutate it): a list
#: per test was one more object for the garbage collector to walk (issue 16).
_NO_BUDGET: list[BudgetNote] = []
VARIANT = pytest.StashKey[VariantResult | None]()
SCREEN = pytest.StashKey[str]()


class EnergyRun:
    """The active plugin object of an energy session."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        recorder: SessionRecorder,
        carbon: SessionCarbon,
        gate: RunGate | None,
    ) -> None:
        self.config = config
        self.settings = settings
        self._recorder = recorder
        self.carbon = carbon
        self.gate = gate
        self.family_specs: dict[str, FamilySpec] = {}
        self._protocol_scope = settings.scope == "protocol"
        #: The edge reader of plain tests' windows, and their rows from the edges, when
        #: the session reads them so (:meth:`SessionRecorder.plain_meter`).
        self._edges: Callable[[], Edge] | None = None
        self._edge_rows: EdgeRows | None = None
        #: The last plain test's window as its two edges, until its report (one test
        #: runs at a time): not a stash entry, three stash calls a test fewer. Made a
        #: measurement only when something asks for one (:meth:`_measurement`).
        self._window_edges: tuple[pytest.Item, Edge, Edge] | None = None
        #: The test whose reports are being logged, and its outcome so far.
        self._item: pytest.Item | None = None
        self._outcome = "passed"
        self._worker = os.environ.get("PYTEST_XDIST_WORKER")
        #: The settings of every test without an ``energy`` marker: one shared object.
        self._unmarked: TestSettings | None = None
        #: ``id()`` of the collected items without an ``energy`` marker. Not a stash entry:
        #: the first entry makes an item's stash dict a container the garbage collector
        #: tracks, and doing that to every item at collection made a 20,000-test run
        #: one more full collection before its first test (issue 16). The items live
        #: as long as the session, so their ids stay theirs.
        self._unmarked_ids: set[int] = set()
        self.end = SessionEnd(config, settings, recorder, carbon, gate, self.family_specs)

    @classmethod
    def start(cls, config: pytest.Config, settings: Settings) -> EnergyRun:
        process_role, workers = role(config)
        carbon, recorder, gate = open_session(settings, config, process_role, workers)
        run = cls(config, settings, recorder, carbon, gate)
        meters = recorder.meters
        if process_role == "serial" and meters is not None and gate is None:
            # A gated session gives every result a verdict, and a worker sends plain data:
            # rows are for the session that keeps its plain results as they are.
            shape = RowShape(
                settings.scope,
                meters.method,
                meters.name_list,
                carbon.with_figures,
                _NO_BUDGET,
                worker=run._worker,
            )
            recorder.keep_rows(shape)
            meter = None if run._protocol_scope else recorder.plain_meter()
            if meter is not None:
                run._edges = meter.edge
                windows = EdgeWindows(meters, MODEL_DOMAIN)
                run._edge_rows = EdgeRows(shape, windows, carbon.figures, recorder.net_of)
        if process_role == "controller" and config.pluginmanager.hasplugin("xdist"):
            controller = XdistController(recorder.merge_worker, run.collect)
            config.pluginmanager.register(controller, "energy-xdist")
        return run

    # -- what a benchmark needs from the session (measure.benchmark.BenchmarkHost) ------

    @property
    def recorder(self) -> SessionRecorder:
        return self._recorder

    @cached_property
    def drift(self) -> DriftCheck:
        """The calibration workload's drift check: only a gated session runs it."""
        from pytest_energy.measure.drift import DriftCheck

        return DriftCheck(self._recorder)

    def test_settings(self, item: pytest.Item) -> TestSettings:
        if id(item) in self._unmarked_ids:
            return self._unmarked or self._test_settings({})
        if TEST_SETTINGS not in item.stash:
            item.stash[TEST_SETTINGS] = self._test_settings(marker_options(item))
        return item.stash[TEST_SETTINGS]

    def family_spec(self, item: pytest.Item) -> FamilySpec | None:
        return self.family_specs.get(item.nodeid)

    def before_rounds(self) -> None:
        """The drift check's start, just before the first benchmark's rounds.

        Taken then, not before the tests, so it runs in the same state as the work:
        with the CUDA context the benchmark created, after its warm-up.
        """
        if self._calibrating and not self._recorder.calibration.start:
            self._recorder.calibration = replace(
                self._recorder.calibration,
                start=self.drift.measure(),
                workload=self.drift.workload,
                skipped=self.drift.skipped or "",
            )

    def benchmark_for(self, request: pytest.FixtureRequest) -> EnergyBenchmark:
        from pytest_energy.measure.benchmark import EnergyBenchmark

        benchmark = EnergyBenchmark(request, self)
        request.node.stash[BENCHMARK] = benchmark
        return benchmark

    def grams_per_joule(self) -> float | None:
        """Fixed g CO2e per joule for CO2e budgets, or None when the intensity is not fixed."""
        return self.carbon.grams_per_joule()

    def _test_settings(self, marker: Mapping[str, Any]) -> TestSettings:
        if not marker:
            if self._unmarked is None:
                self._unmarked = self._settings_for(marker)
            return self._unmarked
        return self._settings_for(marker)

    def _settings_for(self, marker: Mapping[str, Any]) -> TestSettings:
        # A baseline's processes run the same rounds as a compared session's, so that
        # both sides' process means vary alike (docs/gate.md).
        return TestSettings.for_item(self.settings, marker)

    # -- header and collection -----------------------------------------------

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        lines = [self._recorder.header_line(), f"energy: {self.carbon.header_line()}"]
        lines.extend(f"energy: {notice}" for notice in self._recorder.notices)
        return lines

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        inherited: dict[int, tuple[Any, list[pytest.Mark]]] = {}
        unmarked = self._unmarked_ids
        try:
            for item in items:
                marker = marker_options(item, inherited)
                if not marker:
                    unmarked.add(id(item))
                    continue  # the common case: nothing more to read or to check
                item.stash[TEST_SETTINGS] = self._test_settings(marker)
                if "max_gco2e" in marker:
                    self.carbon.check_budget(
                        marker["max_gco2e"], f"{item.nodeid}: @pytest.mark.energy"
                    )
                from pytest_energy.config.families import family_spec

                spec = family_spec(item, marker)
                if spec is not None:
                    self.family_specs[item.nodeid] = spec
            if self.family_specs:
                from pytest_energy.config.families import order_families

                order_families(items, self.family_specs)
        except SettingError as exc:
            raise pytest.UsageError(str(exc)) from None
        wanted = set(self.settings.replica_nodeids)
        if wanted:
            # A replica measures only the benchmarks its parent asked for.
            dropped = [item for item in items if item.nodeid not in wanted]
            if dropped:
                items[:] = [item for item in items if item.nodeid in wanted]
                self.config.hook.pytest_deselected(items=dropped)

    # -- the session around the tests ----------------------------------------

    @property
    def _calibrating(self) -> bool:
        """Whether this session runs the drift check (gated, serial, comparing raw joules).

        Normalized benchmarks carry their own calibration, round by round.
        """
        recorder = self._recorder
        return (
            recorder.role != "controller"
            and self.gate is not None
            and self.settings.calibration
            and not recorder.concurrent
            and not recorder.normalizing
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        recorder = self._recorder
        measuring = recorder.role != "controller" and not self.config.option.collectonly
        if measuring:
            recorder.measure_idle()
        if recorder.role == "controller":
            recorder.notices.append(
                f"tests ran in {recorder.workers} parallel workers and energy counters are "
                "machine-wide, so every test is flagged 'concurrent'; run the energy job "
                "serially (-n 0) for numbers you can compare"
            )
        try:
            return (yield)
        finally:
            if measuring and recorder.failure is None:
                self._end_of_tests()

    def _end_of_tests(self) -> None:
        recorder = self._recorder
        if self._calibrating and recorder.calibration.start:
            recorder.calibration = replace(recorder.calibration, end=self.drift.measure())
        elif self._calibrating and self.drift.skipped:
            recorder.calibration = replace(recorder.calibration, skipped=self.drift.skipped)
        recorder.measure_idle_after()

    # -- windows around each test --------------------------------------------
    #
    # The per-test path is kept to two meter reads and one small record: every hook
    # here runs for each of a suite's tests, and the plugin is meant to stay on in
    # every CI run (benchmarks/overhead.py measures it). With the default scope the
    # window is this one wrapper; ``--energy-scope=protocol`` adds ProtocolWindows.

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        edge = self._edges
        if self._protocol_scope:
            result = yield
        elif edge is not None and self._recorder.failure is None:
            start = edge()
            try:
                result = yield
            finally:
                self._window_edges = (item, start, edge())
        else:
            window = self._recorder.open_window()
            try:
                result = yield
            finally:
                item.stash[MEASUREMENT] = self._recorder.close_window(window)
        self._judge(item)
        return result

    def _judge(self, item: pytest.Item) -> None:
        """Budgets and variant limits, after a body that passed; a breach fails the test."""
        bench = item.stash.get(BENCHMARK, None)
        if bench is None:
            if self._protocol_scope:
                return
            settings = self.test_settings(item)
            if not settings.budgets:
                return  # the common case
            measurement = self._measurement(item)
            if measurement is not None:
                from pytest_energy.plugin import judging

                item.stash[BUDGET_NOTES] = judging.window_budgets(
                    item, measurement, settings, self.grams_per_joule()
                )
            return
        from pytest_energy.plugin import judging

        settings = self.test_settings(item)
        recorder = self._recorder
        meters = list(recorder.meters.names) if recorder.meters else []
        item.stash[BUDGET_NOTES] = judging.benchmark_budgets(
            item, bench, settings, recorder.method, meters, self.grams_per_joule()
        )
        judged = judging.variant(bench, item.nodeid, recorder.method, recorder.concurrent)
        item.stash[VARIANT] = judged
        judging.enforce_variant(bench, judged)

    # The reports as logged: plain hooks, where a makereport wrapper cost a generator three
    # times a test (issue 16). A report has no item: the protocol's start says which it is.
    # (A node id is made from the node's parts on each read, since pytest 9: read once.)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> None:
        self._item = item  # returns None: pytest's own protocol runs the test

    @pytest.hookimpl(tryfirst=True)  # before pytest-xdist's worker sends the report on
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        when = report.when
        if when == "call":
            outcome: str = report.outcome  # pytest-rerunfailures logs "rerun": it failed
            self._outcome = "failed" if outcome == "rerun" else outcome
        elif when == "setup":
            self._outcome = "passed" if report.passed else "skipped" if report.skipped else "error"
        elif when == "teardown":
            item = self._item
            if item is None or (nodeid := item.nodeid) != report.nodeid:
                return  # the xdist controller (no test), or another plugin's report
            self._item = None
            outcome = "error" if report.failed else self._outcome
            row = self._row(item, nodeid, outcome)
            result = self._result(item, outcome) if row is None else None
            # The result holds the window now; an item outlives it (issue 16: what
            # the items keep, every full garbage collection walks), and a rerun of
            # the item must not find the last run's window.
            self._window_edges = None
            item.stash[MEASUREMENT] = None
            if row is not None:
                self._add_row(row)
            elif result is not None:
                if self._recorder.role == "worker":
                    # Rides to the xdist controller on the report, as plain data.
                    report.__dict__[REPORT_KEY] = to_plain(result)
                else:
                    self._add(result)

    def _row(self, item: pytest.Item, nodeid: str, outcome: str) -> Row | None:
        """A plain test's result as a row (:mod:`pytest_energy.measure.rows`), or None
        when it is not a plain test's: a benchmark, a budget, no measurement."""
        shape = self._recorder.row_shape
        if shape is None or self._recorder.failure is not None:
            return None
        stash = item.stash
        if BENCHMARK in stash or BUDGET_NOTES in stash:
            return None
        window = self._window_edges
        if window is not None and window[0] is item and self._edge_rows is not None:
            path, line, _ = item.location
            number = None if line is None else line + 1
            row = self._edge_rows.row(nodeid, path, number, outcome, window[1], window[2])
            if row is not None:
                return row
        measurement = self._measurement(item)
        if measurement is None:
            return None
        path, line, _ = item.location
        grams, embodied = self.carbon.figures(measurement.total_j, measurement.seconds)
        return shape.row(
            nodeid,
            path,
            None if line is None else line + 1,
            outcome,
            measurement,
            self._recorder.net_joules(measurement),
            grams,
            embodied,
        )

    def _measurement(self, item: pytest.Item) -> Measurement | None:
        """The test's window as a measurement: made from its edges, if it has them."""
        stash = item.stash
        window = self._window_edges
        if window is not None and window[0] is item and self._edge_rows is not None:
            self._window_edges = None
            stash[MEASUREMENT] = self._edge_rows.measurement(window[1], window[2])
        return stash.get(MEASUREMENT, None)

    def _result(self, item: pytest.Item, outcome: str) -> TestResult | None:
        measurement = self._measurement(item)
        bench = item.stash.get(BENCHMARK, None)
        failure = self._recorder.failure
        if measurement is None and bench is None and failure is None:
            return None  # never measured (skipped in setup with call scope)
        path, line, _ = item.location
        variant = item.stash.get(VARIANT, None)
        if variant is None and bench is not None:
            from pytest_energy.plugin import judging

            # The body failed before judging: the measured numbers are still recorded.
            variant = judging.variant(
                bench, item.nodeid, self._recorder.method, self._recorder.concurrent
            )
        benchmark = bench.result if bench is not None else None
        carbon = None
        if measurement is not None and self._recorder.role != "worker":
            # Workers send plain numbers; the controller adds CO2e (see collect).
            per_unit = benchmark.per_unit.median if benchmark else None
            carbon = self.carbon.carbon(measurement, per_unit)
        return TestResult(
            nodeid=item.nodeid,
            file=path,  # already relative to the rootdir
            line=None if line is None else line + 1,
            outcome=outcome,  # type: ignore[arg-type]
            scope=self.settings.scope,
            measurement=measurement,
            net_j=None if measurement is None else self._recorder.net_joules(measurement),
            benchmark=benchmark,
            variant=variant,
            budget=item.stash.get(BUDGET_NOTES, _NO_BUDGET),
            carbon=carbon,
            error=f"not measured: {failure}" if measurement is None and failure else None,
            worker=self._worker,
            gating=self._gating(item),
        )

    def _gating(self, item: pytest.Item) -> Gating | None:
        if self.gate is None:
            return None
        settings = self.test_settings(item)
        return Gating(
            enabled=settings.gate,
            threshold=settings.marker.get("max_regression"),
            screen=item.stash.get(SCREEN, ""),
        )

    def collect(self, data: Mapping[str, Any]) -> None:
        """A worker's result, on the xdist controller: CO2e is added here, then it is kept."""
        result = from_plain(TestResult, data)
        if result.measurement is not None:
            per_unit = result.benchmark.per_unit.median if result.benchmark else None
            result = replace(result, carbon=self.carbon.carbon(result.measurement, per_unit))
        self._add(result)

    def _add(self, result: TestResult) -> None:
        self._recorder.add_result(result)
        hook = self.config.hook.pytest_energy_test_result
        # Asked each time (a plugin may register late), and cheaper than calling a hook
        # nobody implements: about a microsecond a test (issue 16).
        if hook.get_hookimpls():
            hook(config=self.config, result=result)

    def _add_row(self, row: Row) -> None:
        recorder = self._recorder
        recorder.add_row(row)
        hook = self.config.hook.pytest_energy_test_result
        if hook.get_hookimpls() and recorder.row_shape is not None:
            hook(config=self.config, result=recorder.row_shape.record(row))

    # -- the end -----------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._recorder.role == "worker":
            workeroutput = getattr(self.config, "workeroutput", None)
            if workeroutput is not None:
                workeroutput[REPORT_KEY] = self._recorder.worker_output()
            return
        self.end.finish(session)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self._recorder.role != "worker":
            self.end.write_terminal(terminalreporter)

    @pytest.hookimpl(tryfirst=True)
    def pytest_unconfigure(self) -> None:
        # First, and letting go of every result: pytest's own unconfigure runs full
        # garbage collections, which otherwise walk the session's records (at 20,000
        # tests about 0.15 s each, two of them; issue 16).
        self._recorder.close()
        self.end.close()
