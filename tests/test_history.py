"""The local SQLite history: appended runs, trends, and the last-K-runs baseline."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from records import run_record, sample_benchmark, window_test

from pytest_energy.record import (
    RunRecord,
    TestResult,
    Verdict,
)
from pytest_energy.report.trend import format_trend, sparkline
from pytest_energy.storage import history_schema
from pytest_energy.storage.history import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    History,
    HistoryError,
    TrendPoint,
)

H100 = "cpu=Xeon 8480|gpu=H100|measured"
A10 = "cpu=EPYC 7R32|gpu=A10G|measured"
REPO = Path(__file__).resolve().parents[1]


# --- factories: the shared exact builders ---------------------------------------------------


def plain(
    nodeid: str,
    joules: float,
    *,
    outcome: str = "passed",
    flags: Sequence[str] = (),
    verdict: Verdict | None = None,
) -> TestResult:
    return window_test(nodeid, joules, outcome=outcome, flags=flags, verdict=verdict)


def bench(nodeid: str, per_unit: Sequence[float], *, units_per_call: float = 4.0) -> TestResult:
    # A reference round of another test rides along: the history must leave it out.
    return sample_benchmark(
        nodeid,
        per_unit,
        unit="token",
        units_per_call=units_per_call,
        calls=5,
        reference_rounds=[99.0 / 20],
    )


def run(tests: Sequence[TestResult], *, hardware_class: str = H100, **changes: Any) -> RunRecord:
    return run_record(
        tests,
        hardware_class=hardware_class,
        gpus=[],
        finished="2025-03-01T12:01:00+00:00",
        commit=changes.pop("commit", "c0ffee"),
        **changes,
    )


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / ".energy" / "history.sqlite")


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


def one_line_error(exc: pytest.ExceptionInfo[HistoryError]) -> str:
    message = str(exc.value)
    assert message
    assert "\n" not in message
    return message


# --- appending -------------------------------------------------------------------------------


def test_append_stores_runs_tests_and_rounds(history: History) -> None:
    verdict = Verdict("regression", ratio=1.12)
    first = history.append(
        run([plain("t.py::test_a", 3.0, verdict=verdict), bench("t.py::test_b", [0.5, 0.7, 0.6])])
    )
    second = history.append(run([plain("t.py::test_a", 3.3)]), commit="abc", branch="feature")

    assert second > first
    runs = query(
        history.path,
        "SELECT id, commit_id, branch, hardware_class, method, "
        "plugin_version, exit_status, unstable FROM runs ORDER BY id",
    )
    assert runs == [
        (first, "c0ffee", "main", H100, "measured", "0.1.0", 0, 0),
        (second, "abc", "feature", H100, "measured", "0.1.0", 0, 0),
    ]
    tests = query(
        history.path,
        "SELECT run_id, nodeid, outcome, joules, per_unit, unit, "
        "verdict, ratio FROM tests ORDER BY run_id, nodeid",
    )
    assert tests == [
        (first, "t.py::test_a", "passed", 3.0, 3.0, "test", "regression", 1.12),
        # The window holds its rounds (10 + 14 + 12 J) and the 99 J reference round,
        # which the per-unit figure leaves out.
        (first, "t.py::test_b", "passed", 135.0, pytest.approx(0.6), "token", None, None),
        (second, "t.py::test_a", "passed", 3.3, 3.3, "test", None, None),
    ]
    rounds = query(history.path, "SELECT idx, calls, joules, role FROM rounds ORDER BY idx")
    assert rounds == [
        (0, 5, pytest.approx(10.0), "candidate"),
        (1, 5, pytest.approx(14.0), "candidate"),
        (2, 5, pytest.approx(12.0), "candidate"),
        (3, 5, 99.0, "reference"),
    ]


def test_the_full_record_can_be_read_back(history: History) -> None:
    record = run([plain("t.py::test_a", 3.0, flags=["concurrent"])])
    run_id = history.append(record)
    assert history.record(run_id) == record
    with pytest.raises(HistoryError) as exc:
        history.record(run_id + 1)
    assert f"no run {run_id + 1}" in one_line_error(exc)


def test_the_database_uses_wal_and_a_versioned_schema(history: History) -> None:
    history.append(run([plain("t.py::test_a", 3.0)]))

    assert query(history.path, "PRAGMA journal_mode") == [("wal",)]
    assert query(history.path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert query(history.path, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert query(history.path, "PRAGMA integrity_check") == [("ok",)]


def test_a_written_run_is_in_the_main_file_once_the_writer_closes(history: History) -> None:
    # Commits sync only at checkpoints (synchronous = NORMAL); closing the last connection
    # checkpoints, so with no other reader a run is durable when add_run returns, and
    # copying history.sqlite alone keeps it.
    history.add_run(run([plain("t.py::test_a", 3.0)]))
    assert not history.path.with_name(history.path.name + "-wal").exists()
    copy = history.path.with_name("copy.sqlite")
    copy.write_bytes(history.path.read_bytes())
    assert query(copy, "SELECT count(*) FROM runs") == [(1,)]


def test_creating_the_folder_writes_its_gitignore(history: History) -> None:
    history.append(run([plain("t.py::test_a", 3.0)]))
    assert "history.sqlite*" in (history.path.parent / ".gitignore").read_text(encoding="utf-8")


def test_reading_a_missing_history_creates_nothing(history: History) -> None:
    assert history.trend() == []
    assert history.last_runs(H100, "main", 5) == {}
    assert not history.path.parent.exists()


def test_an_empty_file_is_adopted(history: History) -> None:
    history.path.parent.mkdir()
    history.path.touch()
    assert history.trend() == []
    history.append(run([plain("t.py::test_a", 3.0)]))
    assert len(history.trend()) == 1


# --- trend and the gate's distribution -------------------------------------------------------


def test_trend_of_one_test_is_oldest_first_and_limited(history: History) -> None:
    for joules in (1.0, 2.0, 3.0, 4.0):
        history.append(run([plain("t.py::test_a", joules), plain("t.py::test_b", 10 * joules)]))

    points = history.trend("t.py::test_a", limit=3)

    assert [p.per_unit for p in points] == [2.0, 3.0, 4.0]
    assert {p.nodeid for p in points} == {"t.py::test_a"}
    assert points[0].run_id < points[-1].run_id
    everything = history.trend(limit=2)
    assert [(p.nodeid, p.per_unit) for p in everything] == [
        ("t.py::test_a", 3.0),
        ("t.py::test_a", 4.0),
        ("t.py::test_b", 30.0),
        ("t.py::test_b", 40.0),
    ]


def test_trend_filters_by_hardware_class_and_branch(history: History) -> None:
    history.append(run([plain("t.py::test_a", 1.0)]))
    history.append(run([plain("t.py::test_a", 2.0)], hardware_class=A10))
    history.append(run([plain("t.py::test_a", 3.0)], branch="feature"))

    assert [p.per_unit for p in history.trend(hardware_class=A10)] == [2.0]
    assert [p.per_unit for p in history.trend(branch="feature")] == [3.0]
    assert [p.per_unit for p in history.trend(hardware_class=H100)] == [1.0, 3.0]


def test_last_runs_gives_each_usable_runs_geometric_mean(history: History) -> None:
    for i in range(6):
        history.append(
            run(
                [bench("t.py::test_b", [1.0 + i, 1.2 + i, 1.1 + i]), plain("t.py::test_a", 5.0 + i)]
            )
        )
    history.append(run([plain("t.py::test_a", 100.0, outcome="failed")]))
    history.append(run([plain("t.py::test_a", 200.0, flags=["meter_failed"])]))
    history.append(run([plain("t.py::test_a", 300.0)], interrupted=True))
    history.append(run([plain("t.py::test_a", 400.0)], hardware_class=A10))
    history.append(run([plain("t.py::test_a", 500.0)], branch="feature"))
    history.append(run([plain("t.py::test_a", 600.0, flags=["concurrent"])]))
    # A run of only one test does not push the other test's history out of the window.
    history.append(run([plain("t.py::test_a", 11.0)]))

    last = history.last_runs(H100, "main", 3)

    # Each run is one process: the mean of its rounds' logs, as the gate takes the current one.
    assert last == {
        "t.py::test_a": [9.0, 10.0, 11.0],
        "t.py::test_b": pytest.approx([(4.0 * 4.2 * 4.1) ** (1 / 3), 5.0993, 6.0995], rel=1e-4),
    }
    assert history.last_runs(H100, None, 2)["t.py::test_a"] == [500.0, 11.0]
    assert history.last_runs(A10, "main", 3) == {"t.py::test_a": [400.0]}
    assert history.last_runs("cpu=other", "main", 3) == {}


def point(
    nodeid: str,
    per_unit: float | None,
    run_id: int,
    hardware_class: str = H100,
    unit: str = "token",
) -> TrendPoint:
    return TrendPoint(
        run_id,
        "2025-03-01T12:00:00+00:00",
        "c0ffee",
        "main",
        hardware_class,
        "measured",
        nodeid,
        "passed",
        per_unit,
        unit,
        None,
        None,
        (),
        None,
        None,
    )


def test_format_trend_is_a_readable_table() -> None:
    rows = [point("t.py::test_a", v, i) for i, v in enumerate([0.010, 0.011, 0.0121])]
    rows += [point("t.py::test_long_name", 2500.0, 0, unit="test")]

    text = format_trend(rows)

    lines = text.splitlines()
    assert lines[0].split() == ["test", "runs", "last", "change", "trend"]
    assert lines[1].split()[:5] == ["t.py::test_a", "3", "12.1", "mJ/token", "+10.0%"]
    assert lines[1].endswith("▁▄█")
    assert lines[2].split()[:5] == ["t.py::test_long_name", "1", "2.5", "kJ/test", "-"]
    assert len({line.index("runs") for line in lines[:1]}) == 1


def test_format_trend_names_hardware_classes_when_several() -> None:
    text = format_trend([point("t.py::test_a", 1.0, 0), point("t.py::test_a", 3.0, 1, A10)])
    assert "hardware class" in text.splitlines()[0]
    assert A10 in text
    assert H100 in text


def test_format_trend_of_nothing() -> None:
    assert format_trend([]) == "no runs in the energy history yet"


def test_format_trend_from_a_real_history(history: History) -> None:
    for joules in (4.0, 4.4):
        history.append(run([plain("t.py::test_a", joules)]))
    assert "+10.0%" in format_trend(history.trend())


def test_sparkline_keeps_noise_flat_and_shows_gaps() -> None:
    assert sparkline([1.0, None, 3.0]) == "▁ █"
    noisy = sparkline([100.0, 101.0, 99.5, 100.5])
    assert set(noisy) <= set("▃▄▅")
    flat = sparkline([5.0, 5.0, 5.0])
    assert len(set(flat)) == 1
    assert flat[0] in "▄▅"
    assert sparkline([0.0, 0.0]) == "▁▁"
    assert sparkline([None, None]) == "  "
    assert sparkline([]) == ""


# --- files that are not ours -----------------------------------------------------------------


def test_a_file_that_is_not_sqlite_is_refused_and_untouched(history: History) -> None:
    history.path.parent.mkdir()
    history.path.write_text("my notes, not a database\n", encoding="utf-8")
    before = history.path.read_bytes()

    for attempt in (
        lambda: history.append(run([plain("t.py::test_a", 1.0)])),
        history.trend,
        lambda: history.last_runs(H100, "main", 3),
    ):
        with pytest.raises(HistoryError) as exc:
            attempt()
        assert "is not an SQLite database" in one_line_error(exc)
    assert history.path.read_bytes() == before
    assert sorted(p.name for p in history.path.parent.iterdir()) == ["history.sqlite"]


def test_another_sqlite_database_is_refused_and_untouched(history: History) -> None:
    history.path.parent.mkdir()
    with closing(sqlite3.connect(history.path)) as conn:
        conn.execute("CREATE TABLE recipes (name TEXT)")
        conn.execute("INSERT INTO recipes VALUES ('bread')")
        conn.commit()
    before = history.path.read_bytes()

    with pytest.raises(HistoryError) as exc:
        history.append(run([plain("t.py::test_a", 1.0)]))
    assert "not a pytest-energy history" in one_line_error(exc)
    with pytest.raises(HistoryError):
        history.trend()
    assert history.path.read_bytes() == before
    assert query(history.path, "PRAGMA journal_mode") == [("delete",)]


def test_a_history_from_a_newer_release_is_refused(history: History) -> None:
    history.append(run([plain("t.py::test_a", 1.0)]))
    with closing(sqlite3.connect(history.path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(HistoryError) as exc:
        history.append(run([plain("t.py::test_a", 1.0)]))
    assert "upgrade pytest-energy" in one_line_error(exc)
    assert query(history.path, "SELECT count(*) FROM runs") == [(1,)]


def test_a_directory_at_the_history_path(history: History) -> None:
    history.path.mkdir(parents=True)
    with pytest.raises(HistoryError) as exc:
        history.append(run([plain("t.py::test_a", 1.0)]))
    assert "is a directory" in one_line_error(exc)


# --- concurrent sessions ---------------------------------------------------------------------

APPENDER = """
import sys
from pathlib import Path
from pytest_energy import record as results
from pytest_energy.storage.history import History

