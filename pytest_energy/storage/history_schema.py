"""The history's SQLite schema: its tables, its version, and the steps that upgrade it."""

from __future__ import annotations

SCHEMA_VERSION = 2
#: Version 2 added each run's geometric-mean J per unit of its own process (and of its
#: calibration-normalized values): the statistic the gate compares with the current
#: run's, so a history baseline and a stored baseline are judged alike.
MIGRATIONS = {
    1: (
        "ALTER TABLE tests ADD COLUMN process_mean REAL",
        "ALTER TABLE tests ADD COLUMN normalized_mean REAL",
    ),
}
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
