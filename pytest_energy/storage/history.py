"""The local run history: every run appended to an SQLite file.

The history (default ``.energy/history.sqlite``) stays on the machine that made
it (the folder's ``.gitignore`` says so). It answers three questions: how a
test's energy moved over the last runs (``pytest-energy history``, the HTML
sparklines), and what the last K runs of each test on a branch measured, which
the gate can use as a baseline distribution instead of a committed file.

Several pytest sessions may append at once (parallel CI jobs on one runner, a
developer's two terminals), so the database runs in WAL mode with a busy
timeout and each run is written in one transaction. A file at the history path
that is not a pytest-energy history is reported, never written to.

A history that stays locked longer than the busy timeout (another run stuck
mid-write) never costs a run: :meth:`History.add_run` then queues the run as a
results file in ``<history>.pending/``, and the next run that gets the lock
adds the queued runs first, in the order they were queued, each once.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from pytest_energy.frozen import frozen
from pytest_energy.output_files import write_atomic
from pytest_energy.record import ResultsError, RunRecord, load
from pytest_energy.record_json import JSONInputError, parse_json
from pytest_energy.storage.energy_dir import prepare_directory
from pytest_energy.storage.history_schema import (
    APPLICATION_ID,
    MIGRATIONS,
    POINTS,
    SCHEMA,
    SCHEMA_VERSION,
    has_run,
    insert_run,
    record_json_text,
)

__all__ = [
    "DEFAULT_PATH",
    "SCHEMA_VERSION",
    "History",
    "HistoryError",
    "HistoryLocked",
    "TrendPoint",
]

DEFAULT_PATH = Path(".energy/history.sqlite")
#: Long enough for another session to finish writing a run; a writer holds the
#: lock for milliseconds, so hitting this means something is stuck. Read at each
#: connection, so a test can shorten it.
BUSY_TIMEOUT_S = 10.0
#: Beside the history, the folder of runs queued while it was locked.
PENDING_SUFFIX = ".pending"
#: Points per sparkline taken from the history.
SERIES_POINTS = 20

_SQLITE_HEADER = b"SQLite format 3\x00"


class HistoryError(ValueError):
    """A history file that cannot be used; the message is one line."""


class HistoryLocked(HistoryError):
    """Another process held the history's write lock for longer than the busy timeout."""


@frozen
class TrendPoint:
    """One test in one run, as ``pytest-energy history`` and the report show it."""

    run_id: int
    started: str
    commit: str | None
    branch: str | None
    hardware_class: str
    method: str
    nodeid: str
    outcome: str
    #: Median joules per ``unit``; None when the run gave no usable figure.
    per_unit: float | None
    unit: str | None
    joules: float | None
    seconds: float | None
    flags: tuple[str, ...]
    verdict: str | None
    ratio: float | None


