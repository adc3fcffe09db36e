"""The history's SQLite schema: its tables, its version, the steps that upgrade it, and
how one run becomes rows of its tables."""

from __future__ import annotations

import json
import math
import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from pytest_energy.record import RunRecord, TestResult
from pytest_energy.record_lines import results_chunks
from pytest_energy.stats import fmean, middle

SCHEMA_VERSION = 3
#: Version 2 added each run's geometric-mean J per unit of its own process (and of its
#: calibration-normalized values): the statistic the gate compares with the current
#: run's, so a history baseline and a stored baseline are judged alike.
#: Version 3 stores each run's record (``runs.record``) as zlib-compressed JSON, a BLOB,
#: streamed from the same test lines as the results file: about a fifth of the size,
#: and no second copy of a large run in memory (issue 16). Rows of earlier versions
#: keep their JSON text; :func:`record_json_text` reads both. Nothing is rewritten, but
#: the version tells an older plugin that it cannot read the newer rows.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE tests ADD COLUMN process_mean REAL",
        "ALTER TABLE tests ADD COLUMN normalized_mean REAL",
    ),
    2: (),
}
#: The largest record a history row may expand to: a crafted row cannot exhaust memory.
MAX_RECORD_BYTES = 1 << 30
#: ``PRAGMA application_id``, "pEnH": marks the file as ours, so a user's other
#: SQLite database at the same path is recognised and left alone.
APPLICATION_ID = int.from_bytes(b"pEnH", "big")
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
    record TEXT NOT NULL
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
CREATE INDEX tests_by_nodeid ON tests (nodeid, run_id);
CREATE INDEX rounds_by_test ON rounds (run_id, nodeid);
CREATE INDEX runs_by_class ON runs (hardware_class, branch, id);
"""
_INSERT_RUN = (
    "INSERT INTO runs (started, finished, commit_id, branch, hardware_class, method, "
    "plugin_version, exit_status, unstable, interrupted, record) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
)
WHERE recent <= ?
ORDER BY nodeid, run_id
"""


def insert_run(
    conn: sqlite3.Connection,
    record: RunRecord,
    *,
    commit: str | None = None,
    branch: str | None = None,
) -> int:
    """Insert one run with its tests and rounds, inside the caller's transaction."""
    session = record.session
    cursor = conn.execute(
        _INSERT_RUN,
        (
            session.started,
            session.finished,
            commit or session.commit,
            branch or session.branch,
            session.machine.hardware_class,
            session.method,
            session.machine.plugin_version,
            session.exit_status,
            int(session.unstable),
            int(session.interrupted),
            record_blob(record),
        ),
    )
    run_id = cursor.lastrowid
    assert run_id is not None  # an INSERT into a rowid table always sets it
    conn.executemany(_INSERT_TESTS, _test_rows(run_id, record))
    conn.executemany(_INSERT_ROUNDS, _round_rows(run_id, record))
    return run_id


def has_run(conn: sqlite3.Connection, record: RunRecord) -> bool:
    """Whether this very run is stored: a queued file added once but not removed."""
    wanted = json.loads(record.to_json())
    for (stored,) in conn.execute(
        "SELECT record FROM runs WHERE started = ?", (record.session.started,)
    ):
        try:
            if json.loads(record_json_text(stored)) == wanted:
                return True
        except (ValueError, zlib.error):
            continue  # an unreadable row is not this run
    return False


def record_blob(record: RunRecord) -> bytes:
    """The run's results JSON, compressed as it is produced, never whole in memory."""
    packer = zlib.compressobj(level=1)  # fast: the run is stored at the end of every session
    packed = [packer.compress(chunk.encode("ascii")) for chunk in results_chunks(record)]
    packed.append(packer.flush())
    return b"".join(packed)


def record_json_text(stored: str | bytes) -> str:
    """A row's record as JSON text: compressed (version 3) or plain text (earlier).

    Raises ``ValueError`` for a row that is neither, or that would expand beyond
    :data:`MAX_RECORD_BYTES`.
    """
    if isinstance(stored, str):
        return stored
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
        per_unit = test.per_unit_samples()
        measurement = test.measurement
        own = _own_process_means(test) if per_unit else (None, None)
        yield (
            run_id,
            test.nodeid,
            test.outcome,
            _finite(measurement.total_j) if measurement else None,
            _finite(measurement.seconds) if measurement else None,
            middle(per_unit[1]) if per_unit else None,
            per_unit[0] if per_unit else None,
            ",".join(test.flags),
            test.verdict.status if test.verdict else None,
            _finite(test.verdict.ratio) if test.verdict else None,
            *own,
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
    return math.exp(fmean([math.log(v) for v in values]))


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
