"""The results file while the tests run: grown by appending, never rewritten (issue 12).

Rewriting the whole results file at every checkpoint made a checkpoint cost the whole
run so far: at 20,000 tests ``--energy-json`` added 0.35 ms per test and 140 MB of peak
memory. A checkpoint here costs the tests finished since the last one.

The checkpoint file is the results JSON laid out with ``"tests"`` first, a test a line::

    {
     "schema_version": 1,
     "tests": [
    {...},
    {...}
     ],
     "session": {... "finished": null ...},
     "gate": null,
     "families": []
    }

The first checkpoint writes it atomically. Each later one is ONE ``pwrite`` at the end
of the last test: the new tests, then the session again (small: totals, notices), so the
file is valid JSON after every checkpoint and its totals are current. A process killed
between checkpoints leaves the previous one; a fatal signal in the middle of the write
itself can leave a file :func:`pytest_energy.record.load` refuses in one line. The
session of a checkpoint has ``finished: null`` and :data:`INCOMPLETE_NOTICE`, so a file
left by a killed run never reads as a finished one. The final results replace the file
(:func:`results_chunks`: the usual order, session first, a test a line, streamed test by
test, never one string).

Checkpoints are only for a regular file (or a path not created yet): a FIFO, a device or
``/dev/stdout`` receives the final results once.
"""

from __future__ import annotations

import json
import os
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

from pytest_energy import record_lines
from pytest_energy.record import Idle, RunRecord, TestResult, Totals
from pytest_energy.record_lines import appended_lines, rest_members, results_chunks

__all__ = [
    "CHECKPOINT_ENV",
    "INCOMPLETE_NOTICE",
    "Checkpoint",
    "RunningTotals",
    "checkpoint_interval",
    "results_chunks",
    "totals_of",
]

#: Seconds between checkpoints, overriding the recorder's default; 0 checkpoints every test.
CHECKPOINT_ENV = "PYTEST_ENERGY_CHECKPOINT_SECONDS"
#: The notice every checkpoint carries; the final results never do.
INCOMPLETE_NOTICE = "incomplete: checkpoint of a run that did not finish (killed or still running)"


def checkpoint_interval(default: float) -> tuple[float, str | None]:
    """Seconds between checkpoints from :data:`CHECKPOINT_ENV`, and a notice if it was bad."""
    text = os.environ.get(CHECKPOINT_ENV)
    if text is None or not text.strip():
        return default, None
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also refuses nan
        return default, (
            f"{CHECKPOINT_ENV}={text!r} is not a number of seconds (0 or more); "
            f"checkpointing every {default:g} s"
        )
    return seconds, None


class RunningTotals:
    """The session totals, kept as results arrive, so a checkpoint never sums the whole run."""

    def __init__(self) -> None:
        self.measured = 0
        self.joules = 0.0
        self.seconds = 0.0
        self.net_joules = 0.0
        self.net_count = 0
        #: Every measurement method seen, for a controller that has no meters of its own.
        self.methods: set[str] = set()

    def add(self, result: TestResult) -> None:
        measurement = result.measurement
        if measurement is not None:
            self.add_figures(measurement.total_j, measurement.seconds, measurement.method, None)
        if result.net_j is not None:
            self.net_joules += result.net_j
            self.net_count += 1

    def add_figures(self, joules: float, seconds: float, method: str, net_j: float | None) -> None:
        """A measured test's figures (a row's: :mod:`pytest_energy.measure.rows`)."""
        self.measured += 1
        self.joules += joules
        self.seconds += seconds
        self.methods.add(method)
        if net_j is not None:
            self.net_joules += net_j
            self.net_count += 1

    def totals(self, idle: Idle | None) -> Totals:
        return Totals(
            tests=self.measured,
            joules=self.joules,
            seconds=self.seconds,
            watts=self.joules / self.seconds if self.seconds > 0 else 0.0,
            net_joules=self.net_joules if idle is not None and self.net_count else None,
        )


def totals_of(results: Sequence[TestResult], idle: Idle | None) -> Totals:
    """The session totals of finished results: the same sums as :class:`RunningTotals`."""
    measured = [r.measurement for r in results if r.measurement is not None]
    joules = sum(m.total_j for m in measured)
    seconds = sum(m.seconds for m in measured)
    net = [r.net_j for r in results if r.net_j is not None]
    return Totals(
        tests=len(measured),
        joules=joules,
        seconds=seconds,
        watts=joules / seconds if seconds > 0 else 0.0,
        net_joules=sum(net) if idle is not None and net else None,
    )


