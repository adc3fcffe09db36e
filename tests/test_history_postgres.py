"""The shared history (issue 15): one schema in SQLite and PostgreSQL, runs stored once,
a server that cannot be reached costs no run, and its password is never shown.

Tests that need PostgreSQL take ``postgres_server`` (``tests/postgres_server.py``): a
throwaway cluster on a loopback port, or a skip that says why there is none.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from cli_calls import one_error_line, run, sample_results
from postgres_server import PASSWORD, Server, free_port
from records import run_record, sample_benchmark, sample_record, window_test
from test_gate_plugin import gated_run, noisy

from pytest_energy.config.options import parse_history
from pytest_energy.record import RunRecord, TestResult
from pytest_energy.storage.history import History, HistoryError, HistoryUnreachable
from pytest_energy.storage.history_base import RunHistory
from pytest_energy.storage.history_postgres import PostgresHistory
from pytest_energy.storage.history_schema import APPLICATION, SCHEMA_VERSION
from pytest_energy.storage.history_url import redact, scrub

H100 = "cpu=Xeon 8480|gpu=H100|measured"
A10 = "cpu=EPYC 7R32|gpu=A10G|measured"
REPO = Path(__file__).resolve().parents[1]
MODEL = ("--energy", "--energy-meter=model", "--energy-window=0.01")
SUITE = """
def test_work():
    sum(range(20000))

def test_more_work():
    sum(range(40000))