class History:
    """The SQLite history at ``path``; each call opens and closes its own connection."""

    def __init__(self, path: Path = DEFAULT_PATH) -> None:
        self.path = Path(path)

    @property
    def pending_dir(self) -> Path:
        """Where runs wait while the history is locked: ``<history>.pending``."""
        return self.path.with_name(self.path.name + PENDING_SUFFIX)

    def append(
        self,
        record: RunRecord,
        *,
        commit: str | None = None,
        branch: str | None = None,
    ) -> int:
        """Store one run (its tests and rounds) in one transaction; returns the run id.

        ``commit`` and ``branch`` default to those recorded in the session. Raises
        :class:`HistoryLocked` when another process keeps the history locked.
        """
        with self._transaction() as conn:
            return insert_run(conn, record, commit=commit, branch=branch)

    def add_run(self, record: RunRecord) -> list[str]:
        """Add the runs queued earlier, then this one; queue it if the history stays locked.

        Returns the lines to show the user: queued runs added, queued files that
        cannot be read (left in place, never deleted), or where this run waits.
        """
        try:
            with self._transaction() as conn:
                said, ingested = self._ingest_pending(conn)
                insert_run(conn, record)
        except HistoryLocked:
            return [self._queue(record)]
        for path in ingested:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                # Left behind, it is recognised as already added on the next run.
                said.append(f"queued run {path} was added but not removed: {exc.strerror}")
        return said

    def _queue(self, record: RunRecord) -> str:
        """Write the run beside the history for the next run to add; the line saying so."""
        stamp = re.sub(r"[^0-9A-Za-z]+", "", record.session.started) or "run"
        path = self.pending_dir / f"{stamp}-{os.getpid()}.json"
        serial = 1
        while path.exists():  # never replace a run queued before
            serial += 1
            path = self.pending_dir / f"{stamp}-{os.getpid()}-{serial}.json"
        try:
            write_atomic(path, record.to_json())
        except OSError as exc:
            raise HistoryError(
                f"the history {self.path} stayed locked by another run for "
                f"{BUSY_TIMEOUT_S:g} s, and this run could not be queued in "
                f"{self.pending_dir}: {exc.strerror or exc}"
            ) from None
        return (
            f"history {self.path} locked by another run; this run queued in {path} "
            "and added on the next run"
        )

    def _ingest_pending(self, conn: sqlite3.Connection) -> tuple[list[str], list[Path]]:
        """Insert the queued runs not yet in the history; the lines, and the files done."""
        lines: list[str] = []
        done: list[Path] = []
        for path in self._pending_files():
            try:
                queued = load(path)
            except ResultsError as exc:
                lines.append(f"queued run left in place, fix or delete it: {exc}")
                continue
            if not has_run(conn, queued):
                insert_run(conn, queued)
                lines.append(f"history: added the run of {queued.session.started} queued in {path}")
            done.append(path)
        return lines, done

    def _pending_files(self) -> list[Path]:
        """The queued runs, oldest first (their names start with their start time)."""
        try:
            return sorted(p for p in self.pending_dir.glob("*.json") if p.is_file())
        except OSError:
            return []

    def trend(
        self,
        nodeid: str | None = None,
        *,
        limit: int = 20,
        hardware_class: str | None = None,
        branch: str | None = None,
    ) -> list[TrendPoint]:
        """The newest ``limit`` runs of one test (or of every test), oldest first."""
        where, params = _filters(nodeid=nodeid, hardware_class=hardware_class, branch=branch)
        with self._reading() as conn:
            if conn is None:
                return []
            rows = conn.execute(POINTS.format(where=where, extra=""), (*params, limit)).fetchall()
        return [_point(row) for row in rows]

    def last_runs(
        self, hardware_class: str, branch: str | None, k: int, *, normalized: bool = False
    ) -> dict[str, list[float]]:
        """Per test, one value per each of its last ``k`` usable runs, oldest first.

        The value is the geometric mean of the run's own rounds, in J per unit (or
        over the calibration workload with ``normalized``): the statistic the gate
        takes of the current run. Only passed tests count, from runs that were not
        interrupted and not measured under pytest-xdist, on ``hardware_class`` and
        on ``branch`` (None: any branch). "Last" follows the order runs were
        appended, not their clocks.
        """
        column = "normalized_mean" if normalized else "process_mean"
        where, params = _filters(hardware_class=hardware_class, branch=branch)
        where += (
            f" AND t.{column} IS NOT NULL AND r.interrupted = 0"
            " AND t.outcome = 'passed' AND t.flags NOT LIKE '%concurrent%'"
        )
        with self._reading() as conn:
            if conn is None:
                return {}
            rows = conn.execute(
                POINTS.format(where=where, extra=f", t.{column} AS value"), (*params, k)
            ).fetchall()
        series: dict[str, list[float]] = {}
        for row in rows:
            series.setdefault(row["nodeid"], []).append(row["value"])
        return series

    def record(self, run_id: int) -> RunRecord:
        """The full run record stored for ``run_id``."""
        with self._reading() as conn:
            row = (
                None
                if conn is None
                else conn.execute("SELECT record FROM runs WHERE id = ?", (run_id,)).fetchone()
            )
        if row is None:
            raise HistoryError(f"no run {run_id} in the history {self.path}")
        try:
            return RunRecord.from_dict(parse_json(record_json_text(row["record"])))
        except (ResultsError, ValueError) as exc:
            raise HistoryError(f"run {run_id} in {self.path} cannot be read: {exc}") from None

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection | None]:
        """A connection for queries, or None when there is no history yet.

        Reading never creates the file: ``pytest-energy history`` in a fresh
        checkout should say "nothing yet", not leave a database behind.
        """
        if not self.path.exists():
            yield None
            return
        with self._connection() as conn:
            yield conn if self._check_schema(conn) else None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if not self.path.exists() and not self.path.parent.exists():
            prepare_directory(self.path.parent)
        with self._connection() as conn:
            if not self._check_schema(conn):
                self._create_schema(conn)
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        self._check_header()
        try:
            # Autocommit mode: transactions are opened explicitly, with BEGIN IMMEDIATE
            # so a writer waits for the lock up front instead of failing mid-way.
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot open the history {self.path}: {exc}") from None
        with closing(conn):
            conn.row_factory = sqlite3.Row
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                yield conn
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise HistoryLocked(
                        f"the history {self.path} stayed locked by another process for "
                        f"{BUSY_TIMEOUT_S:g} s; try again when it has finished"
                    ) from None
                raise HistoryError(f"cannot use the history {self.path}: {exc}") from None
            except sqlite3.DatabaseError as exc:
                raise HistoryError(f"cannot use the history {self.path}: {exc}") from None

    def _check_header(self) -> None:
        """Refuse, before SQLite touches it, a file that is not an SQLite database.

        An empty file is accepted: it holds nothing to lose, and it is what a
        first connection to a new path leaves behind.
        """
        if self.path.is_dir():
            raise HistoryError(f"the history path {self.path} is a directory, not a file")
        try:
            with self.path.open("rb") as handle:
                header = handle.read(len(_SQLITE_HEADER))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise HistoryError(f"cannot read the history {self.path}: {exc}") from None
        if header and header != _SQLITE_HEADER:
            raise HistoryError(
                f"{self.path} is not an SQLite database, so it is not a pytest-energy "
                f"history; it was left untouched: move it away or choose another history path"
            )

    def _check_schema(self, conn: sqlite3.Connection) -> bool:
        """True when the file holds our schema; False when it is empty; else an error."""
        # One statement, so one snapshot: read separately, a schema another process
        # commits in between looked like someone else's database (seen under load).
        application_id, version, tables = conn.execute(
            "SELECT (SELECT application_id FROM pragma_application_id()), "
            "(SELECT user_version FROM pragma_user_version()), "
            "(SELECT count(*) FROM sqlite_master)"
        ).fetchone()
        if application_id == APPLICATION_ID:
            if version > SCHEMA_VERSION:
                raise HistoryError(
                    f"the history {self.path} has schema version {version}, newer than this "
                    f"pytest-energy reads ({SCHEMA_VERSION}): upgrade pytest-energy"
                )
            if version < SCHEMA_VERSION:
                self._migrate(conn, version)
            return True
        if application_id == 0 and version == 0 and tables == 0:
            return False
        raise HistoryError(
            f"{self.path} is an SQLite database but not a pytest-energy history; it was "
            f"left untouched: move it away or choose another history path"
        )

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        """Bring an older history up to this schema; every step only adds."""
        started = conn.in_transaction
        if not started:
            conn.execute("BEGIN IMMEDIATE")
        try:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            for step in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[step]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            if not started:
                conn.execute("COMMIT")
        except BaseException:
            if not started and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        # WAL lets readers and one writer work at once; it cannot change inside a
        # transaction, and is recorded in the file so later connections keep it.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another session may have created the schema while we waited for the lock.
            if not self._check_schema(conn):
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _filters(
    *, nodeid: str | None = None, hardware_class: str | None = None, branch: str | None = None
) -> tuple[str, list[Any]]:
    clauses, params = ["1 = 1"], []
    for column, value in (
        ("t.nodeid", nodeid),
        ("r.hardware_class", hardware_class),
        ("r.branch", branch),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return " AND ".join(clauses), params


def _point(row: sqlite3.Row) -> TrendPoint:
    return TrendPoint(
        run_id=row["run_id"],
        started=row["started"],
        commit=row["commit_id"],
        branch=row["branch"],
        hardware_class=row["hardware_class"],
        method=row["method"],
        nodeid=row["nodeid"],
        outcome=row["outcome"],
        per_unit=row["per_unit"],
        unit=row["unit"],
        joules=row["joules"],
        seconds=row["seconds"],
        flags=tuple(f for f in row["flags"].split(",") if f),
        verdict=row["verdict"],
        ratio=row["ratio"],
    )


def load_series(
    path: Path, hardware_class: str, points: int = SERIES_POINTS
) -> dict[str, list[float]]:
    """Sparkline series per test id: from a SQLite history, or a JSON object of test id -> numbers.

    The JSON form lets a report draw trends from numbers kept elsewhere.
    """
    try:
        head = path.read_bytes()[:16]
    except FileNotFoundError:
        raise HistoryError(f"history file {path} does not exist") from None
    except OSError as exc:
        raise HistoryError(f"cannot read history file {path}: {exc.strerror or exc}") from None
    if head != _SQLITE_HEADER:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise HistoryError(f"history file {path} is neither SQLite nor JSON") from None
        return _series_from_json(path, text)
    try:
        return History(path).last_runs(hardware_class, None, points)
    except (HistoryError, sqlite3.Error) as exc:
        raise HistoryError(f"cannot read history {path}: {exc}") from None


def _series_from_json(path: Path, text: str) -> dict[str, list[float]]:
    try:
        data = parse_json(text)
    except JSONInputError as exc:
        raise HistoryError(f"history file {path} {exc}") from None
    if not isinstance(data, dict):
        raise HistoryError(f"history file {path} must hold an object of test id -> numbers")
    series: dict[str, list[float]] = {}
    for key, values in data.items():
        if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        ):
            raise HistoryError(f"history file {path}: {key!r} must map to a list of numbers")
        series[str(key)] = [float(v) for v in values]
    return series
