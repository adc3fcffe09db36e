"""One session's measurements: the meters, the idle bracket, every test's result.

The pytest hooks in :mod:`pytest_energy.plugin` only decide *when* a window
opens and closes; this object decides *what* is measured and kept, and turns it
into the run record. Under pytest-xdist each worker measures its own tests and
the controller, which never opens a meter, collects the results.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import pytest

from pytest_energy import __version__
from pytest_energy.config.settings import Settings
from pytest_energy.measure.checkpoint import (
    INCOMPLETE_NOTICE,
    Checkpoint,
    RunningTotals,
    checkpoint_interval,
    results_chunks,
    totals_of,
)
from pytest_energy.measure.rows import Entry, Row, RowShape
from pytest_energy.measure.window import (
    EnergyWindow,
    cuda_in_use,
    gpu_synchronizer,
    measurement_between,
)
from pytest_energy.meters import MeterError, MeterSet, open_meters
from pytest_energy.meters.model import ModelMeter
from pytest_energy.record import (
    SCHEMA_VERSION,
    Calibration,
    Idle,
    Machine,
    Measurement,
    MeterRecord,
    RunRecord,
    Session,
    TestResult,
    Totals,
    from_plain,
    to_plain,
)
from pytest_energy.record_lines import encode_test, offer_written, withdraw_written

if TYPE_CHECKING:
    from pytest_energy.measure.families import FamilyRegistry

Role = Literal["serial", "worker", "controller"]

#: Seconds a GPU is left to settle before idle power is measured after the tests.
POST_LOAD_SETTLE_S = 3.0
#: A crash loses at most this much of the results file (PYTEST_ENERGY_CHECKPOINT_SECONDS
#: overrides it). A checkpoint appends (measure.checkpoint): it costs the tests since the last.
CHECKPOINT_SECONDS = 2.0


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class SessionRecorder:
    """Meters, idle power and results of one pytest session."""

    def __init__(
        self,
        settings: Settings,
        role: Role,
        *,
        workers: int = 0,
        warn: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.settings = settings
        self.role = role
        self.workers = workers
        self.started = _now()
        #: Records, and plain tests' rows (:mod:`.rows`) until :attr:`results` reads them.
        self._entries: list[Entry] = []
        self._rows = 0
        #: Set by :meth:`keep_rows` for a session whose plain tests' results are rows.
        self.row_shape: RowShape | None = None
        self.idle: Idle | None = None
        self.idle_before: Idle | None = None
        self.idle_after: Idle | None = None
        self.idle_note = ""
        self.failure: str | None = None
        self.notices: list[str] = []
        #: The calibration workload's J per call at the start and the end of the session.
        self.calibration = Calibration()
        self._running = RunningTotals()
        self._checkpoint: Checkpoint | None = None
        self._last_checkpoint = 0.0
        self._checkpoint_s = CHECKPOINT_SECONDS
        if settings.json is not None and role != "worker":
            self._checkpoint = Checkpoint(settings.json, encode=self._encode_entry)
            self._checkpoint_s, problem = checkpoint_interval(CHECKPOINT_SECONDS)
            if problem:
                self.notices.append(problem)
        self.meters: MeterSet | None = None
        self._sync: Callable[[], bool] = lambda: False
        self.meter_records: list[MeterRecord] = []
        if role != "controller":
            self.meters = open_meters(
                settings.meter,
                rapl_root=settings.rapl_root,
                model_watts=settings.model_watts,
                process=settings.replica,
                warn=warn,
            )
            self.notices.extend(self.meters.notices)
            self._sync = gpu_synchronizer(self.meters)
            self.meter_records = [
                MeterRecord(
                    name=info.name,
                    method=info.method,
                    update_period_s=info.update_period_s,
                    resolution_j=info.resolution_j,
                    domains={d.name: d.scope for d in info.domains},
                    summary=info.summary,
                    details=dict(info.details),
                )
                for info in self.meters.infos
            ]
        #: Benchmarks interleave the calibration workload with their rounds and are
        #: compared on the ratio: by default only with the live model meter, whose CPU
        #: time per instruction moves with CPU speed (SMT neighbours, frequency).
        self.normalizing = self.meters is not None and (
            settings.normalize == "on"
            or (
                settings.normalize == "auto"
                and self.meters.names == ("model",)
                and not self.meters.virtual_clock
            )
        )
        self._calibration_call_s: float | None = None
        self.machine: Machine | None = None
        if self.meters is not None:
            from pytest_energy.measure.machine import fingerprint

            self.machine = fingerprint(
                self.meters.infos, self.meters.method, __version__, pytest.__version__
            )

    # -- the results -----------------------------------------------------------

    @property
    def results(self) -> list[TestResult]:
        """Every result so far, as records (rows kept until now become records here)."""
        if self._rows:
            self._expand_rows()
        return self._entries  # type: ignore[return-value]  # no rows are left

    @results.setter
    def results(self, results: list[TestResult]) -> None:
        self._entries = list(results)
        self._rows = 0

    def keep_rows(self, shape: RowShape) -> None:
        """Keep plain tests' results as rows of ``shape`` (:meth:`add_row`)."""
        self.row_shape = shape

    def _encode_entry(self, entry: Entry) -> str:
        """A result's line in the results file; a row's is its record's."""
        if isinstance(entry, int):
            assert self.row_shape is not None
            return self.row_shape.line(entry)
        return encode_test(entry)

    def _expand_rows(self) -> None:
        checkpoint = self._checkpoint
        if checkpoint is not None and checkpoint.tests < len(self._entries):
            # The rows not in the file yet are written from their template first (2.5 µs
            # a line against 8.5 µs from the record): a checkpoint, as every 2 s.
            self._last_checkpoint = time.monotonic()
            self._write_checkpoint(checkpoint)
        assert self.row_shape is not None  # rows are only added with a shape
        written = self.row_shape.expand(self._entries, text=self._checkpoint is None)
        self._rows = 0
        if self._checkpoint is not None:
            # The file holds these results: it is finished in place, not rewritten.
            self._checkpoint.adopt(self._entries)
        elif written is not None:  # no file to read back: the history's copy writes them
            offer_written(written)

    # -- what the session measures with --------------------------------------

    @property
    def method(self) -> str:
        if self.meters is not None:
            return self.meters.method
        methods = self._running.methods
        return next(iter(methods)) if len(methods) == 1 else "unknown"

    @property
    def concurrent(self) -> bool:
        """Tests run in parallel: every window also contains other tests' energy."""
        return self.workers > 1

    @cached_property
    def families(self) -> FamilyRegistry:
        """References of model families measured so far in this process.

        Made on first use: a session without families never imports them (issue 16).
        """
        from pytest_energy.measure.families import FamilyRegistry

        return FamilyRegistry()

    def header_line(self) -> str:
        if self.meters is None:
            return (
                f"energy: measured by {self.workers} xdist workers; counters are machine-wide, "
                "so every test is flagged concurrent"
            )
        summaries = "; ".join(info.summary or info.name for info in self.meters.infos)
        if self.meters.method == "modelled":
            return f"energy: {summaries} -- numbers are MODELLED estimates, not measurements"
        return f"energy: {summaries} -- numbers are measured by hardware counters"

    # -- the idle bracket ------------------------------------------------------

    def measure_idle(self) -> None:
        """Measure idle power before the tests, so each test has gross and net energy.

        Only counters see idle power; the model counts this process's CPU time,
        which is already net of everything else.
        """
        self.idle = self.idle_before = self._idle_bracket("before")
        if self.idle is not None:
            self.idle_note = "idle measured before the tests"

    def measure_idle_after(self) -> None:
        """With a GPU meter, measure idle power again after the tests, and choose one.

        A GPU idles higher once this process has a CUDA context (~79 W without,
        ~124 W with one on an H200), and for a few seconds after heavy work (~225 W
        for 0.5 s after 10 s of matmuls, back within 2 % after ~3 s:
        docs/measurements/h200-idle-after-load.json). So the bracket after the tests
        waits for the board to settle, and net figures use the bracket taken in the
        same context state as the tests: the one after them when the tests used CUDA.
        """
        meters = self.meters
        if meters is None or not any(d.scope == "gpu-board" for d in meters.domains):
            return
        if meters.method != "measured" or self.settings.idle_seconds <= 0:
            return
        if not meters.virtual_clock:
            time.sleep(POST_LOAD_SETTLE_S)
        self.idle_after = self._idle_bracket("after")
        if self.idle_after is None:
            return
        if cuda_in_use():
            self.idle_note = (
                "net figures use idle measured after the tests, with the CUDA context "
                "the tests ran in"
            )
            self.idle = self.idle_after
            self.results = [
                replace(r, net_j=self.net_joules(r.measurement)) if r.measurement else r
                for r in self.results
            ]
        elif self.idle is not None:
            self.idle_note = "net figures use idle measured before the tests (no CUDA context)"

    def _idle_bracket(self, phase: str) -> Idle | None:
        meters = self.meters
        if meters is None or meters.method != "measured" or self.settings.idle_seconds <= 0:
            return None
        if self.failure is not None:
            return None
        try:
            start = meters.read()
            if not meters.virtual_clock:
                time.sleep(self.settings.idle_seconds)
            stop = meters.read()
        except MeterError as exc:
            self._fail(f"idle bracket: {exc}")
            return None
        idle = measurement_between(start, stop, meters)
        if idle.seconds <= 0:
            return None
        return Idle(
            seconds=idle.seconds,
            watts={name: j / idle.seconds for name, j in idle.joules.items()},
            total_watts=idle.total_j / idle.seconds,
            phase=phase,
        )

    # -- windows -------------------------------------------------------------

    def open_window(self) -> EnergyWindow | None:
        """A started window, or None when nothing can be measured any more."""
        if self.meters is None or self.failure is not None:
            return None
        window = EnergyWindow(self.meters, self._sync)
        try:
            window.begin()
        except MeterError as exc:
            self._fail(str(exc))
            return None
        return window

    def plain_meter(self) -> ModelMeter | None:
        """The session's one meter when plain tests' windows may be read as its edges
        (:class:`~pytest_energy.measure.rows.EdgeRows`; issue 16): a serial session that
        keeps rows, metered by the model alone, whose reads cannot fail."""
        meters = self.meters
        if meters is None or self.role != "serial" or self.row_shape is None:
            return None
        meter = meters.meters[0]
        return meter if len(meters.meters) == 1 and type(meter) is ModelMeter else None

    def close_window(self, window: EnergyWindow | None) -> Measurement | None:
        if window is None or not window.is_open:
            return None
        extra = ("concurrent",) if self.concurrent else ()
        try:
            return window.end(extra)
        except MeterError as exc:
            self._fail(str(exc))
            return None

    def calibration_calls(self, seconds: float) -> int:
        """Calls of the calibration workload that take about ``seconds``."""
        if self._calibration_call_s is None:
            from pytest_energy.measure.calibration import calibration_work
            from pytest_energy.measure.sizing import time_per_call

            self._calibration_call_s = time_per_call(calibration_work, 0.02)
        return max(1, round(seconds / max(self._calibration_call_s, 1e-9)))

    def fail(self, message: str) -> None:
        """Stop measuring: a meter failed. The message is one line for the user."""
        self._fail(message)

    def _fail(self, message: str) -> None:
        if self.failure is None:
            self.failure = message
            if self.meters is not None:
                self.meters.close()

    def net_joules(self, measurement: Measurement) -> float | None:
        return self.net_of(measurement.total_j, measurement.seconds)

    def net_of(self, joules: float, seconds: float) -> float | None:
        """Joules above the idle bracket's power over ``seconds``; None without one."""
        return None if self.idle is None else joules - self.idle.total_watts * seconds

    # -- results ---------------------------------------------------------------

    def add_result(self, result: TestResult) -> None:
        self._entries.append(result)
        self._running.add(result)
        self._after_add()

    def add_row(self, row: Row) -> None:
        """A plain test's result, as a row of :attr:`row_shape`."""
        self._entries.append(row)
        self._rows += 1
        assert self.row_shape is not None  # rows come from it
        self._running.add_figures(*self.row_shape.figures(row))
        self._after_add()

    def _after_add(self) -> None:
        if self._checkpoint is not None:
            now = time.monotonic()
            if now - self._last_checkpoint >= self._checkpoint_s:
                self._last_checkpoint = now
                self._write_checkpoint(self._checkpoint)

    def record(
        self, exit_status: int | None, *, interrupted: bool, finished: bool = True
    ) -> RunRecord:
        session = self._session(
            totals_of(self.results, self.idle),
            finished=_now() if finished else None,
            exit_status=exit_status,
            interrupted=interrupted,
            notices=list(self.notices),
        )
        return RunRecord(schema_version=SCHEMA_VERSION, session=session, tests=list(self.results))

    def write_json(self, record: RunRecord) -> None:
        """The final results: the checkpoint file finished in place when it holds these
        very results (each test encoded once over the run), else the whole record
        streamed test by test, replacing any checkpoint."""
        path = self.settings.json
        if path is None:
            return
        checkpoint = self._checkpoint
        if checkpoint is not None and checkpoint.applies() and checkpoint.finish(record):
            # The history stores the run too, at the end: its tests are read back from
            # this file rather than encoded again.
            offer_written(checkpoint.tests_text)
            return
        self._checkpoint = None  # nothing appends to a file written whole
        from pytest_energy.output_files import write_atomic_chunks  # only with a results file

        write_atomic_chunks(path, results_chunks(record))

    def _write_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Append the tests since the last checkpoint; a failure stops checkpoints, not tests."""
        if not checkpoint.applies():
            # A FIFO or /dev/stdout: its reader gets the final results once.
            self._checkpoint = None
            return
        # Totals kept as results came: building the session never walks every test.
        session = self._session(
            self._running.totals(self.idle),
            finished=None,
            exit_status=None,
            interrupted=False,
            notices=[*self.notices, INCOMPLETE_NOTICE],
        )
        rest = RunRecord(schema_version=SCHEMA_VERSION, session=session, tests=[])
        try:
            checkpoint.write(self._entries, rest)
        except OSError as exc:
            self._checkpoint = None
            self.notices.append(f"results checkpoints stopped: {exc}")

    def _session(
        self,
        totals: Totals,
        *,
        finished: str | None,
        exit_status: int | None,
        interrupted: bool,
        notices: list[str],
    ) -> Session:
        return Session(
            started=self.started,
            finished=finished,
            machine=self.machine or _fallback_machine(self.method),
            meters=self.meter_records,
            method=self.method,
            idle=self.idle,
            scope=self.settings.scope,
            totals=totals,
            exit_status=exit_status,
            interrupted=interrupted,
            workers=self.workers,
            notices=notices,
            calibration=self.calibration if self.calibration != Calibration() else None,
            idle_before=self.idle_before,
            idle_after=self.idle_after,
            idle_note=self.idle_note,
        )

    # -- pytest-xdist ------------------------------------------------------------

    def worker_output(self) -> dict[str, object]:
        """What a worker sends the controller once, besides the per-test results."""
        return {
            "machine": to_plain(self.machine),
            "meters": [to_plain(m) for m in self.meter_records],
            "idle": to_plain(self.idle),
            "notices": list(self.notices),
            "failure": self.failure,
            "calibration": to_plain(self.calibration),
        }

    def merge_worker(self, output: Mapping[str, Any]) -> None:
        """Adopt the first worker's fingerprint and meters; collect every notice."""
        if self.machine is None and isinstance(output.get("machine"), dict):
            self.machine = from_plain(Machine, output["machine"])
            self.meter_records = [from_plain(MeterRecord, m) for m in output.get("meters", [])]
        for notice in output.get("notices", []):
            if notice not in self.notices:
                self.notices.append(str(notice))
        calibration = output.get("calibration")
        if isinstance(calibration, dict) and not (self.calibration.start or self.calibration.end):
            self.calibration = from_plain(Calibration, calibration)
        if output.get("failure") and self.failure is None:
            self.failure = str(output["failure"])

    def close(self) -> None:
        """Close the meters and let go of the results (nothing reads them after this)."""
        withdraw_written()
        self._entries = []
        self._rows = 0
        self._checkpoint = None
        if self.meters is not None and self.failure is None:
            self.meters.close()


def _fallback_machine(method: str) -> Machine:
    """A fingerprint without meter details, when no worker reported one."""
    from pytest_energy.measure.machine import fingerprint

    return fingerprint((), method, __version__, pytest.__version__)
