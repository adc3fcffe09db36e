"""The history's schema, shared by SQLite and PostgreSQL: its tables, its version, the
steps that upgrade it, and how one run becomes rows of its tables.

The statements are written once, in SQLite's spelling with ``?`` placeholders; a
:class:`Dialect` turns them into PostgreSQL's (``%s``, ``BYTEA``, ``DOUBLE PRECISION``,
identity keys). Both stores run the same statements through a :class:`Database`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from pytest_energy.frozen import frozen
from pytest_energy.record import RunRecord, TestResult
from pytest_energy.record_lines import results_chunks

SCHEMA_VERSION = 5
#: Version 2 added each run's geometric-mean J per unit of its own process (and of its
#: calibration-normalized values): the statistic the gate compares with the current
#: run's, so a history baseline and a stored baseline are judged alike.
#: Version 3 stores each run's record (``runs.record``) as zlib-compressed JSON, a BLOB,
#: streamed from the same test lines as the results file: about a fifth of the size,
#: and no second copy of a large run in memory (issue 16). Rows of earlier versions
#: keep their JSON text; :func:`record_json_text` reads both. Nothing is rewritten, but
#: the version tells an older plugin that it cannot read the newer rows.
#: Version 4 (issue 15: a history shared by many runners in PostgreSQL) adds a unique
#: ``runs.run_key`` per session's run, so a run pushed twice (a queued run sent again
#: after a crash, two runners pushing one queue) is stored once; the ``schema_version``
#: table, the version marker both databases share; and ``queued_runs``, where a local
#: history keeps the runs a history server could not take, until the next run pushes them.
#: Version 5 (issue 16) indexes the tests by run, then test, instead of by test, then run:
#: a run's rows then go at the end of the index. Keyed by test first, each of them went
#: beside the test's earlier rows, so every run wrote to nearly every page of an index
#: as large as the whole history (5,000 tests into a history of 15 runs: 35 ms of
#: inserts and 28 ms of commit, against 18 and 0.5 without that index; the cost grew
#: with every run stored). A query for one test's trend scans the index instead
#: (11 ms over 100,000 rows).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE tests ADD COLUMN process_mean REAL",
        "ALTER TABLE tests ADD COLUMN normalized_mean REAL",
    ),
    2: (),
    3: (
        "ALTER TABLE runs ADD COLUMN run_key TEXT",
        "CREATE UNIQUE INDEX IF NOT EXISTS runs_by_key ON runs (run_key)",
        "CREATE TABLE IF NOT EXISTS schema_version ("
        "application TEXT NOT NULL, version INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS queued_runs ("
        "id INTEGER PRIMARY KEY, target TEXT NOT NULL, run_key TEXT NOT NULL, "
        "started TEXT NOT NULL, record BLOB NOT NULL, UNIQUE (target, run_key))",
    ),
    4: (
        "DROP INDEX IF EXISTS tests_by_nodeid",
        "CREATE INDEX IF NOT EXISTS tests_by_run ON tests (run_id, nodeid)",
    ),
}
#: The largest record a history row may expand to: a crafted row cannot exhaust memory.
MAX_RECORD_BYTES = 1 << 30
#: ``PRAGMA application_id``, "pEnH": marks the file as ours, so a user's other
#: SQLite database at the same path is recognised and left alone.
APPLICATION_ID = int.from_bytes(b"pEnH", "big")
#: ``schema_version.application``: marks a PostgreSQL database (or an SQLite file) as ours.
APPLICATION = "pytest-energy history"
SCHEMA = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT,
    commit_id TEXT,
    branch TEXT,
    hardware_class TEXT NOT NULL,
    method TEXT NOT NULL,
    plugin_version TEXT NOT NULL,
    exit_status INTEGER,
    unstable INTEGER NOT NULL,
    interrupted INTEGER NOT NULL,
    record BLOB NOT NULL,
    run_key TEXT
);
CREATE TABLE tests (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    nodeid TEXT NOT NULL,
    outcome TEXT NOT NULL,
    joules REAL,
    seconds REAL,
    per_unit REAL,
    unit TEXT,
    flags TEXT NOT NULL,
    verdict TEXT,
    ratio REAL,
    process_mean REAL,
    normalized_mean REAL
);
CREATE TABLE rounds (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    nodeid TEXT NOT NULL,
    idx INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    seconds REAL,
    joules REAL,
    role TEXT NOT NULL
);
CREATE INDEX tests_by_run ON tests (run_id, nodeid);
CREATE INDEX rounds_by_test ON rounds (run_id, nodeid);
CREATE INDEX runs_by_class ON runs (hardware_class, branch, id);
CREATE UNIQUE INDEX runs_by_key ON runs (run_key);
CREATE TABLE schema_version (application TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE queued_runs (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    run_key TEXT NOT NULL,
    started TEXT NOT NULL,
    record BLOB NOT NULL,
    UNIQUE (target, run_key)
)
"""
# A session's run is stored once: a second push of the same run key does nothing.
_INSERT_RUN = (
    "INSERT INTO runs (started, finished, commit_id, branch, hardware_class, method, "
    "plugin_version, exit_status, unstable, interrupted, record, run_key) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_key) DO NOTHING"
)
_INSERT_TESTS = (
    "INSERT INTO tests (run_id, nodeid, outcome, joules, seconds, per_unit, unit, flags, "
    "verdict, ratio, process_mean, normalized_mean) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_ROUNDS = (
    "INSERT INTO rounds (run_id, nodeid, idx, calls, seconds, joules, role) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# One row per (test, run), newest `limit` runs of each test, oldest first.
POINTS = """
SELECT * FROM (
    SELECT r.id AS run_id, r.started, r.commit_id, r.branch, r.hardware_class, r.method,
           t.nodeid, t.outcome, t.per_unit, t.unit, t.joules, t.seconds, t.flags,
           t.verdict, t.ratio{extra},
           ROW_NUMBER() OVER (PARTITION BY t.nodeid ORDER BY r.id DESC) AS recent
    FROM tests AS t JOIN runs AS r ON r.id = t.run_id
    WHERE {where}
) AS points
WHERE recent <= ?
ORDER BY nodeid, run_id
"""


@frozen
class Dialect:
    """How one database spells the shared statements."""

    name: str
    #: Placeholder style: SQLite's ``?`` or the ``%s`` of PostgreSQL's driver.
    placeholder: str
    #: Whole-word type names to replace in table definitions.
    types: tuple[tuple[str, str], ...] = ()

    def sql(self, statement: str) -> str:
        """A query or an insert, with this database's placeholders."""
        if self.placeholder == "?":
            return statement
        # psycopg reads % as the start of a placeholder: a literal one is %%.
        return statement.replace("%", "%%").replace("?", self.placeholder)

    def ddl(self, statement: str) -> str:
        """A table definition with this database's types."""
        for pattern, replacement in self.types:
            statement = re.sub(pattern, replacement, statement)
        return statement


SQLITE = Dialect("sqlite", "?")
POSTGRESQL = Dialect(
    "postgresql",
    "%s",
    (
        # REAL is 4 bytes in PostgreSQL; SQLite's REAL is a double.
        (r"\bREAL\b", "DOUBLE PRECISION"),
        (r"\bBLOB\b", "BYTEA"),
        (r"\bINTEGER PRIMARY KEY\b", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
        # Round counts and exit statuses fit 32 bits, but run ids, which tables refer to, do not.
        (r"\bINTEGER\b", "BIGINT"),
    ),
)


class Database(Protocol):
    """One open connection, in either dialect; statements are written with ``?``."""

    dialect: Dialect

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of a query; a row is read by column name (``row["id"]``)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def insert(self, sql: str, params: Sequence[Any]) -> int | None:
        """Insert one row; its ``id``, or None when a unique key made it a no-op."""

    def columns(self, table: str) -> list[str]:
        """The columns of ``table``, in order."""


def schema_statements(dialect: Dialect) -> list[str]:
    """The statements that create the current schema, with its version row."""
    statements = [dialect.ddl(s) for s in SCHEMA.split(";") if s.strip()]
    return [*statements, *version_statements(SCHEMA_VERSION)]


def version_statements(version: int) -> list[str]:
    return [
        "DELETE FROM schema_version",
        f"INSERT INTO schema_version (application, version) VALUES ('{APPLICATION}', {version})",
    ]


def migrate(db: Database, version: int) -> None:
    """Bring a schema of ``version`` up to the current one, inside the caller's transaction.

    Every step keeps the data: it adds columns and tables, or replaces an index. A
    column a step adds that is already there (a history
    that a test, or a hand, set back to an older version) is left as it is.
    """
    for step in range(version, SCHEMA_VERSION):
        for statement in MIGRATIONS[step]:
            added = re.fullmatch(r"ALTER TABLE (\w+) ADD COLUMN (\w+) .*", statement)
            if added and added[2] in db.columns(added[1]):
                continue
            db.execute(db.dialect.ddl(statement))
    for statement in version_statements(SCHEMA_VERSION):
        db.execute(statement)


@frozen
class PackedRecord:
    """A run's results JSON, compressed, and the digest of that JSON."""

    blob: bytes
    digest: str

    def run_key(self, commit: str | None, branch: str | None) -> str:
        """What makes a stored run this run: its record, and the commit and branch it is under."""
        key = hashlib.sha256(self.digest.encode("ascii"))
        for part in (commit, branch):
            key.update(b"\0" + (part or "").encode("utf-8", "surrogatepass"))
        return key.hexdigest()


def insert_run(
    db: Database,
    record: RunRecord,
    *,
    commit: str | None = None,
    branch: str | None = None,
    packed: PackedRecord | None = None,
    once: bool = True,
) -> int:
    """Insert one run with its tests and rounds, inside the caller's transaction.

    With ``once``, the run carries its run key, and a run already stored under it
    (pushed before) is not stored again: its id is returned. Without, the run is
    always added (``History.append``: a tool storing runs it was handed).
    """
    session = record.session
    commit, branch = commit or session.commit, branch or session.branch
    packed = packed or pack_record(record)
    key = packed.run_key(commit, branch) if once else None
    run_id = db.insert(
        _INSERT_RUN,
        (
            session.started,
            session.finished,
            commit,
            branch,
            session.machine.hardware_class,
            session.method,
            session.machine.plugin_version,
            session.exit_status,
            int(session.unstable),
            int(session.interrupted),
            packed.blob,
            key,
        ),
    )
    if run_id is None:
        (stored,) = db.rows("SELECT id FROM runs WHERE run_key = ?", (key,))
        return int(stored["id"])
    db.execute_many(_INSERT_TESTS, _test_rows(run_id, record))
    db.execute_many(_INSERT_ROUNDS, _round_rows(run_id, record))
    return run_id


def has_run(db: Database, record: RunRecord) -> bool:
    """Whether this very run is stored: a queued file added once but not removed."""
    wanted = json.loads(record.to_json())
    for row in db.rows("SELECT record FROM runs WHERE started = ?", (record.session.started,)):
        try:
            if json.loads(record_json_text(row["record"])) == wanted:
                return True
        except (ValueError, zlib.error):
            continue  # an unreadable row is not this run
    return False


def pack_record(record: RunRecord) -> PackedRecord:
    """The run's results JSON, compressed as it is produced, never whole in memory."""
    packer = zlib.compressobj(level=1)  # fast: the run is stored at the end of every session
    digest = hashlib.sha256()
    packed = []

    def pack(text: str) -> None:
        data = text.encode("ascii")
        digest.update(data)
        packed.append(packer.compress(data))

    # A test is a chunk of ~700 characters: compressed and hashed in batches, not one
    # call each (at 20,000 tests that was a fifth of storing the run; issue 16).
    batch: list[str] = []
    size = 0
    for chunk in results_chunks(record):
        batch.append(chunk)
        size += len(chunk)
        if size >= _PACK_BATCH:
            pack("".join(batch))
            batch, size = [], 0
    pack("".join(batch))
    packed.append(packer.flush())
    return PackedRecord(b"".join(packed), digest.hexdigest())


#: Characters compressed at once by :func:`pack_record`.
_PACK_BATCH = 1 << 18


def record_json_text(stored: str | bytes | memoryview) -> str:
    """A row's record as JSON text: compressed (version 3) or plain text (earlier).

    Raises ``ValueError`` for a row that is neither, or that would expand beyond
    :data:`MAX_RECORD_BYTES`.
    """
    if isinstance(stored, str):
        return stored
    if isinstance(stored, memoryview):  # PostgreSQL's BYTEA, as psycopg returns it
        stored = stored.tobytes()
    if not isinstance(stored, bytes):
        raise ValueError(f"a record of type {type(stored).__name__}")
    unpacker = zlib.decompressobj()
    try:
        data = unpacker.decompress(stored, MAX_RECORD_BYTES)
    except zlib.error as exc:
        raise ValueError(f"a damaged compressed record ({exc})") from None
    if unpacker.unconsumed_tail:
        raise ValueError(f"a record larger than {MAX_RECORD_BYTES:,} bytes")
    if not unpacker.eof:
        raise ValueError("a truncated compressed record")
    return data.decode("utf-8", errors="replace")


def _test_rows(run_id: int, record: RunRecord) -> Iterator[tuple[Any, ...]]:
    for test in record.tests:
        if test.benchmark is None and test.verdict is None:
            yield _plain_test_row(run_id, test)
        else:
            yield _test_row(run_id, test)


def _test_row(run_id: int, test: TestResult) -> tuple[Any, ...]:
    """A test's row in the ``tests`` table."""
    per_unit = test.per_unit_samples()
    measurement = test.measurement
    own = _own_process_means(test) if per_unit else (None, None)
    return (
        run_id,
        test.nodeid,
        test.outcome,
        _finite(measurement.total_j) if measurement else None,
        _finite(measurement.seconds) if measurement else None,
        _median(per_unit[1]) if per_unit else None,
        per_unit[0] if per_unit else None,
        ",".join(test.flags),
        test.verdict.status if test.verdict else None,
        _finite(test.verdict.ratio) if test.verdict else None,
        *own,
    )


def _plain_test_row(run_id: int, test: TestResult) -> tuple[Any, ...]:
    """The row of a test that is not a benchmark and has no verdict, as :func:`_test_row`
    writes it, in a third of the time: its one window is its sample (every test of a
    plain suite comes here; issue 16)."""
    measurement = test.measurement
    flags = test.flags
    if measurement is None:
        return (run_id, test.nodeid, test.outcome, None, None, None, None, ",".join(flags),
                None, None, None, None)  # fmt: skip
    joules = _finite(measurement.total_j)
    sampled = test.outcome == "passed" and "meter_failed" not in flags
    per_unit = joules if sampled else None
    return (
        run_id,
        test.nodeid,
        test.outcome,
        joules,
        _finite(measurement.seconds),
        per_unit,
        None if per_unit is None else "test",
        ",".join(flags),
        None,
        None,
        per_unit if per_unit is not None and per_unit > 0 else None,
        None,
    )


def _own_process_means(test: TestResult) -> tuple[float | None, float | None]:
    """The geometric means of this session's own rounds: raw and normalized J per unit."""
    bench = test.benchmark
    if bench is None:
        joules = test.measurement.total_j if test.measurement else None
        return (_finite(joules) if joules and joules > 0 else None), None
    raw = bench.by_process()
    normalized = bench.by_process(normalized=True)
    return _geometric_mean(raw[0] if raw else []), _geometric_mean(
        normalized[0] if normalized else []
    )


def _geometric_mean(values: Sequence[float]) -> float | None:
    if not values:
        return None
    from pytest_energy.stats import fmean

    return math.exp(fmean([math.log(v) for v in values]))


def _median(values: Sequence[float]) -> float:
    # Imported here: only benchmarks have samples, and a run without them does not load
    # the statistics (issue 16: every module is part of what --energy costs a run).
    from pytest_energy.stats import middle

    return middle(values)


def _round_rows(run_id: int, record: RunRecord) -> Iterator[tuple[Any, ...]]:
    for test in record.tests:
        if test.benchmark is None:
            continue
        for idx, r in enumerate(test.benchmark.rounds):
            yield (
                run_id,
                test.nodeid,
                idx,
                r.calls,
                _finite(r.seconds),
                _finite(r.total_j),
                r.role,
            )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
