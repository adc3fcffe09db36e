"""The end of the session is fail-safe: every requested file is attempted, none is lost.

Issue 12, items 3 to 5: a test's metadata that JSON cannot hold, an output folder
that stops being writable during the run, and a history another run keeps locked.
"""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from records import run_record, window_test

from pytest_energy.measure.benchmark import json_value
from pytest_energy.plugin.session_end import describe
from pytest_energy.storage import history as history_module
from pytest_energy.storage.history import History, HistoryError
from pytest_energy.storage.history_schema import record_json_text

MODEL = ("--energy", "--energy-meter=model", "--energy-window=0.01")

PASSING = """
def test_work():
    assert sum(range(1000)) == 499500
"""


# --- item 3: metadata and quality values a test hands over -----------------------------------


def test_numpy_and_torch_values_and_objects_are_recorded_as_json(
    pytester: pytest.Pytester, results: Callable[..., dict[str, Any]]
) -> None:
    # Imported here first, so the inner run does not import (and then unload) them.
    pytest.importorskip("numpy")
    pytest.importorskip("torch")
    pytester.makepyfile(
        """
        import numpy as np
        import torch

        class Opaque:
            def __str__(self):
                return "opaque thing"

        def test_model(energy_benchmark):
            energy_benchmark.pedantic(lambda: None, rounds=2, units=1)
            energy_benchmark.metadata(
                batch=np.int64(32),
                scale=np.float32(0.5),
                fused=np.bool_(True),
                dtype=torch.float32,
                storage=np.dtype("float16"),
                loss=torch.tensor(1.5),
                thing=Opaque(),
                sizes={"batch": (np.int64(8), 16)},
                spread=float("nan"),
            )
            energy_benchmark.metadata(dtype=torch.float32)  # again: still one notice
            energy_benchmark.quality(accuracy=np.float32(0.75), loss=torch.tensor(0.25))
        """
    )
    result = pytester.runpytest(*MODEL, "--energy-json=results.json")
    assert result.ret == 0, result.stdout.str()
    assert "INTERNALERROR" not in result.stdout.str()
    data = results()
    (test,) = data["tests"]
    metadata = test["benchmark"]["metadata"]
    assert metadata == {
        "batch": 32,
        "scale": 0.5,
        "fused": True,
        "dtype": "torch.float32",
        "storage": "float16",
        "loss": 1.5,
        "thing": "opaque thing",
        "sizes": {"batch": [8, 16]},
        "spread": "nan",
    }
    assert isinstance(metadata["batch"], int)
    assert {q["name"]: q["value"] for q in test["benchmark"]["quality"]} == {
        "accuracy": 0.75,
        "loss": 0.25,
    }
    notices = data["session"]["notices"]
    for key in ("dtype", "storage", "thing", "spread"):
        about = [n for n in notices if f"metadata {key!r}" in n]
        assert len(about) == 1, notices
        assert "str()" in about[0]
    assert not [n for n in notices if "'batch'" in n or "'loss'" in n or "'sizes'" in n]
    result.stdout.fnmatch_lines(["*note: *test_model: metadata 'dtype' (torch.dtype)*str()*"])


def test_metadata_conversion_never_raises() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    looped: list[Any] = []
    looped.append(looped)
    assert json_value(Unprintable()) == ("<Unprintable that cannot be printed>", True)
    assert json_value({1: "one"}) == ({"1": "one"}, True)
    plain, converted = json_value(looped)
    assert converted
    json.dumps(plain)  # nested past the depth limit: the rest is a string
    assert json_value(float("inf")) == ("inf", True)
    assert json_value([1, "a", None, 2.5, False]) == ([1, "a", None, 2.5, False], False)


# --- item 4: a requested file that cannot be written --------------------------------------


@pytest.fixture
def locked_out() -> Iterator[list[Path]]:
    """Folders a test makes read-only; their permissions are restored afterwards."""
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    folders: list[Path] = []
    yield folders
    for folder in folders:
        folder.chmod(0o755)


#: How the inner test takes a folder away while the run goes on: its write permission
#: (not for root, who ignores it), or the folder itself, replaced by a file.
BREAKERS = {
    "chmod": "os.chmod({folder!r}, 0o500)",
    "file": "os.rename({folder!r}, {folder!r} + '.moved'); open({folder!r}, 'w').close()",
}
BREAK_DURING_RUN = """
import os

def test_work():
    {breaker}
    assert sum(range(1000)) == 499500
"""


