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
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import fields
from pathlib import Path

from pytest_energy.output_files import write_atomic_chunks, writes_through
from pytest_energy.record import Idle, RunRecord, TestResult, Totals, to_plain

__all__ = [
    "CHECKPOINT_ENV",
    "INCOMPLETE_NOTICE",
    "Checkpoint",
    "RunningTotals",
    "checkpoint_interval",
    "results_chunks",
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
            self.measured += 1
            self.joules += measurement.total_j
            self.seconds += measurement.seconds
            self.methods.add(measurement.method)
        if result.net_j is not None:
            self.net_joules += result.net_j
            self.net_count += 1

    def totals(self, idle: Idle | None) -> Totals:
        return Totals(
            tests=self.measured,
            joules=self.joules,
            seconds=self.seconds,
            watts=self.joules / self.seconds if self.seconds > 0 else 0.0,
            net_joules=self.net_joules if idle is not None and self.net_count else None,
        )


# -- the JSON, piece by piece ---------------------------------------------------------------


def _member(name: str, value: object) -> str:
    """A member of the record as :meth:`RunRecord.to_json` writes it, one level in.

    JSON strings never hold a raw newline, so indenting every line break is safe.
    ``ensure_ascii`` (the default, here and in :func:`_line`) keeps every character one
    byte: offsets in the file are string lengths.
    """
    text = json.dumps(to_plain(value), indent=1, allow_nan=False)
    return f'"{name}": ' + text.replace("\n", "\n ")


def _fields_of(value: object) -> dict[str, object]:
    """A record dataclass as the C encoder's ``default`` sees it: its fields, in order."""
    names = getattr(value, "__dataclass_fields__", None)
    if names is None or isinstance(value, type):
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return {name: getattr(value, name) for name in names}


#: Tests are written with the C encoder, a test a line: 14 us a test against 47 us for
#: ``to_plain`` and an indented dump like the rest, measured on a model-meter result.
_LINE_ENCODER = json.JSONEncoder(default=_fields_of, allow_nan=False)


def _line(test: TestResult) -> str:
    """One test on one line, as :func:`to_plain` and ``json.dumps`` would write it."""
    try:
        return _LINE_ENCODER.encode(test)
    except (ValueError, TypeError):
        # A non-finite float (to_plain writes null), or a value only to_plain knows how
        # to write: the slow path, so a checkpoint says what the final results will say.
        return json.dumps(to_plain(test), allow_nan=False)


def _rest(record: RunRecord) -> list[str]:
    """Every member of the record but the schema version and the tests, in field order."""
    skip = ("schema_version", "tests")
    return [_member(f.name, getattr(record, f.name)) for f in fields(record) if f.name not in skip]


def results_chunks(record: RunRecord) -> Iterator[str]:
    """The complete record, one test at a time: as :meth:`RunRecord.to_json` lays it
    out (same members, same order, same indentation), but with a test a line."""
    for index, item in enumerate(fields(record)):
        yield "{\n " if index == 0 else ",\n "
        if item.name != "tests":
            yield _member(item.name, getattr(record, item.name))
            continue
        yield '"tests": ['
        for number, test in enumerate(record.tests):
            yield ("\n" if number == 0 else ",\n") + _line(test)
        yield "\n ]"
    yield "\n}\n"


def _appended(tests: Sequence[TestResult], already: int) -> str:
    """The tests after ``already`` others, each with the separator before it."""
    return "".join(
        ("\n" if already + n == 0 else ",\n") + _line(test) for n, test in enumerate(tests)
    )


def _trailer(rest: RunRecord) -> str:
    """What follows the last test: the end of the list, then the session and the rest."""
    return "\n ]" + "".join(",\n " + member for member in _rest(rest)) + "\n}\n"


# -- the file -------------------------------------------------------------------------------


class Checkpoint:
    """The results file of a run in progress, grown by appending the finished tests."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: Tests in the file, and where the last one ends (the trailer starts there).
        self.tests = 0
        self._tests_end = 0
        #: The file's length, and which file it is: anything else there is rewritten whole.
        self._end = 0
        self._identity: tuple[int, int] | None = None
        self._trailer = ""

    def applies(self) -> bool:
        """Whether checkpoints make sense: a regular file, or a path not created yet.

        A stream would receive every checkpoint as one more document; a directory or
        a socket is for the final write to refuse, in one line.
        """
        if writes_through(self.path):
            return False
        return not os.path.exists(self.path) or os.path.isfile(self.path)

    def write(self, results: Sequence[TestResult], rest: RunRecord) -> None:
        """Bring the file up to ``results``; ``rest`` is the record without its tests.

        Only ``results[self.tests:]`` is encoded; raises :class:`OSError` (the file is
        then left as the last checkpoint, or as the previous run left it).
        """
        if self._identity is None or not self._append(results, rest):
            self._rewrite(results, rest)

    def _rewrite(self, results: Sequence[TestResult], rest: RunRecord) -> None:
        """The whole file, atomically: the first checkpoint, or one after a surprise."""
        self._identity = None
        encoded = _appended(results, 0)
        trailer = _trailer(rest)
        head = '{\n "schema_version": ' + json.dumps(rest.schema_version) + ',\n "tests": ['
        write_atomic_chunks(self.path, (head, encoded, trailer))
        info = os.stat(self.path)
        self.tests = len(results)
        self._tests_end = len(head) + len(encoded)
        self._end = self._tests_end + len(trailer)
        self._trailer = trailer
        if stat.S_ISREG(info.st_mode) and info.st_size == self._end:
            self._identity = (info.st_dev, info.st_ino)

    def _append(self, results: Sequence[TestResult], rest: RunRecord) -> bool:
        """One ``pwrite`` of the new tests and a new trailer; False if the file changed."""
        flags = os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            return False
        try:
            info = os.fstat(fd)
            if (info.st_dev, info.st_ino) != self._identity or info.st_size != self._end:
                return False  # replaced or edited since: do not write into someone else's file
            encoded = _appended(results[self.tests :], self.tests)
            trailer = _trailer(rest)
            # Shorter than the old trailer (totals can lose digits): pad with JSON
            # whitespace, so nothing of the old trailer is left after the new one.
            short = self._end - (self._tests_end + len(encoded) + len(trailer))
            if short > 0:
                trailer = trailer[:-2] + " " * short + trailer[-2:]
            self._write_at(fd, self._tests_end, (encoded + trailer).encode("ascii"))
        finally:
            os.close(fd)
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