"""


def plain(nodeid: str, joules: float, **changes: Any) -> TestResult:
    return window_test(nodeid, joules, **changes)


def bench(nodeid: str, per_unit: list[float]) -> TestResult:
    return sample_benchmark(nodeid, per_unit, unit="token", units_per_call=4.0, calls=5)


def run_of(
    tests: list[TestResult], *, started: str = "2025-03-01T12:00:00+00:00", **changes: Any
) -> RunRecord:
    return run_record(
        tests,
        hardware_class=changes.pop("hardware_class", H100),
        gpus=[],
        started=started,
        **changes,
    )


def assert_hidden(text: str) -> None:
    assert PASSWORD not in text
    assert "s3cret" not in text


# --- both stores answer alike ----------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> RunHistory:
    queue = History(tmp_path / ".energy" / "history.sqlite")
    if request.param == "sqlite":
        return queue
    server: Server = request.getfixturevalue("postgres_server")
    return PostgresHistory(server.database(), queue)


def test_runs_trends_and_the_gates_last_runs_read_alike(store: RunHistory) -> None:
    for i in range(4):
        store.append(
            run_of([bench("t.py::test_b", [1.0 + i, 1.2 + i]), plain("t.py::test_a", 5.0 + i)])
        )
    store.append(run_of([plain("t.py::test_a", 100.0, outcome="failed")]))
    store.append(run_of([plain("t.py::test_a", 400.0)], hardware_class=A10))
    store.append(run_of([plain("t.py::test_a", 500.0)], branch="feature"))
    store.append(run_of([plain("t.py::test_a", 600.0, flags=["concurrent"])]))

    assert [p.per_unit for p in store.trend("t.py::test_a", limit=3)] == [400.0, 500.0, 600.0]
    assert [p.per_unit for p in store.trend(hardware_class=A10)] == [400.0]
    assert [p.per_unit for p in store.trend("t.py::test_a", branch="feature")] == [500.0]
    last = store.last_runs(H100, "main", 3)
    # Doubles, not PostgreSQL's 4-byte REAL: the geometric means come back exactly.
    assert last["t.py::test_a"] == [6.0, 7.0, 8.0]
    expected = [(2.0 * 2.2) ** 0.5, (3.0 * 3.2) ** 0.5, (4.0 * 4.2) ** 0.5]
    assert last["t.py::test_b"] == pytest.approx(expected, rel=1e-12)
    assert store.last_runs(A10, "main", 3) == {"t.py::test_a": [400.0]}
    first = store.trend("t.py::test_a", limit=100)[0]
    assert store.record(first.run_id).tests[1].nodeid == "t.py::test_a"
    with pytest.raises(HistoryError, match="no run 999"):
        store.record(999)


def test_a_sessions_run_is_stored_once_however_often_it_is_added(store: RunHistory) -> None:
    record = run_of([plain("t.py::test_a", 3.0)])
    assert store.add_run(record) == []
    assert store.add_run(record) == []
    assert len(store.trend()) == 1
    # Another run (a later start) is another row; append stores what it is handed.
    store.add_run(run_of([plain("t.py::test_a", 3.0)], started="2025-03-01T13:00:00+00:00"))
    store.append(record)
    assert len(store.trend()) == 3


def test_reading_a_store_with_no_history_yet_creates_nothing(
    store: RunHistory, tmp_path: Path
) -> None:
    assert store.trend() == []
    assert store.last_runs(H100, "main", 5) == {}
    assert not (tmp_path / ".energy").exists()


# --- SQLite: the version table, and the upgrade from version 3 ------------------------------


def test_a_version_3_sqlite_history_gains_the_run_key_and_the_version_table(tmp_path: Path) -> None:
    history = History(tmp_path / "history.sqlite")
    history.append(run_of([plain("t.py::test_a", 3.0)]))
    with closing(sqlite3.connect(history.path)) as conn:
        conn.execute("DROP TABLE schema_version")
        conn.execute("DROP TABLE queued_runs")
        conn.execute("DROP INDEX runs_by_key")
        conn.execute("ALTER TABLE runs DROP COLUMN run_key")
        conn.execute("PRAGMA user_version = 3")
        conn.commit()
    record = run_of([plain("t.py::test_a", 4.0)], started="2025-03-02T12:00:00+00:00")
    history.add_run(record)
    history.add_run(record)
    with closing(sqlite3.connect(history.path)) as conn:
        assert conn.execute("SELECT application, version FROM schema_version").fetchall() == [
            (APPLICATION, SCHEMA_VERSION)
        ]
        assert conn.execute("SELECT count(*), count(run_key) FROM runs").fetchone() == (2, 1)


# --- PostgreSQL: its schema, foreign databases, concurrent runners ---------------------------


def psql(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def test_the_postgresql_schema_is_versioned_with_doubles_and_bytes(
    postgres_server: Server, tmp_path: Path
) -> None:
    url = postgres_server.database()
    PostgresHistory(url, History(tmp_path / "q.sqlite")).add_run(run_of([plain("t.py::a", 1.0)]))
    assert psql(url, "SELECT application, version FROM schema_version") == [
        (APPLICATION, SCHEMA_VERSION)
    ]
    types = dict(
        psql(
            url,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name IN ('runs', 'tests') AND column_name IN ('record', 'per_unit', 'id')",
        )
    )
    assert types == {"record": "bytea", "per_unit": "double precision", "id": "bigint"}
    assert not (tmp_path / "q.sqlite").exists()  # nothing queued, nothing written locally


def test_a_database_that_is_not_a_history_is_left_untouched(
    postgres_server: Server, tmp_path: Path
) -> None:
    url = postgres_server.database()
    psql(url, "CREATE TABLE runs (name TEXT)")
    history = PostgresHistory(url, History(tmp_path / "q.sqlite"))
    with pytest.raises(HistoryError, match="not a pytest-energy history") as exc:
        history.append(run_of([plain("t.py::a", 1.0)]))
    assert "\n" not in str(exc.value)
    assert psql(
        url, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    ) == [(1,)]


def test_a_newer_postgresql_history_is_refused(postgres_server: Server, tmp_path: Path) -> None:
    url = postgres_server.database()
    history = PostgresHistory(url, History(tmp_path / "q.sqlite"))
    history.append(run_of([plain("t.py::a", 1.0)]))
    psql(url, f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(HistoryError, match="upgrade pytest-energy"):
        history.trend()


WRITER = """
import sys
from pathlib import Path
from pytest_energy import record as results
from pytest_energy.storage.history import History
from pytest_energy.storage.history_postgres import PostgresHistory

url, folder, writer, runs = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
history = PostgresHistory(url, History(folder / f"queue-{writer}.sqlite"))
shared = results.load(folder / "shared.json")
for i in range(runs):
    own = results.load(folder / f"run-{writer}-{i}.json")
    assert history.add_run(own) == [], "a run was queued"
    assert history.add_run(shared) == [], "a run was queued"
    history.last_runs(own.session.machine.hardware_class, "main", 5)