record = results.load(Path(sys.argv[1]))
history = History(Path(sys.argv[2]))
for i in range(int(sys.argv[3])):
    history.append(record, commit=f"{sys.argv[4]}-{i}")
    history.last_runs(record.session.machine.hardware_class, "main", 5)
"""


def test_concurrent_sessions_append_without_loss_or_corruption(
    history: History, tmp_path: Path
) -> None:
    workers, appends = 4, 15
    record = run([plain("t.py::test_a", 1.0), bench("t.py::test_b", [0.5, 0.6])])
    record_path = tmp_path / "record.json"
    record_path.write_text(record.to_json(), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}

    # All start on a path with no database yet, so they also race to create the schema.
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                APPENDER,
                str(record_path),
                str(history.path),
                str(appends),
                f"w{w}",
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    errors = [p.communicate(timeout=300)[1] for p in processes]

    assert [p.returncode for p in processes] == [0] * workers, errors
    assert query(history.path, "PRAGMA integrity_check") == [("ok",)]
    assert query(history.path, "SELECT count(*), count(DISTINCT commit_id) FROM runs") == [
        (workers * appends, workers * appends)
    ]
    assert query(history.path, "SELECT count(*) FROM tests") == [(2 * workers * appends,)]
    assert query(history.path, "SELECT count(*) FROM rounds") == [(3 * workers * appends,)]
    assert len(history.last_runs(H100, "main", 1000)["t.py::test_a"]) == workers * appends


def test_a_version_1_history_is_upgraded_in_place(history: History) -> None:
    history.append(run([plain("t.py::test_a", 3.0)]))
    with closing(sqlite3.connect(history.path)) as conn:
        conn.execute("ALTER TABLE tests DROP COLUMN process_mean")
        conn.execute("ALTER TABLE tests DROP COLUMN normalized_mean")
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    assert history.trend("t.py::test_a")[0].per_unit == 3.0  # read, then upgraded
    assert query(history.path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    history.append(run([plain("t.py::test_a", 4.0)]))
    # Runs written before the upgrade have no per-run mean, so no history baseline uses them.
    assert history.last_runs(H100, "main", 5) == {"t.py::test_a": [4.0]}


def test_a_version_4_history_gets_the_tests_index_by_run(history: History) -> None:
    history.append(run([plain("t.py::test_a", 3.0), plain("t.py::test_b", 5.0)]))
    with closing(sqlite3.connect(history.path)) as conn:
        conn.execute("DROP INDEX tests_by_run")
        conn.execute("CREATE INDEX tests_by_nodeid ON tests (nodeid, run_id)")
        conn.execute("PRAGMA user_version = 4")
        conn.commit()
    history.append(run([plain("t.py::test_a", 4.0)]))
    indexes = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tests'"
    assert query(history.path, indexes) == [
        ("tests_by_run", "CREATE INDEX tests_by_run ON tests (run_id, nodeid)")
    ]
    assert query(history.path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert [p.per_unit for p in history.trend("t.py::test_a")] == [3.0, 4.0]
    assert history.last_runs(H100, "main", 5) == {"t.py::test_a": [3.0, 4.0], "t.py::test_b": [5.0]}


def test_a_run_is_stored_compressed_and_a_version_2_text_row_still_reads(
    history: History,
) -> None:
    record = run([plain("t.py::test_a", 3.0), plain("t.py::test_b", 5.0)])
    first = history.append(record)
    stored = query(history.path, "SELECT record FROM runs")[0][0]
    assert isinstance(stored, bytes)  # zlib-compressed JSON since schema version 3
    assert json.loads(zlib.decompress(stored)) == json.loads(record.to_json())
    assert history.record(first) == record
    # A row written by version 2 holds the record as JSON text: it reads the same.
    with closing(sqlite3.connect(history.path)) as conn:
        conn.execute("UPDATE runs SET record = ? WHERE id = ?", (record.to_json(), first))
        conn.commit()
    assert history.record(first) == record


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        (b"not zlib at all", "damaged compressed record"),
        (zlib.compress(b'{"schema_version": 1}')[:-4], "truncated compressed record"),
    ],
)
def test_a_damaged_stored_record_is_one_line(history: History, stored: bytes, problem: str) -> None:
    run_id = history.append(run([plain("t.py::test_a", 3.0)]))
    with closing(sqlite3.connect(history.path)) as conn:
        conn.execute("UPDATE runs SET record = ? WHERE id = ?", (stored, run_id))
        conn.commit()
    with pytest.raises(HistoryError, match=f"run {run_id} in .* cannot be read: .*{problem}"):
        history.record(run_id)


def test_a_stored_record_that_would_expand_too_far_is_refused(
    history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = history.append(run([plain("t.py::test_a", 3.0)]))
    monkeypatch.setattr(history_schema, "MAX_RECORD_BYTES", 64)
    with pytest.raises(HistoryError, match="larger than"):
        history.record(run_id)


def test_a_plain_tests_row_is_the_general_row() -> None:
    # Every test of a plain suite takes the short path; it must store what the general one
    # stores, for every outcome, flag and number a window can end with.
    tests = [
        window_test("t.py::passed", 3.5),
        window_test("t.py::zero", 0.0),
        window_test("t.py::negative", -0.25),
        window_test("t.py::nan", float("nan")),
        window_test("t.py::inf", float("inf"), seconds=float("inf")),
        window_test("t.py::failed", 2.0, outcome="failed"),
        window_test("t.py::skipped", 2.0, outcome="skipped"),
        window_test("t.py::meter", 2.0, flags=["meter_failed", "below_resolution"]),
        window_test("t.py::flags", 2.0, flags=["wrapped", "concurrent"]),
        TestResult("t.py::unmeasured", "t.py", 1, "error", "call", None, error="not measured"),
    ]
    for test in tests:
        assert history_schema._plain_test_row(7, test) == history_schema._test_row(7, test), (
            test.nodeid
        )
