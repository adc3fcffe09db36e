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

With a history server (:mod:`.history_postgres`), this file is where a run
waits when the server cannot be reached: a row of its ``queued_runs`` table,
pushed by the next run that reaches the server.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from pytest_energy.frozen import frozen
from pytest_energy.record import ResultsError, RunRecord, load
from pytest_energy.record_json import JSONInputError, parse_json
from pytest_energy.storage.energy_dir import prepare_directory
from pytest_energy.storage.history_base import (
    HistoryError,
    HistoryLocked,
    HistoryUnreachable,
    RunHistory,
    TrendPoint,
)
from pytest_energy.storage.history_schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    SQLITE,
    PackedRecord,
    has_run,
    insert_run,
    migrate,
    schema_statements,
)

__all__ = [
    "DEFAULT_PATH",
    "SCHEMA_VERSION",
    "History",
    "HistoryError",
    "HistoryLocked",
    "HistoryUnreachable",
    "QueuedRun",
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
#: In WAL mode, NORMAL syncs at each checkpoint instead of at each commit: the file is
#: never corrupted, and a power cut can lose the runs written since the last checkpoint,
#: which SQLite runs when the last open connection closes (normally the writing session's
#: own, at its end). With the unsynced switch to WAL below, a first run's history append
#: went from 22 ms to 4.7 ms on a VM's disk, a later run's from 3.1 to 1.5 ms (issue 16).
_SYNCHRONOUS = "PRAGMA synchronous = NORMAL"


@frozen
class QueuedRun:
    """A run kept for a history server that could not take it."""

    id: int
    started: str
    packed: PackedRecord


class History(RunHistory):
    """The SQLite history at ``path``; each call opens and closes its own connection."""

    def __init__(self, path: Path = DEFAULT_PATH) -> None:
        self.path = Path(path)

    @property
    def where(self) -> str:
        return str(self.path)

    @property
    def pending_dir(self) -> Path:
        """Where runs wait while the history is locked: ``<history>.pending``."""
        return self.path.with_name(self.path.name + PENDING_SUFFIX)

    def add_run(self, record: RunRecord) -> list[str]:
        """Add the runs queued earlier, then this one; queue it if the history stays locked.

        Returns the lines to show the user: queued runs added, queued files that
        cannot be read (left in place, never deleted), or where this run waits.
        """
        try:
            with self._transaction() as db:
                said, ingested = self._ingest_pending(db)
                insert_run(db, record)
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
        from pytest_energy.output_files import write_atomic

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

    def _ingest_pending(self, db: _SqliteDatabase) -> tuple[list[str], list[Path]]:
        """Insert the queued runs not yet in the history; the lines, and the files done."""
        lines: list[str] = []
        done: list[Path] = []
        for path in self._pending_files():
            try:
                queued = load(path)
            except ResultsError as exc:
                lines.append(f"queued run left in place, fix or delete it: {exc}")
                continue
            if not has_run(db, queued):
                insert_run(db, queued)
                lines.append(f"history: added the run of {queued.session.started} queued in {path}")
            done.append(path)
        return lines, done

    def _pending_files(self) -> list[Path]:
        """The queued runs, oldest first (their names start with their start time)."""
        try:
            return sorted(p for p in self.pending_dir.glob("*.json") if p.is_file())
        except OSError:
            return []

    # -- the queue of a history server --------------------------------------------------

    def queue_run(self, packed: PackedRecord, started: str, target: str) -> None:
        """Keep a run for the history server ``target`` (its URL without the password).

        Queued twice (the same run, the same server), it is kept once.
        """
        with self._transaction() as db:
            db.execute(
                "INSERT INTO queued_runs (target, run_key, started, record) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (target, run_key) DO NOTHING",
                (target, packed.digest, started, packed.blob),
            )

    def queued_runs(self, target: str) -> list[QueuedRun]:
        """The runs waiting for ``target``, in the order they were queued."""
        with self._reading() as db:
            if db is None:
                return []
            rows = db.rows(
                "SELECT id, started, run_key, record FROM queued_runs WHERE target = ? ORDER BY id",
                (target,),
            )
        return [
            QueuedRun(row["id"], row["started"], PackedRecord(row["record"], row["run_key"]))
            for row in rows
        ]

    def unqueue(self, ids: Sequence[int]) -> None:
        """Forget queued runs the server now holds."""
        if not ids:
            return
        with self._transaction() as db:
            db.execute_many("DELETE FROM queued_runs WHERE id = ?", [(i,) for i in ids])

    def check(self) -> None:
        """Raise :class:`HistoryError` if the file is not a history this version reads.

        Opens the file and reads its schema version only: a check before every run
        must not cost more as the history grows (a query over its tests did).
        """
        with self._reading():
            pass

    @contextmanager
    def _reading(self) -> Iterator[_SqliteDatabase | None]:
        """A connection for queries, or None when there is no history yet.

        Reading never creates the file: ``pytest-energy history`` in a fresh
        checkout should say "nothing yet", not leave a database behind.
        """
        if not self.path.exists():
            yield None
            return
        with self._connection() as conn:
            yield _SqliteDatabase(conn) if self._check_schema(conn) else None

    @contextmanager
    def _transaction(self) -> Iterator[_SqliteDatabase]:
        if not self.path.exists() and not self.path.parent.exists():
            prepare_directory(self.path.parent)
        with self._connection() as conn:
            fresh = not self._check_schema(conn)
            if fresh:
                # WAL lets readers and one writer work at once; it cannot change inside a
                # transaction, and is recorded in the file so later connections keep it.
                # Switching writes the empty file's first page through a rollback journal
                # with four syncs; the file holds nothing yet, so they protect nothing.
                conn.execute("PRAGMA synchronous = OFF")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(_SYNCHRONOUS)
            try:
                conn.execute("BEGIN IMMEDIATE")
                # Another session may have created the schema while we waited for the lock.
                if fresh and not self._check_schema(conn):
                    # In the same transaction as what follows: one commit, not two (0.7 ms
                    # of the 3.6 ms a run's first history write took; issue 16).
                    self._create_tables(conn)
                yield _SqliteDatabase(conn)
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
                conn.execute(_SYNCHRONOUS)
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
        """Bring an older history up to this schema; every step keeps the data."""
        started = conn.in_transaction
        if not started:
            conn.execute("BEGIN IMMEDIATE")
        try:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            migrate(_SqliteDatabase(conn), current)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            if not started:
                conn.execute("COMMIT")
        except BaseException:
            if not started and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _create_tables(self, conn: sqlite3.Connection) -> None:
        """The schema, inside the caller's transaction."""
        for statement in schema_statements(SQLITE):
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


class _SqliteDatabase:
    """An SQLite connection as the shared history code uses it."""

    dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql, params)

    def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    def insert(self, sql: str, params: Sequence[Any]) -> int | None:
        cursor = self._conn.execute(sql, params)
        return cursor.lastrowid if cursor.rowcount == 1 else None

    def columns(self, table: str) -> list[str]:
        return [row["name"] for row in self._conn.execute(f"PRAGMA table_info({table})")]


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