"""


def test_eight_runners_writing_at_once_store_every_run_once(
    postgres_server: Server, tmp_path: Path
) -> None:
    writers, runs = 8, 4
    url = postgres_server.database()
    shared = run_of([plain("t.py::test_a", 1.0)], started="2025-03-01T00:00:00+00:00")
    (tmp_path / "shared.json").write_text(shared.to_json(), encoding="utf-8")
    for w in range(writers):
        for i in range(runs):
            record = run_of(
                [plain("t.py::test_a", 2.0 + i), bench("t.py::test_b", [0.5, 0.6])],
                started=f"2025-03-02T{w:02d}:{i:02d}:00+00:00",
            )
            (tmp_path / f"run-{w}-{i}.json").write_text(record.to_json(), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    # All start on an empty database, so they also race to create the schema.
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(tmp_path), str(w), str(runs)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    errors = [p.communicate(timeout=300)[1] for p in processes]

    assert [p.returncode for p in processes] == [0] * writers, errors
    assert psql(
        url, "SELECT count(*), count(DISTINCT run_key), count(DISTINCT started) FROM runs"
    ) == [(writers * runs + 1,) * 3]
    assert psql(url, "SELECT count(*) FROM runs WHERE started = '2025-03-01T00:00:00+00:00'") == [
        (1,)
    ]
    assert psql(url, "SELECT count(*) FROM tests") == [(2 * writers * runs + 1,)]
    assert psql(url, "SELECT count(*) FROM rounds") == [(2 * writers * runs,)]
    assert psql(url, "SELECT count(*) FROM schema_version") == [(1,)]


# --- an unreachable server, and the password --------------------------------------------------


def down_url() -> str:
    return f"postgresql://energy:{PASSWORD}@127.0.0.1:{free_port()}/energy?sslmode=disable"


def test_an_unreachable_server_queues_the_run_locally_with_one_line(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    queue = History(tmp_path / "history.sqlite")
    url = down_url()
    history = PostgresHistory(url, queue)
    record = run_of([plain("t.py::a", 1.0)])

    lines = history.add_run(record)
    lines += history.add_run(record)  # queued twice: kept once

    assert len(lines) == 2
    assert all("\n" not in line for line in lines)
    assert "could not connect to the history server" in lines[0]
    assert f"queued in {queue.path}" in lines[0]
    assert "postgresql://energy:***@127.0.0.1" in lines[0]
    assert_hidden("".join(lines))
    assert len(queue.queued_runs(redact(url))) == 1
    assert queue.trend() == []  # queued, not stored as a local run
    with pytest.raises(HistoryUnreachable) as exc:
        history.trend()
    assert_hidden(str(exc.value))


def test_a_wrong_password_is_one_line_without_the_password(
    postgres_server: Server, tmp_path: Path
) -> None:
    url = postgres_server.database().replace(PASSWORD, "wrong-Pa55-word")
    with pytest.raises(HistoryUnreachable, match="password authentication failed") as exc:
        PostgresHistory(url, History(tmp_path / "q.sqlite")).trend()
    assert "wrong-Pa55-word" not in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (
            "postgres://u:p%40ss@h/db?sslmode=require&password=x",
            "postgres://u:***@h/db?sslmode=require&password=***",
        ),
        ("postgresql://h/db?PassWord=x", "postgresql://h/db?PassWord=***"),
        ("postgresql://u:pw@h:notaport/db", "postgresql://u:***@h:notaport/db"),
    ],
)
def test_redact_hides_every_password(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_scrub_hides_the_password_in_a_drivers_message() -> None:
    url = "postgresql://u:p%40ss@h/db"
    said = 'could not connect with "postgresql://u:p%40ss@h/db" (password=p@ss) p@ss'
    cleaned = scrub(said, url)
    assert "p@ss" not in cleaned
    assert "p%40ss" not in cleaned
    assert "password='a b'" not in scrub("dsn: host=h password='a b' user=u")


# --- the option ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("sqlite:///.energy/h.sqlite", Path(".energy/h.sqlite")),
        ("sqlite:////tmp/h.sqlite", Path("/tmp/h.sqlite")),
        ("history.sqlite", Path("history.sqlite")),
        ("off", None),
        ("postgresql://u:pw@h/db", "postgresql://u:pw@h/db"),
        ("POSTGRES://h/db", "POSTGRES://h/db"),
    ],
)
def test_the_history_option_takes_paths_and_urls(text: str, parsed: Path | str | None) -> None:
    assert parse_history(text) == parsed


@pytest.mark.parametrize("text", ["mysql://u:pw@h/db", "sqlite://h.sqlite", "sqlite:///"])
def test_a_history_url_of_another_kind_is_refused_without_quoting_it(text: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_history(text)
    assert "pw" not in str(exc.value)


def test_an_unknown_scheme_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    done = pytester.runpytest(*MODEL, "--energy-history=mysql://u:hunter2@h/db")
    assert done.ret == pytest.ExitCode.USAGE_ERROR
    done.stderr.fnmatch_lines(["*--energy-history*unknown history URL scheme 'mysql'*"])
    assert "hunter2" not in done.stdout.str() + done.stderr.str()


def test_without_psycopg_a_postgresql_history_is_one_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    pytester.makepyfile(SUITE)
    monkeypatch.setenv("PYTEST_ENERGY_HISTORY", down_url())
    done = pytester.runpytest(*MODEL)
    assert done.ret == pytest.ExitCode.USAGE_ERROR
    assert done.stderr.lines[0] == (
        "ERROR: PYTEST_ENERGY_HISTORY: a postgresql:// history needs psycopg 3: "
        'pip install "pytest-energy[postgres]"'
    )
    assert_hidden(done.stdout.str() + done.stderr.str())
    capsys.readouterr()
    status, _, err = run(capsys, "history", "--history", down_url())
    assert status == 2
    assert 'pip install "pytest-energy[postgres]"' in one_error_line(err)


# --- as a fleet uses it: pytest runs, the CLI, the HTML report -----------------------------


@pytest.fixture
def server_url(postgres_server: Server) -> str:
    return postgres_server.database()


def stored_runs(url: str) -> list[tuple[Any, ...]]:
    return psql(url, "SELECT id, branch, hardware_class FROM runs ORDER BY id")


def test_runs_share_the_servers_history_and_the_report_draws_it(
    pytester: pytest.Pytester, server_url: str
) -> None:
    pytester.makepyfile(SUITE)
    main = (*MODEL, f"--energy-history={server_url}", "--energy-branch=main")
    for _ in range(2):
        done = pytester.runpytest(*main, "--energy-json=results.json", "--energy-html=report.html")
        assert done.ret == 0, done.stdout.str()
        assert_hidden(done.stdout.str() + done.stderr.str())
    assert [r[1] for r in stored_runs(server_url)] == ["main", "main"]
    html = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert html.count('<svg class="spark"') == 2  # each test's trend, from the server's runs
    assert_hidden(html)
    assert_hidden((pytester.path / "results.json").read_text(encoding="utf-8"))
    assert not (pytester.path / ".energy" / "history.sqlite").exists()  # nothing kept locally


def test_a_pull_request_compares_with_its_classs_default_branch_runs_on_the_server(
    pytester: pytest.Pytester,
    server_url: str,
    replay: Callable[..., Path],
    results: Callable[..., dict[str, Any]],
) -> None:
    history = f"--energy-history={server_url}"
    for seed in range(2):
        rounds = noisy(10.0, 5, 0.005, seed=seed)
        done = gated_run(
            pytester, replay, rounds, name=f"h{seed}", args=(history, "--energy-branch=main")
        )
        assert done.ret == 0, done.stdout.str()
    # A feature branch's run on the server is not the default branch's baseline.
    gated_run(pytester, replay, [30.0] * 5, name="f", args=(history, "--energy-branch=other"))
    # Another runner of the class: nothing local, everything from the server.
    shutil.rmtree(pytester.path / ".energy", ignore_errors=True)

    done = gated_run(
        pytester,
        replay,
        [12.0, 12.01, 11.99, 12.0, 12.0],
        args=(
            history,
            "--energy-branch=feature",
            "--energy-history-baseline=2",
            "--energy-history-branch=main",
        ),
    )

    assert results()["gate"]["baseline"] == "history: last 2 runs of branch main"
    v = results()["tests"][0]["verdict"]
    assert v["status"] == "regression", v
    assert v["ratio"] == pytest.approx(1.2, rel=0.02)  # against main's 10 J, not other's 30 J
    assert "baseline 2 processes" in v["reason"]
    assert done.ret == pytest.ExitCode.TESTS_FAILED
    assert [r[1] for r in stored_runs(server_url)] == ["main", "main", "other", "feature"]


def test_a_server_down_costs_no_run_and_the_next_run_pushes_it(
    pytester: pytest.Pytester,
    postgres_server: Server,
    results: Callable[..., dict[str, Any]],
) -> None:
    url = postgres_server.database()
    pytester.makepyfile(SUITE)
    args = (*MODEL, f"--energy-history={url}", "--energy-json=results.json")
    postgres_server.stop()
    try:
        down = pytester.runpytest(*args)
    finally:
        postgres_server.start()

    assert down.ret == 0, down.stdout.str()
    said = [line for line in down.stdout.lines if "could not connect" in line]
    assert len(said) == 1, down.stdout.str()
    assert "this run is queued in" in said[0]
    assert_hidden(down.stdout.str() + down.stderr.str())
    queued = results()
    assert_hidden(json.dumps(queued))
    local = History(pytester.path / ".energy" / "history.sqlite")
    assert [q.started for q in local.queued_runs(redact(url))] == [queued["session"]["started"]]

    up = pytester.runpytest(*args)
    assert up.ret == 0, up.stdout.str()
    up.stdout.fnmatch_lines(["*history: pushed the run of *, queued while unreachable*"])
    started = [r[0] for r in psql(url, "SELECT started FROM runs ORDER BY id")]
    assert started == [queued["session"]["started"], results()["session"]["started"]]
    assert local.queued_runs(redact(url)) == []


def test_history_and_export_read_either_store(
    store: RunHistory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for joules in (4.0, 4.4):
        # A branch name comes from whoever pushed it: a spreadsheet must not run it.
        store.append(run_of([plain("t.py::test_a", joules)]), branch="=HYPERLINK(1)")
    where = store._url if isinstance(store, PostgresHistory) else str(store.where)

    store.append(run_of([plain("t.py::test_a", 9.0)], branch="feature"))
    status, out, err = run(capsys, "history", "--history", where, "--branch", "=HYPERLINK(1)")
    assert (status, err) == (0, "")
    assert "+10.0%" in out

    status, out, err = run(capsys, "history", "t.py::test_a", "--history", where, "--export", "-")
    assert (status, err) == (0, "")
    lines = out.split("\r\n")
    assert lines[0].split(",")[:3] == ["run_id", "started", "commit"]
    assert [line.split(",")[8] for line in lines[1:3]] == ["4.0", "4.4"]  # per_unit

    export = tmp_path / "trend.csv"
    assert run(capsys, "history", "--history", where, "--export", str(export))[0] == 0
    text = export.read_text(encoding="utf-8")
    assert ",'=HYPERLINK(1)," in text
    assert ",=HYPERLINK" not in text
    assert len(text.splitlines()) == 4  # the header and three runs of either branch
    assert_hidden(out + text)


def test_export_never_writes_over_the_history_it_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = History(tmp_path / "history.sqlite")
    history.append(run_of([plain("t.py::test_a", 1.0)]))
    before = history.path.read_bytes()
    status, _, err = run(
        capsys, "history", "--history", str(history.path), "--export", str(history.path)
    )
    assert status == 2
    assert "would destroy it" in one_error_line(err)
    assert history.path.read_bytes() == before


def test_the_cli_reads_the_history_named_in_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    history = History(tmp_path / "elsewhere.sqlite")
    history.append(run_of([plain("t.py::test_a", 1.0)]))
    monkeypatch.setenv("PYTEST_ENERGY_HISTORY", f"sqlite:///{history.path}")
    status, out, _ = run(capsys, "history")
    assert status == 0
    assert "t.py::test_a" in out


def test_report_and_summary_draw_their_trends_from_the_server(
    server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = PostgresHistory(server_url, History(tmp_path / "queue.sqlite"))
    for _ in range(3):
        history.append(sample_record())
    results = sample_results(tmp_path)
    page = tmp_path / "report.html"

    assert run(capsys, "report", str(results), "-o", str(page), "--history", server_url)[0] == 0
    assert page.read_text(encoding="utf-8").count('<svg class="spark"') == 7 + 3  # rows + cards
    status, out, err = run(
        capsys, "summary", str(results), "--trend", server_url, "--trend-branch", "feature/int8"
    )
    assert (status, err) == (0, "")
    assert "```mermaid" in out
    assert_hidden(out + page.read_text(encoding="utf-8"))
