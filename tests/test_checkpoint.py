"""Checkpoints of the results file: appended, valid after each one, honest when a run dies.

A run killed by ``os._exit`` or SIGTERM never reaches the end of the session; the file it
leaves is the last checkpoint, which says it is incomplete, and every report reads it so.
``PYTEST_ENERGY_CHECKPOINT_SECONDS=0`` checkpoints after every test, so nothing here waits
on the clock.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from inner_runs import by_name
from records import hostile_record, run_record, sample_record, sample_tests

from pytest_energy import cli, record_lines
from pytest_energy.measure import checkpoint, recorder
from pytest_energy.measure.checkpoint import (
    CHECKPOINT_ENV,
    INCOMPLETE_NOTICE,
    Checkpoint,
    results_chunks,
)
from pytest_energy.measure.rows import Row, RowShape
from pytest_energy.record import RunRecord, TestResult, load, to_plain
from pytest_energy.report.markdown import summary_markdown
from pytest_energy.report.overview import overview
from pytest_energy.storage.history import History

ENERGY = ("--energy", "--energy-meter=model", "--energy-json=results.json")

KILLED = """
import os
import signal

def test_first(): pass
def test_second(): pass
def test_killed(): {kill}
def test_never(): pass
"""


@pytest.fixture
def every_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHECKPOINT_ENV, "0")


def summary(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    """What ``pytest-energy summary`` prints for ``path`` (and nothing printed before)."""
    capsys.readouterr()
    assert cli.main(["summary", str(path)]) == 0
    out: str = capsys.readouterr().out
    return out


# -- runs that never finish -----------------------------------------------------------------


@pytest.mark.usefixtures("every_test")
@pytest.mark.parametrize(
    "kill", ["os._exit(1)", "os.kill(os.getpid(), signal.SIGTERM)"], ids=["os_exit", "sigterm"]
)
def test_a_killed_run_leaves_a_valid_checkpoint_that_says_incomplete(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], kill: str
) -> None:
    pytester.makepyfile(KILLED.format(kill=kill))
    result = pytester.runpytest_subprocess(*ENERGY)
    assert result.ret != 0
    path = pytester.path / "results.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert list(by_name(data)) == ["test_first", "test_second"]
    assert data["session"]["finished"] is None
    assert INCOMPLETE_NOTICE in data["session"]["notices"]
    assert data["session"]["totals"]["tests"] == 2
    record = load(path)
    assert [t.nodeid.split("::")[1] for t in record.tests] == ["test_first", "test_second"]
    text = summary(capsys, path)
    headline = text.splitlines()[0]
    # Markdown escapes the colon (autolinks); the words are the overview's headline.
    assert headline.startswith("### ⚪ Incomplete run")
    assert headline.endswith("the process ended before the session finished; 2 tests recorded")
    assert "passed" not in headline


@pytest.mark.usefixtures("every_test")
def test_a_killed_run_behind_a_symlink_checkpoints_the_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(KILLED.format(kill="os._exit(1)"))
    (pytester.path / "kept").mkdir()
    target = pytester.path / "kept" / "energy.json"
    (pytester.path / "results.json").symlink_to(target)
    pytester.runpytest_subprocess(*ENERGY)
    assert (pytester.path / "results.json").is_symlink()
    assert len(load(target).tests) == 2
    assert sorted(p.name for p in target.parent.iterdir()) == ["energy.json"]


@pytest.mark.usefixtures("every_test")
def test_every_checkpoint_is_valid_json_holding_the_tests_run_so_far(
    pytester: pytest.Pytester, results: Callable[[str], dict[str, Any]]
) -> None:
    # Each test reads the file the run is writing: the checkpoint after the tests before it.
    pytester.makepyfile(
        test_reads_the_checkpoint="""
        import json
        import pytest

        @pytest.mark.parametrize("n", range(40))
        def test_reads_the_checkpoint(n):
            if n == 0:
                return  # nothing is written before the first test ends
            with open("results.json", encoding="utf-8") as handle:
                data = json.load(handle)
            assert [t["nodeid"] for t in data["tests"]] == [
                f"test_reads_the_checkpoint.py::test_reads_the_checkpoint[{i}]" for i in range(n)
            ]
            assert data["session"]["finished"] is None
            assert data["session"]["totals"]["tests"] == n
        """
    )
    result = pytester.runpytest(*ENERGY)
    result.assert_outcomes(passed=40)
    assert len(results("results.json")["tests"]) == 40


@pytest.mark.usefixtures("every_test")
def test_a_finished_run_is_complete_with_a_test_a_line(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    pytester.makepyfile("def test_first(): pass\ndef test_second(): pass\n")
    assert pytester.runpytest(*ENERGY).ret == 0
    path = pytester.path / "results.json"
    record = load(path)
    assert record.session.finished is not None
    assert INCOMPLETE_NOTICE not in record.session.notices
    assert len(record.tests) == 2
    # Streamed test by test, yet the same document the record gives in one piece.
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == json.loads(record.to_json())
    assert [line[:11] for line in text.splitlines() if "nodeid" in line] == ['{"nodeid": '] * 2
    assert "Incomplete" not in summary(capsys, path)


@pytest.mark.usefixtures("every_test")
@pytest.mark.parametrize("history", [False, True])
def test_a_run_encodes_each_test_once_for_its_results_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, history: bool
) -> None:
    # Rewriting the whole file at each checkpoint made the cost per test grow with the run,
    # and writing the final file whole encoded every test again: checkpoints append, and
    # the final results finish the checkpoint file in place. The history's compressed
    # copy of the run reads the tests back from that file instead of encoding them again.
    # Plain tests' lines come from their rows (measure.rows), the others' from records.
    encoded: list[str] = []
    whole: list[int] = []
    real_encode, real_to_json = record_lines.encode_test, RunRecord.to_json

    def encode(test: TestResult) -> str:
        encoded.append(test.nodeid)
        return real_encode(test)

    def to_json(record: RunRecord) -> str:
        whole.append(len(record.tests))
        return real_to_json(record)

    def row_line(shape: RowShape, row: Row) -> str:
        encoded.append(shape.record(row).nodeid)
        return real_row_line(shape, row)

    real_row_line = RowShape.line
    monkeypatch.setattr(record_lines, "encode_test", encode)
    monkeypatch.setattr(recorder, "encode_test", encode)
    monkeypatch.setattr(RowShape, "line", row_line)
    monkeypatch.setattr(RunRecord, "to_json", to_json)
    pytester.makepyfile(
        test_thirty="import pytest\n\n@pytest.mark.parametrize('n', range(30))\n"
        "def test_n(n): pass\n"
    )
    extra = () if history else ("--energy-history=off",)
    assert pytester.runpytest(*ENERGY, *extra).ret == 0
    nodeids = [f"test_thirty.py::test_n[{n}]" for n in range(30)]
    assert encoded == nodeids
    assert whole == []  # the final results and the history are streamed, never one string
    record = load(pytester.path / "results.json")
    assert [t.nodeid for t in record.tests] == nodeids
    assert record.session.finished is not None
    assert INCOMPLETE_NOTICE not in record.session.notices
    if history:
        stored = History(pytester.path / ".energy" / "history.sqlite").record(1)
        assert stored.tests == record.tests


def finished_file(path: Path, tests: list[TestResult]) -> tuple[Checkpoint, RunRecord]:
    """A results file checkpointed twice, then finished in place."""
    writer = Checkpoint(path)
    writer.write(tests[:2], incomplete(sample_record()))
    finished = replace(sample_record(), tests=tests)
    assert writer.finish(finished)
    return writer, finished


def test_the_tests_are_read_back_exactly_as_they_would_be_encoded(tmp_path: Path) -> None:
    tests = [*many_tests(5), *hostile_record().tests]
    writer, finished = finished_file(tmp_path / "results.json", tests)
    text = writer.tests_text(finished.tests)
    assert text is not None
    assert "".join(text) == record_lines.appended_lines(tests, 0)
    record_lines.offer_written(writer.tests_text)
    try:
        streamed = "".join(record_lines.results_chunks(finished))
    finally:
        record_lines.withdraw_written()
    assert streamed == "".join(record_lines.results_chunks(finished))
    assert json.loads(streamed) == json.loads(finished.to_json())


def test_tests_are_not_read_back_from_a_file_that_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An edit of the same length (a digit), a file gone, other results:
    # the history then encodes the tests itself, never copies what the file says now.
    path = tmp_path / "results.json"
    tests = many_tests(4)
    writer, finished = finished_file(path, tests)
    original = path.read_text(encoding="ascii")
    assert writer.tests_text(finished.tests) is not None
    assert writer.tests_text(tests[:3]) is None
    assert writer.tests_text([replace(tests[0]), *tests[1:]]) is None
    at = original.index('"line": ') + len('"line": ')
    digit = original[at]
    path.write_text(original[:at] + str((int(digit) + 1) % 10) + original[at + 1 :], "ascii")
    assert writer.tests_text(finished.tests) is None
    record_lines.offer_written(writer.tests_text)
    try:
        streamed = "".join(record_lines.results_chunks(finished))
    finally:
        record_lines.withdraw_written()
    assert json.loads(streamed) == json.loads(finished.to_json())
    path.write_text(original, encoding="ascii")
    assert writer.tests_text(finished.tests) is not None  # the very text it wrote
    path.unlink()
    assert writer.tests_text(finished.tests) is None


def test_a_file_changed_while_its_tests_are_read_back_is_an_error_not_a_copy(
    tmp_path: Path,
) -> None:
    path = tmp_path / "results.json"
    writer, finished = finished_file(path, many_tests(4))
    text = writer.tests_text(finished.tests)
    assert text is not None
    with path.open("r+b") as file:  # after the check, before the read
        file.seek(path.read_bytes().index(b'"line": ') + len(b'"line": '))
        file.write(b"7" if file.read(1) != b"7" else b"8")
    with pytest.raises(OSError, match="changed while its tests were read back"):
        "".join(text)


def test_results_changed_after_the_last_checkpoint_are_written_whole(
    tmp_path: Path,
) -> None:
    # A verdict added at the end is a new result object: the file is written whole.
    path = tmp_path / "results.json"
    tests = many_tests(4)
    writer = Checkpoint(path)
    writer.write(tests[:3], incomplete(sample_record()))
    finished = replace(sample_record(), tests=tests)
    assert writer.finish(finished)
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(finished.to_json())
    again = replace(finished, session=replace(finished.session, notices=["one more"]))
    assert writer.finish(again)  # the same tests, a new session: finished in place again
    assert load(path) == again
    changed = replace(again, tests=[replace(tests[0], outcome="failed"), *tests[1:]])
    assert not writer.finish(changed)
    path.write_text("edited by someone\n", encoding="utf-8")
    assert not Checkpoint(path).finish(again)  # never wrote there: nothing to finish


def test_a_bad_checkpoint_interval_is_a_notice_not_an_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CHECKPOINT_ENV, "soon")
    pytester.makepyfile("def test_one(): pass\n")
    assert pytester.runpytest(*ENERGY).ret == 0
    notices = load(pytester.path / "results.json").session.notices
    assert any(CHECKPOINT_ENV in n and "checkpointing every 2 s" in n for n in notices)


@pytest.mark.usefixtures("every_test")
def test_a_checkpoint_that_cannot_be_written_stops_checkpoints_not_the_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(path: Path, chunks: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint, "write_whole_file", disk_full)
    pytester.makepyfile("def test_first(): pass\ndef test_second(): pass\n")
    assert pytester.runpytest(*ENERGY).ret == 0
    record = load(pytester.path / "results.json")
    assert len(record.tests) == 2
    assert any(n.startswith("results checkpoints stopped:") for n in record.session.notices)


# -- the checkpoint file itself -------------------------------------------------------------


def incomplete(record: RunRecord) -> RunRecord:
    session = replace(record.session, finished=None, notices=[INCOMPLETE_NOTICE])
    return replace(record, session=session, tests=[])


def many_tests(count: int) -> list[TestResult]:
    base = sample_tests()
    return [replace(base[i % len(base)], nodeid=f"test_many.py::test_{i}") for i in range(count)]


def test_each_checkpoint_encodes_only_the_tests_since_the_last_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[str] = []
    real = record_lines.encode_test

    def counted(test: TestResult) -> str:
        encoded.append(test.nodeid)
        return real(test)

    monkeypatch.setattr(record_lines, "encode_test", counted)
    path = tmp_path / "results.json"
    tests = many_tests(60)
    rest = incomplete(sample_record())
    writer = Checkpoint(path)
    for done in range(1, len(tests) + 1):
        writer.write(tests[:done], rest)
        data = json.loads(path.read_text(encoding="utf-8"))
        assert [t["nodeid"] for t in data["tests"]] == [t.nodeid for t in tests[:done]]
    # Flat cost: 60 checkpoints encoded 60 tests, not 60 * 61 / 2.
    assert encoded == [t.nodeid for t in tests]
    assert load(path).tests == tests


def test_hostile_text_keeps_the_offsets_right(tmp_path: Path) -> None:
    # Non-ASCII and control characters are escaped (ensure_ascii): a character is a byte.
    path = tmp_path / "results.json"
    hostile = hostile_record()
    tests = hostile.tests
    writer = Checkpoint(path)
    for done in range(1, len(tests) + 1):
        writer.write(tests[:done], incomplete(hostile))
        assert load(path).tests == tests[:done]
    final = tmp_path / "final.json"
    final.write_text("".join(results_chunks(hostile)), encoding="utf-8")
    assert load(final) == hostile


def test_a_non_finite_number_is_checkpointed_as_null(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    tests = many_tests(2)
    tests[1] = replace(tests[1], net_j=float("nan"))
    Checkpoint(path).write(tests, incomplete(sample_record()))
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["tests"][1]["net_j"] is None
    assert load(path).tests[0] == tests[0]


def test_a_shorter_session_leaves_no_trace_of_the_longer_one(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    long = incomplete(sample_record())
    long = replace(long, session=replace(long.session, notices=["x" * 500, INCOMPLETE_NOTICE]))
    tests = many_tests(2)
    writer = Checkpoint(path)
    writer.write(tests[:1], long)
    writer.write(tests, incomplete(sample_record()))
    record = load(path)
    assert record.tests == tests
    assert record.session.notices == [INCOMPLETE_NOTICE]


def test_a_file_replaced_between_checkpoints_is_rewritten_whole(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    tests = many_tests(3)
    rest = incomplete(sample_record())
    writer = Checkpoint(path)
    writer.write(tests[:1], rest)
    path.write_text('{"someone": "else"}\n', encoding="utf-8")
    writer.write(tests, rest)
    assert load(path).tests == tests


def test_a_failed_append_leaves_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "results.json"
    tests = many_tests(3)
    rest = incomplete(sample_record())
    writer = Checkpoint(path)
    writer.write(tests[:1], rest)
    before = path.read_bytes()
    real = os.pwrite
    calls: list[int] = []

    def full_after_a_page(fd: int, data: bytes, offset: int) -> int:
        calls.append(offset)
        if len(calls) == 1:
            return real(fd, data[:100], offset)  # a short write, then the disk is full
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", full_after_a_page)
    with pytest.raises(OSError, match="No space"):
        writer.write(tests, rest)
    monkeypatch.undo()
    assert path.read_bytes() == before


def test_only_a_regular_file_or_a_new_path_is_checkpointed(tmp_path: Path) -> None:
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    regular = tmp_path / "old.json"
    regular.write_text("{}", encoding="utf-8")
    (tmp_path / "link.json").symlink_to(regular)
    assert not Checkpoint(fifo).applies()
    assert not Checkpoint(tmp_path).applies()
    assert Checkpoint(tmp_path / "new.json").applies()
    assert Checkpoint(regular).applies()
    assert Checkpoint(tmp_path / "link.json").applies()


def test_the_streamed_results_are_the_record_as_json() -> None:
    record = sample_record()
    for each in (record, replace(record, tests=[])):
        text = "".join(results_chunks(each))
        assert json.loads(text) == json.loads(each.to_json())
        assert list(json.loads(text)) == list(json.loads(each.to_json()))  # same order
    # The session reads as to_json indents it; the tests one a line.
    text = "".join(results_chunks(record))
    session = json.dumps(record.to_dict()["session"], indent=1).replace("\n", "\n ")
    assert f'"session": {session},' in text
    tests = [line for line in text.splitlines() if line.startswith('{"nodeid": ')]
    assert len(tests) == len(record.tests)


# -- how reports read an incomplete run -----------------------------------------------------


def test_an_incomplete_record_is_never_a_passed_run() -> None:
    complete = run_record(sample_tests())
    killed = run_record(sample_tests(), finished=None)
    assert not overview(complete).incomplete
    ov = overview(killed)
    assert ov.incomplete
    assert ov.state == "not_gated"
    assert ov.headline == (
        f"Incomplete run: the process ended before the session finished; "
        f"{len(killed.tests)} tests recorded"
    )
    assert "Incomplete run" in summary_markdown(killed).split("\n", 1)[0]
    assert "Incomplete run" not in summary_markdown(complete)


def test_an_incomplete_run_is_a_warning_annotation_and_the_html_headline() -> None:
    from dataclasses import replace

    from records import sample_record

    from pytest_energy.report.annotations import github_annotations
    from pytest_energy.report.html import render_html

    complete = sample_record()
    record = replace(complete, session=replace(complete.session, finished=None))
    lines = github_annotations(record)
    assert any(
        line.startswith("::warning title=Incomplete energy run::Incomplete run") for line in lines
    )
    assert not any("Incomplete" in line for line in github_annotations(complete))
    assert "Incomplete run: the process ended before the session finished" in render_html(record)


def test_a_line_is_the_test_as_to_plain_and_json_dumps_write_it() -> None:
    # The line encoder reads each record class's fields with a function compiled for the
    # class: the text must be what the general path writes, for every kind of record.
    tests = [*sample_tests(), *hostile_record().tests, *sample_record().tests]
    for test in tests:
        assert record_lines.encode_test(test) == json.dumps(to_plain(test), allow_nan=False)
    nan = replace(tests[0], net_j=float("nan"))  # to_plain writes null; the C encoder refuses
    assert json.loads(record_lines.encode_test(nan))["net_j"] is None
    with pytest.raises(TypeError, match="not JSON serializable"):
        record_lines.encode_test(replace(tests[0], error=object()))  # type: ignore[arg-type]