@pytest.mark.parametrize("breaker", sorted(BREAKERS))
@pytest.mark.parametrize(
    ("unwritable", "what", "status"),
    [
        pytest.param("energy", "baseline", pytest.ExitCode.USAGE_ERROR, id="energy-dir"),
        pytest.param("hist", "history", pytest.ExitCode.TESTS_FAILED, id="history"),
        pytest.param("html", "HTML report", pytest.ExitCode.TESTS_FAILED, id="html"),
        pytest.param("json", "results", pytest.ExitCode.TESTS_FAILED, id="json"),
    ],
)
def test_a_folder_lost_mid_run_costs_only_its_own_file(
    pytester: pytest.Pytester,
    request: pytest.FixtureRequest,
    unwritable: str,
    what: str,
    status: pytest.ExitCode,
    breaker: str,
) -> None:
    folders = {name: pytester.mkdir(name) for name in ("energy", "hist", "html", "json")}
    if breaker == "chmod":
        request.getfixturevalue("locked_out").append(folders[unwritable])
    code = BREAKERS[breaker].format(folder=str(folders[unwritable]))
    pytester.makepyfile(BREAK_DURING_RUN.format(breaker=code))
    files = {
        "json": folders["json"] / "results.json",
        "hist": folders["hist"] / "history.sqlite",
        "html": folders["html"] / "report.html",
    }
    result = pytester.runpytest(
        *MODEL,
        f"--energy-dir={folders['energy']}",
        "--energy-save-baseline=main",
        f"--energy-json={files['json']}",
        f"--energy-history={files['hist']}",
        f"--energy-html={files['html']}",
    )
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == status, output
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output
    failures = [line for line in output.splitlines() if " not written: " in line]
    assert len(failures) == 1, output
    assert failures[0].startswith(f"{what} not written: ")
    assert str(folders[unwritable]) in failures[0]
    result.stdout.fnmatch_lines(["*=== energy ===*"])
    # Every other file was written, and says what went wrong.
    for name, path in files.items():
        assert path.is_file() == (name != unwritable), name
    assert (folders["energy"] / "baselines" / "main.json").is_file() == (unwritable != "energy")
    stored = History(files["hist"]).trend(None) if unwritable != "hist" else []
    assert len({p.run_id for p in stored}) == (0 if unwritable == "hist" else 1)
    if unwritable != "json":
        session = json.loads(files["json"].read_text(encoding="utf-8"))["session"]
        assert failures[0] in session["notices"]
        assert session["exit_status"] == status
        assert "results: " in result.stdout.str()
    else:
        assert "results: " not in result.stdout.str()  # never claims a file it did not write


def test_a_writer_that_breaks_is_one_line_with_its_type(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, results: Callable[..., Any]
) -> None:
    # From sys.modules, not the package's attribute: an earlier in-process run may have
    # imported the module and left the package pointing at a copy no longer in use.
    html = importlib.import_module("pytest_energy.report.html")

    def broken(*args: object) -> str:
        raise RuntimeError("renderer\nbug")

    monkeypatch.setattr(html, "render_html", broken)
    pytester.makepyfile(PASSING)
    history = pytester.path / "history.sqlite"
    result = pytester.runpytest(
        *MODEL,
        "--energy-json=results.json",
        "--energy-html=report.html",
        f"--energy-history={history}",
        "--energy-markdown=summary.md",
    )
    line = "HTML report not written: RuntimeError: renderer bug"
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([line])
    assert result.stdout.str().count(line) == 1
    assert "Traceback" not in result.stdout.str()
    assert line in results()["session"]["notices"]
    assert (pytester.path / "summary.md").is_file()
    assert line not in stored_runs(history)[0]["session"]["notices"]  # added before the report


def test_a_failure_is_described_on_one_line() -> None:
    assert describe(PermissionError(13, "Permission denied", "/out/r.json")) == (
        "/out/r.json: Permission denied"
    )
    assert describe(OSError("no strerror")) == "no strerror"
    assert describe(HistoryError("two\nlines")) == "two lines"
    assert describe(KeyError("x")) == "KeyError: 'x'"


# --- item 5: a history another run keeps locked ----------------------------------------------