def _encode_test(test: TestResult) -> str:
    return record_lines.encode_test(test)  # looked up at each call: tests count the lines


def _trailer(rest: RunRecord) -> str:
    """What follows the last test: the end of the list, then the session and the rest."""
    return "\n ]" + "".join(",\n " + text for text in rest_members(rest)) + "\n}\n"


# -- the file -------------------------------------------------------------------------------


def write_whole_file(path: Path, chunks: Iterable[str]) -> None:
    """Replace ``path`` atomically with ``chunks`` (``output_files.write_atomic_chunks``).

    Imported on the first checkpoint: a run that writes no results file does not load
    the output files' module (issue 16).
    """
    from pytest_energy.output_files import write_atomic_chunks

    write_atomic_chunks(path, chunks)


class Checkpoint:
    """The results file of a run in progress, grown by appending the finished tests."""

    def __init__(self, path: Path, encode: Callable[[Any], str] | None = None) -> None:
        self.path = path
        #: A result's line: the recorder's also takes rows (:mod:`..rows`).
        self._encode = encode or _encode_test
        #: Tests in the file, where the first one starts and the last one ends (the
        #: trailer starts there), and the CRC-32 of the text between: what
        #: :meth:`tests_text` checks before anything reads the tests back.
        self.tests = 0
        self._tests_start = 0
        self._tests_end = 0
        self._tests_crc = 0
        #: The file's length, and which file it is: anything else there is rewritten whole.
        self._end = 0
        self._identity: tuple[int, int] | None = None
        self._trailer = ""
        #: The results in the file, in order: a finished run whose tests are these very
        #: objects is finished in place instead of encoded again.
        self._written: list[object] = []

    def adopt(self, entries: Sequence[object]) -> None:
        """The records that the written rows became, at the same places in ``entries``
        (a row is its index, an ``int``): the file holds them now."""
        self._written = [
            entries[index] if type(kept) is int and index < len(entries) else kept
            for index, kept in enumerate(self._written)
        ]

    def applies(self) -> bool:
        """Whether checkpoints make sense: a regular file, or a path not created yet.

        A stream would receive every checkpoint as one more document; a directory or
        a socket is for the final write to refuse, in one line.
        """
        from pytest_energy.output_files import writes_through

        if writes_through(self.path):
            return False
        return not os.path.exists(self.path) or os.path.isfile(self.path)

    def write(self, results: Sequence[object], rest: RunRecord) -> None:
        """Bring the file up to ``results``; ``rest`` is the record without its tests.

        Only ``results[self.tests:]`` is encoded; raises :class:`OSError` (the file is
        then left as the last checkpoint, or as the previous run left it).
        """
        if self._identity is None or not self._append(results, rest):
            self._rewrite(results, rest)

    def finish(self, record: RunRecord) -> bool:
        """End the file as the final results, in place: the tests since the last
        checkpoint, then the finished session, in one ``pwrite``; so over a whole run
        each test is encoded once. The members are in checkpoint order (tests first).

        False when it cannot be: no checkpoint yet, a result replaced since it was
        written (a verdict added), or the file changed; the caller then writes the
        whole file. May be called again with the same tests (more notices).
        """
        done = self.tests
        tests = record.tests
        if self._identity is None or len(tests) < done:
            return False
        written = zip(tests[:done], self._written, strict=True)
        if any(test is not kept for test, kept in written):
            return False
        return self._append(tests, replace(record, tests=[]), sync=True)

    def tests_text(self, tests: Sequence[TestResult]) -> Iterator[str] | None:
        """The text of ``tests`` as the file holds them (each line after its separator),
        read back in pieces: what :func:`results_chunks` would encode, without encoding.

        None unless the file holds these very results, unchanged since this checkpoint
        wrote them (same file, same length, same CRC-32). Reading it costs two reads of
        the tests' part of the file, from the page cache; encoding them costs 12 µs a
        test. A change between the check and the read raises :class:`OSError`.
        """
        if self._identity is None or len(tests) != self.tests:
            return None
        if any(test is not kept for test, kept in zip(tests, self._written, strict=True)):
            return None
        try:
            with open(self.path, "rb") as file:
                if not self._holds_the_tests(file):
                    return None
        except OSError:
            return None
        return self._read_tests()

    def _holds_the_tests(self, file: BinaryIO) -> bool:
        if not self._as_left(os.fstat(file.fileno())):
            return False
        crc = 0
        for piece in self._pieces(file):
            crc = zlib.crc32(piece, crc)
        return crc == self._tests_crc

    def _read_tests(self) -> Iterator[str]:
        """The pieces, checked again as they are read: a file replaced or edited since
        :meth:`tests_text` looked is an error, never a copy of someone else's text."""
        with open(self.path, "rb") as file:
            crc = 0
            if self._as_left(os.fstat(file.fileno())):
                for piece in self._pieces(file):
                    crc = zlib.crc32(piece, crc)
                    yield piece.decode("ascii")
            if crc != self._tests_crc:
                raise OSError(f"{self.path}: changed while its tests were read back")

    def _as_left(self, info: os.stat_result) -> bool:
        """Whether the file is the one this checkpoint wrote, of the length it left."""
        return (info.st_dev, info.st_ino) == self._identity and info.st_size == self._end

    def _pieces(self, file: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
        """The tests' part of the file, a megabyte at a time."""
        file.seek(self._tests_start)
        left = self._tests_end - self._tests_start
        while left > 0:
            piece = file.read(min(size, left))
            if not piece:
                raise OSError(f"{self.path}: shorter than the tests written to it")
            left -= len(piece)
            yield piece

    def _rewrite(self, results: Sequence[object], rest: RunRecord) -> None:
        """The whole file, atomically: the first checkpoint, or one after a surprise."""
        self._identity = None
        encoded = appended_lines(results, 0, self._encode)
        trailer = _trailer(rest)
        head = '{\n "schema_version": ' + json.dumps(rest.schema_version) + ',\n "tests": ['
        write_whole_file(self.path, (head, encoded, trailer))
        info = os.stat(self.path)
        self.tests = len(results)
        self._written = list(results)
        self._tests_start = len(head)
        self._tests_end = len(head) + len(encoded)
        self._tests_crc = zlib.crc32(encoded.encode("ascii"))
        self._end = self._tests_end + len(trailer)
        self._trailer = trailer
        if stat.S_ISREG(info.st_mode) and info.st_size == self._end:
            self._identity = (info.st_dev, info.st_ino)

    def _append(self, results: Sequence[object], rest: RunRecord, *, sync: bool = False) -> bool:
        """One ``pwrite`` of the new tests and a new trailer; False if the file changed.

        ``sync`` flushes the file to disk, as the atomic write of final results does.
        """
        flags = os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            return False
        try:
            info = os.fstat(fd)
            if not self._as_left(info):
                return False  # replaced or edited since: do not write into someone else's file
            encoded = appended_lines(results[self.tests :], self.tests, self._encode)
            trailer = _trailer(rest)
            # Shorter than the old trailer (totals can lose digits): pad with JSON
            # whitespace, so nothing of the old trailer is left after the new one.
            short = self._end - (self._tests_end + len(encoded) + len(trailer))
            if short > 0:
                trailer = trailer[:-2] + " " * short + trailer[-2:]
            data = (encoded + trailer).encode("ascii")
            self._write_at(fd, self._tests_end, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self._tests_crc = zlib.crc32(memoryview(data)[: len(encoded)], self._tests_crc)
        self._written.extend(results[self.tests :])
        self.tests = len(results)
        self._tests_end += len(encoded)
        self._end = self._tests_end + len(trailer)  # the old end, when padded
        self._trailer = trailer
        return True

    def _write_at(self, fd: int, offset: int, data: bytes) -> None:
        """Write all of ``data`` at ``offset``; on failure put the last trailer back."""
        done = 0
        try:
            while done < len(data):
                done += os.pwrite(fd, data[done:], offset + done)
        except OSError:
            # The old trailer fits where it was (no new blocks even on a full disk):
            # the file is the last checkpoint again.
            with suppress(OSError):
                os.pwrite(fd, self._trailer.encode("ascii"), self._tests_end)
                os.ftruncate(fd, self._end)
            raise
