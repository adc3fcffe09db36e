"""A run history shared by many runners, in a PostgreSQL database.

``--energy-history=postgresql://user:password@host/db`` stores every run where
all of a fleet's runners write and read: ``pytest-energy history`` and the
gate's history baseline then see every runner of a hardware class, not one
machine. The tables are the SQLite history's (:mod:`.history_schema`), created
on first use under an advisory lock, so many runners starting at once create
them once. Each run is one transaction; its run key is unique, so a run pushed
twice is stored once.

A server that cannot be reached never costs a run: the run is queued in the
local SQLite history (its ``queued_runs`` table), one warning line says so, and
the next run that reaches the server pushes the queued runs first.

psycopg (``pip install "pytest-energy[postgres]"``) is imported only here, only
when a ``postgresql://`` history is used. Every message names the server by its
URL without the password (:mod:`.history_url`), driver errors included.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from typing import TYPE_CHECKING, Any

from pytest_energy.config.options import POSTGRES_EXTRA
from pytest_energy.record import ResultsError, RunRecord
from pytest_energy.record_json import parse_json
from pytest_energy.storage.history import History
from pytest_energy.storage.history_base import HistoryError, HistoryUnreachable, RunHistory
from pytest_energy.storage.history_schema import (
    APPLICATION,
    APPLICATION_ID,
    POSTGRESQL,
    SCHEMA_VERSION,
    insert_run,
    migrate,
    pack_record,
    record_json_text,
    schema_statements,
)
from pytest_energy.storage.history_url import redact, scrub

if TYPE_CHECKING:
    import psycopg

__all__ = ["CONNECT_TIMEOUT_S", "PostgresHistory"]

#: Seconds to wait for the server: an unreachable one costs a run this much, once.
CONNECT_TIMEOUT_S = 5


class PostgresHistory(RunHistory):
    """The history in the PostgreSQL database at ``url``; runs wait in ``queue`` meanwhile."""

    def __init__(self, url: str, queue: History) -> None:
        self._url = url
        self.queue = queue

    @property
    def where(self) -> str:
        return redact(self._url)

    def __repr__(self) -> str:
        return f"PostgresHistory({self.where!r})"

    def add_run(self, record: RunRecord) -> list[str]:
        """Push the runs queued for this server, then this one; queue it if the server fails.

        An unreachable server is a warning (the returned line): the run is kept
        locally. Any other failure is raised, after the run is queued.
        """
        packed = pack_record(record)
        try:
            lines = self._push_queue()
            with self._transaction() as db:
                insert_run(db, record, packed=packed)
        except HistoryError as exc:
            try:
                self.queue.queue_run(packed, record.session.started, self.where)
            except HistoryError as queue_exc:
                raise HistoryError(
                    f"{exc}; and this run could not be queued either: {queue_exc}"
                ) from None
            kept = f"this run is queued in {self.queue.where} and pushed on the next run"
            if isinstance(exc, HistoryUnreachable):
                return [f"{exc}; {kept}"]
            raise HistoryError(f"{exc}; {kept}") from None
        return lines

    def _push_queue(self) -> list[str]:
        """Store the runs queued for this server, oldest first, each in its own transaction."""
        lines: list[str] = []
        pushed: list[int] = []
        for queued in self.queue.queued_runs(self.where):
            try:
                record = RunRecord.from_dict(parse_json(record_json_text(queued.packed.blob)))
            except (ResultsError, ValueError) as exc:
                lines.append(
                    f"queued run {queued.id} in {self.queue.where} cannot be read and stays "
                    f"queued: {exc}"
                )
                continue
            with self._transaction() as db:
                insert_run(db, record, packed=queued.packed)
            pushed.append(queued.id)
            lines.append(f"history: pushed the run of {queued.started}, queued while unreachable")
        # Pushed but not yet forgotten (a crash here) is harmless: the run key stores it once.
        self.queue.unqueue(pushed)
        return lines

    @contextmanager
    def _reading(self) -> Iterator[_PostgresDatabase | None]:
        with self._connected() as db:
            yield db if self._version(db) is not None else None

    @contextmanager
    def _transaction(self) -> Iterator[_PostgresDatabase]:
        with self._connected() as db:
            if self._version(db) != SCHEMA_VERSION:
                self._create_or_migrate(db)
            with db.transaction():
                yield db

    @contextmanager
    def _connected(self) -> Iterator[_PostgresDatabase]:
        """One connection, with every driver error turned into a one-line HistoryError."""
        psycopg = _driver()
        try:
            conn = psycopg.connect(self._url, **self._connect_options())
        except psycopg.Error as exc:
            raise HistoryUnreachable(
                f"could not connect to the history server {self.where}: {self._says(exc)}"
            ) from None
        with closing(conn):
            try:
                yield _PostgresDatabase(conn)
            except psycopg.OperationalError as exc:
                raise HistoryUnreachable(
                    f"lost the connection to the history server {self.where}: {self._says(exc)}"
                ) from None
            except psycopg.Error as exc:
                raise HistoryError(
                    f"cannot use the history {self.where}: {self._says(exc)}"
                ) from None

    def _connect_options(self) -> dict[str, Any]:
        from psycopg.rows import dict_row

        options: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
        if "connect_timeout" not in self._url:
            options["connect_timeout"] = CONNECT_TIMEOUT_S
        if "application_name" not in self._url:
            options["application_name"] = "pytest-energy"
        return options

    def _says(self, exc: Exception) -> str:
        """The driver's message on one line, without the password it may quote."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        return scrub(text, self._url)

    def _version(self, db: _PostgresDatabase) -> int | None:
        """The schema version, or None when the database holds no history yet."""
        (found,) = db.rows(
            "SELECT to_regclass('schema_version') IS NOT NULL AS versioned, "
            "to_regclass('runs') IS NOT NULL AS runs"
        )
        if not found["versioned"]:
            if found["runs"]:
                raise HistoryError(
                    f"{self.where} holds a table 'runs' but is not a pytest-energy history; "
                    "it was left untouched: give the history its own database or schema"
                )
            return None
        rows = db.rows("SELECT application, version FROM schema_version")
        if len(rows) != 1 or rows[0]["application"] != APPLICATION:
            raise HistoryError(
                f"{self.where} holds a table 'schema_version' that is not a pytest-energy "
                "history's; it was left untouched: give the history its own database or schema"
            )
        version = int(rows[0]["version"])
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"the history {self.where} has schema version {version}, newer than this "
                f"pytest-energy reads ({SCHEMA_VERSION}): upgrade pytest-energy"
            )
        return version

    def _create_or_migrate(self, db: _PostgresDatabase) -> None:
        """Create or upgrade the schema, one runner at a time, in one transaction."""
        # Runners starting together all find no schema; the lock lets one create it
        # and the others, once it is released, find it made. The lock is taken before
        # the transaction begins: a transaction that began before the wait kept the
        # catalog it saw then, and tried to create the tables again (seen with 8 runners).
        db.execute("SELECT pg_advisory_lock(?)", (APPLICATION_ID,))
        try:
            with db.transaction():
                version = self._version(db)
                if version is None:
                    for statement in schema_statements(POSTGRESQL):
                        db.execute(statement)
                elif version < SCHEMA_VERSION:
                    migrate(db, version)
        finally:
            db.execute("SELECT pg_advisory_unlock(?)", (APPLICATION_ID,))


class _PostgresDatabase:
    """A psycopg connection as the shared history code uses it."""

    dialect = POSTGRESQL

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def transaction(self) -> Any:
        return self._conn.transaction()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        cursor = self._conn.execute(self.dialect.sql(sql), params)
        return cursor.fetchall() if cursor.description else []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(self.dialect.sql(sql), params)

    def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(self.dialect.sql(sql), rows)

    def insert(self, sql: str, params: Sequence[Any]) -> int | None:
        found = self._conn.execute(self.dialect.sql(sql + " RETURNING id"), params).fetchone()
        return None if found is None else int(found["id"])

    def columns(self, table: str) -> list[str]:
        cursor = self._conn.execute(f"SELECT * FROM {table} LIMIT 0")
        return [column.name for column in cursor.description or ()]


def _driver() -> Any:
    """psycopg, imported on first use: the plugin never loads it for an SQLite history."""
    try:
        import psycopg
    except ImportError:
        raise HistoryError(POSTGRES_EXTRA) from None
    return psycopg
