"""Output files: what each kind of path given as an output gets, and what it never loses.

A regular file is replaced atomically with the umask's mode; a symlink is followed and
stays a link; a FIFO, a character device or a descriptor name is written through; a
directory, a socket and a FIFO without a reader are one clear error (issue 12, item 1).
Only fabricated files: FIFOs, symlinks, pipes and a pseudo-terminal this test creates.
"""

from __future__ import annotations

import errno
import json
import os
import select
import socket
import stat
import threading
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_calls import sample_results
from records import sample_record

from pytest_energy import cli
from pytest_energy.output_files import (
    NoReaderError,
    write_atomic,
    write_atomic_chunks,
    writes_through,
)
from pytest_energy.report.html import render_html

#: A guard against a hang, never a timing assertion: a working run takes a fraction of it.
NO_HANG_S = 60.0

TWO_TESTS = "def test_a():\n    pass\n\n\ndef test_b():\n    pass\n"


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set the process umask for one test; the original comes back afterwards."""
    original = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(original)


class FifoReader:
    """A process reading a FIFO to its end, like ``cat fifo`` started before the run.

    The read end is opened here, before any writer, so the writer never finds the FIFO
    without a reader; ``select`` waits for the first writer (Linux reports no hang-up on
    a FIFO until a writer has come), then the thread reads until the writer closes.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._data = bytearray()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while select.select([self._fd], [], [], NO_HANG_S)[0]:
                try:
                    chunk = os.read(self._fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    return
                self._data += chunk
        finally:
            os.close(self._fd)

    def text(self) -> str:
        self._thread.join(NO_HANG_S)
        assert not self._thread.is_alive(), "the writer never closed the FIFO"
        return self._data.decode("utf-8")


def finishes(action: Callable[[], Any]) -> BaseException | None:
    """Run ``action`` in a thread; what it raised. Fails, rather than hangs, if it blocks."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(NO_HANG_S)
    assert not thread.is_alive(), "the write blocked"
    return raised[0] if raised else None


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- regular files: atomic, with the mode open() would give -----------------------------------


@pytest.mark.parametrize(
    ("mask", "expected"),
    [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)],
    ids=["umask-022", "umask-027", "umask-002"],
)
def test_a_new_file_gets_the_umasks_mode(
    mask: int, expected: int, umask: Callable[[int], None], tmp_path: Path
) -> None:
    umask(mask)
    path = tmp_path / "results.json"
    write_atomic(path, "{}\n")
    assert path.read_text(encoding="utf-8") == "{}\n"
    assert mode(path) == expected
    assert listing(tmp_path) == ["results.json"]


def test_a_replaced_file_keeps_its_mode(umask: Callable[[int], None], tmp_path: Path) -> None:
    umask(0o077)
    path = tmp_path / "report.html"
    path.write_text("old", encoding="utf-8")
    path.chmod(0o604)  # published by the user on purpose
    write_atomic(path, "new")
    assert path.read_text(encoding="utf-8") == "new"
    assert mode(path) == 0o604


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "out" / "energy" / "summary.md"
    write_atomic(path, "# energy\n")
    assert path.read_text(encoding="utf-8") == "# energy\n"


def test_chunks_are_written_in_order(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_atomic_chunks(path, (f"{i}\n" for i in range(20_000)))
    assert path.read_text(encoding="utf-8").splitlines() == [str(i) for i in range(20_000)]


def _failing_chunks() -> Iterator[str]:
    yield "half of a new "
    raise RuntimeError("the record could not be rendered")


def test_a_failure_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("old results", encoding="utf-8")
    with pytest.raises(RuntimeError, match="could not be rendered"):
        write_atomic_chunks(path, _failing_chunks())
    assert path.read_text(encoding="utf-8") == "old results"
    assert listing(tmp_path) == ["results.json"]


@pytest.mark.parametrize("call", ["fsync", "replace"])
def test_a_failing_disk_leaves_no_temporary_file(
    call: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_error(*args: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    path = tmp_path / "results.json"
    path.write_text("old results", encoding="utf-8")
    monkeypatch.setattr(os, call, disk_error)
    with pytest.raises(OSError, match="Input/output error"):
        write_atomic(path, "new results")
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == "old results"
    assert listing(tmp_path) == ["results.json"]


# -- symlinks: followed, and the link stays -------------------------------------------------


def test_a_symlink_stays_and_its_target_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "real" / "results.json"
    target.parent.mkdir()
    target.write_text("old", encoding="utf-8")
    target.chmod(0o640)
    link = tmp_path / "results.json"
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink()
    assert os.readlink(link) == str(target)
    assert target.read_text(encoding="utf-8") == "new"
    assert mode(target) == 0o640
    assert listing(tmp_path) == ["real", "results.json"]
    assert listing(target.parent) == ["results.json"]


def test_a_chain_of_relative_symlinks_is_followed_to_the_end(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "report.html"
    target.write_text("old", encoding="utf-8")
    (tmp_path / "second").symlink_to("store/report.html")
    (tmp_path / "first").symlink_to("second")
    write_atomic(tmp_path / "first", "new")
    assert os.readlink(tmp_path / "first") == "second"
    assert os.readlink(tmp_path / "second") == "store/report.html"
    assert target.read_text(encoding="utf-8") == "new"


def test_a_dangling_symlink_creates_its_target(
    umask: Callable[[int], None], tmp_path: Path
) -> None:
    umask(0o027)
    link = tmp_path / "results.json"
    link.symlink_to("elsewhere.json")
    write_atomic(link, "{}")
    assert link.is_symlink()
    assert (tmp_path / "elsewhere.json").read_text(encoding="utf-8") == "{}"
    assert mode(tmp_path / "elsewhere.json") == 0o640


def test_a_dangling_symlink_into_a_missing_directory_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "results.json"
    link.symlink_to(tmp_path / "gone" / "results.json")
    with pytest.raises(FileNotFoundError) as raised:
        write_atomic(link, "{}")
    assert raised.value.strerror == (
        f"is a symlink to {tmp_path / 'gone' / 'results.json'}, whose directory does not exist"
    )
    assert listing(tmp_path) == ["results.json"]
    assert link.is_symlink()


def test_a_symlink_loop_is_an_error_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(OSError) as raised:
        write_atomic(tmp_path / "a", "{}")
    assert raised.value.errno == errno.ELOOP
    assert listing(tmp_path) == ["a", "b"]


# -- what is refused ----------------------------------------------------------------------


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "link").symlink_to("reports")
    for path in (tmp_path / "reports", tmp_path / "link"):
        with pytest.raises(IsADirectoryError) as raised:
            write_atomic(path, "{}")
        assert raised.value.strerror == "is a directory, expected a file path"
    assert (tmp_path / "link").is_symlink()
    assert listing(tmp_path / "reports") == []


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(OSError, match="is a socket, expected a file path"):
            write_atomic(path, "{}")
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


# -- streams: written through, never replaced ------------------------------------------------


def test_a_fifo_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    text = "".join(f'{{"test": {i}}}\n' for i in range(20_000))  # far beyond a pipe's buffer
    assert finishes(lambda: write_atomic(fifo, text)) is None
    assert reader.text() == text
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert listing(tmp_path) == ["results.fifo"]
    assert writes_through(fifo)


def test_chunks_stream_through_a_symlinked_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    (tmp_path / "results.json").symlink_to(fifo)
    reader = FifoReader(fifo)
    chunks = [f"{i}," for i in range(5000)]
    assert finishes(lambda: write_atomic_chunks(tmp_path / "results.json", iter(chunks))) is None
    assert reader.text() == "".join(chunks)
    assert (tmp_path / "results.json").is_symlink()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_fifo_without_a_reader_is_one_error_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    raised = finishes(lambda: write_atomic(fifo, "{}"))
    assert isinstance(raised, NoReaderError)
    assert isinstance(raised, OSError)
    assert raised.errno == errno.ENXIO
    assert raised.strerror == "nothing is reading this FIFO; start its reader before writing to it"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert listing(tmp_path) == ["results.fifo"]


def test_a_character_device_is_written_through(tmp_path: Path) -> None:
    """A pseudo-terminal of this test's own stands in for /dev/tty-like nodes."""
    try:
        terminal, device = os.openpty()
    except OSError:
        pytest.skip("no pseudo-terminals here")
    try:
        tty.setraw(device)  # no CR added before each LF
        link = tmp_path / "summary.md"
        link.symlink_to(os.ttyname(device))
        assert writes_through(link)
        write_atomic(link, "# energy\n")
        assert os.read(terminal, 100) == b"# energy\n"
        assert link.is_symlink()
        assert stat.S_ISCHR(os.stat(link).st_mode)
    finally:
        os.close(device)
        os.close(terminal)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc")
def test_a_descriptor_name_is_written_through_the_descriptor(tmp_path: Path) -> None:
    """``--energy-json=/dev/stdout`` in ``pytest ... | jq``: /proc/self/fd/N of a pipe."""
    read_end, write_end = os.pipe()
    try:
        link = tmp_path / "stdout"  # as /dev/stdout links to /proc/self/fd/1
        link.symlink_to(f"/proc/self/fd/{write_end}")
        assert writes_through(link)
        write_atomic(link, '{"tests": []}\n')
        assert os.read(read_end, 100) == b'{"tests": []}\n'
        assert link.is_symlink()
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc")
def test_a_descriptor_name_for_a_redirected_file_appends(tmp_path: Path) -> None:
    """``pytest ... > out.txt`` then ``--energy-json=/dev/stdout``: the shell's file is kept."""
    out = tmp_path / "out.txt"
    with out.open("w", encoding="utf-8") as shell_stdout:
        shell_stdout.write("== 2 passed ==\n")
        shell_stdout.flush()
        inode = os.fstat(shell_stdout.fileno()).st_ino
        write_atomic(Path(f"/proc/self/fd/{shell_stdout.fileno()}"), "{}\n")
    assert out.read_text(encoding="utf-8") == "== 2 passed ==\n{}\n"
    assert os.stat(out).st_ino == inode
    assert listing(tmp_path) == ["out.txt"]


def test_regular_files_and_new_paths_are_not_streams(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("{}", encoding="utf-8")
    assert not writes_through(tmp_path / "results.json")
    assert not writes_through(tmp_path / "new.json")
    assert not writes_through(tmp_path)


# -- through the plugin and the CLI --------------------------------------------------------------


def test_the_plugin_follows_a_symlinked_results_path(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_two=TWO_TESTS)
    (pytester.path / "kept").mkdir()
    link = pytester.path / "results.json"
    link.symlink_to("kept/energy.json")
    result = pytester.runpytest("--energy", "--energy-meter=model", f"--energy-json={link}")
    assert result.ret == 0
    assert link.is_symlink()
    data = json.loads((pytester.path / "kept" / "energy.json").read_text(encoding="utf-8"))
    assert data["session"]["finished"] is not None
    assert len(data["tests"]) == 2
    assert listing(pytester.path / "kept") == ["energy.json"]


def test_the_plugin_writes_the_final_results_through_a_fifo(pytester: pytest.Pytester) -> None:
    """One finished document: no checkpoint ever reaches a stream's reader."""
    pytester.makepyfile(test_two=TWO_TESTS)
    fifo = pytester.path / "results.fifo"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    result = pytester.runpytest("--energy", "--energy-meter=model", f"--energy-json={fifo}")
    data = json.loads(reader.text())
    assert result.ret == 0
    assert data["session"]["finished"] is not None
    assert len(data["tests"]) == 2
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return sample_results(tmp_path)


def test_the_cli_writes_a_report_through_a_fifo(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    assert cli.main(["report", str(results), "-o", str(fifo)]) == 0
    assert reader.text() == render_html(sample_record())
    assert capsys.readouterr() == ("", "")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_the_cli_refuses_a_fifo_without_a_reader_in_one_line(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "summary.fifo"
    os.mkfifo(fifo)
    statuses: list[int] = []
    assert (
        finishes(lambda: statuses.append(cli.main(["summary", str(results), "-o", str(fifo)])))
        is None
    )
    assert statuses == [2]
    assert capsys.readouterr() == (
        "",
        f"pytest-energy: error: cannot write {fifo}: "
        "nothing is reading this FIFO; start its reader before writing to it\n",
    )
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert listing(tmp_path) == ["results.json", "summary.fifo"]