@pytest.fixture
def short_lock_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock held past the (shortened) busy timeout, without waiting 10 s for it."""
    monkeypatch.setattr(history_module, "BUSY_TIMEOUT_S", 0.0)


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another run stuck mid-write: an open exclusive transaction on the history."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def stored_runs(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT record FROM runs ORDER BY id").fetchall()
    return [json.loads(record_json_text(row[0])) for row in rows]


@pytest.mark.parametrize(
    # In WAL mode (ours) a writer's lock leaves reading free; in a rollback journal
    # (a history someone converted) it blocks even the check before the tests.
    "journal",
    ["wal", "delete"],
)
def test_a_locked_history_queues_the_run_for_the_next_one(
    pytester: pytest.Pytester,
    short_lock_wait: None,
    results: Callable[..., dict[str, Any]],
    journal: str,
) -> None:
    pytester.makepyfile(PASSING)
    history = pytester.path / "history.sqlite"
    args = (*MODEL, f"--energy-history={history}", "--energy-json=results.json")
    assert pytester.runpytest(*args).ret == 0  # creates the history: one run
    with sqlite3.connect(history) as conn:
        conn.execute(f"PRAGMA journal_mode = {journal}")
    holder = hold_write_lock(history)
    try:
        locked = pytester.runpytest(*args)
    finally:
        holder.rollback()
        holder.close()
    assert locked.ret == 0, locked.stdout.str()
    locked.stdout.fnmatch_lines(
        ["*history * locked by another run; this run queued in *.pending*and added on the next run"]
    )
    queued_notice = [n for n in results()["session"]["notices"] if "queued in" in n]
    assert len(queued_notice) == 1
    queued_started = results()["session"]["started"]
    assert len(list((pytester.path / "history.sqlite.pending").glob("*.json"))) == 1
    assert len(stored_runs(history)) == 1

    after = pytester.runpytest(*args)
    assert after.ret == 0, after.stdout.str()
    after.stdout.fnmatch_lines(["*note: history: added the run of * queued in *"])
    runs = stored_runs(history)
    assert len(runs) == 3  # the first, the queued one, then this one, in that order
    assert runs[1]["session"]["started"] == queued_started
    assert runs[2]["session"]["started"] == results()["session"]["started"]
    assert list((pytester.path / "history.sqlite.pending").glob("*.json")) == []


def test_a_queued_run_is_added_once_and_a_broken_one_is_kept(
    tmp_path: Path, short_lock_wait: None
) -> None:
    history = History(tmp_path / "history.sqlite")
    history.append(run_record([window_test("t.py::test_a", 1.0)], started="2025-03-01T10:00:00Z"))
    queued = run_record([window_test("t.py::test_a", 2.0)], started="2025-03-01T11:00:00Z")
    holder = hold_write_lock(history.path)
    try:
        (line,) = history.add_run(queued)
    finally:
        holder.rollback()
        holder.close()
    assert "queued in" in line
    (spooled,) = history.pending_dir.glob("*.json")
    kept = spooled.read_text(encoding="utf-8")
    broken = history.pending_dir / "20250301T0900-1.json"
    broken.write_text('{"schema_version": ', encoding="utf-8")

    lines = history.add_run(
        run_record([window_test("t.py::test_a", 3.0)], started="2025-03-01T12:00:00Z")
    )
    assert any("left in place" in n and str(broken) in n for n in lines), lines
    assert broken.exists()
    assert not spooled.exists()
    # A run added once but whose file stayed behind (killed before removing it) is not
    # added twice.
    spooled.write_text(kept, encoding="utf-8")
    history.add_run(run_record([window_test("t.py::test_a", 4.0)], started="2025-03-01T13:00:00Z"))
    started = [run["session"]["started"] for run in stored_runs(history.path)]
    assert started == [f"2025-03-01T{h}:00:00Z" for h in ("10", "11", "12", "13")]
    assert not spooled.exists()
    assert broken.exists()


def test_a_queue_that_cannot_be_written_is_one_line(
    tmp_path: Path, short_lock_wait: None, locked_out: list[Path]
) -> None:
    folder = tmp_path / "runs"
    history = History(folder / "history.sqlite")
    history.append(run_record([window_test("t.py::test_a", 1.0)]))
    holder = hold_write_lock(history.path)
    folder.chmod(0o500)
    locked_out.append(folder)
    try:
        with pytest.raises(history_module.HistoryError) as caught:
            history.add_run(run_record([window_test("t.py::test_a", 2.0)]))
    finally:
        holder.rollback()
        holder.close()
    message = str(caught.value)
    assert "\n" not in message
    assert "stayed locked" in message
    assert "could not be queued" in message


def test_a_fifo_gets_the_results_once_with_every_notice(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PASSING)
    fifo = pytester.path / "results.fifo"
    os.mkfifo(fifo)
    # The reading end is open before the run; the results fit the pipe's buffer.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        result = pytester.runpytest(
            *MODEL, f"--energy-json={fifo}", "--energy-save-baseline=main", "--energy-history=off"
        )
        received = b""
        while chunk := _read_available(reader):
            received += chunk
    finally:
        os.close(reader)
    assert result.ret == 0, result.stdout.str()
    document = json.loads(received)  # exactly one document: a second would not parse
    assert any(n.startswith("baseline ") for n in document["session"]["notices"])


def _read_available(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return b""


def test_a_run_refused_at_collection_writes_nothing(pytester: pytest.Pytester) -> None:
    """A bad marker is a usage error found at collection: no results, no history row."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.energy(rounds="many")
        def test_work():
            pass
        """
    )
    history = pytester.path / "history.sqlite"
    results = pytester.path / "results.json"
    result = pytester.runpytest(
        "--energy",
        "--energy-meter=model",
        f"--energy-history={history}",
        f"--energy-json={results}",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not results.exists()
    assert not history.exists() or stored_runs(history) == []


def test_results_in_a_fresh_energy_folder_get_its_gitignore(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_work():\n    pass\n")
    result = pytester.runpytest(
        "--energy", "--energy-meter=model", "--energy-json=.energy/results.json"
    )
    assert result.ret == pytest.ExitCode.OK
    assert (pytester.path / ".energy" / "results.json").is_file()
    assert "history.sqlite*" in (pytester.path / ".energy" / ".gitignore").read_text()
