"""A run record as the results file lays it out, a test a line.

:func:`results_chunks` yields the record piece by piece in the order and indentation
of :meth:`RunRecord.to_json <pytest_energy.record.RunRecord.to_json>`, except that each
test is one line, encoded with the C encoder. The results file and its checkpoints
(:mod:`pytest_energy.measure.checkpoint`) and the history's compressed copy of the run
(:mod:`pytest_energy.storage.history_schema`) are written from these pieces, never from
one string of the whole run (issue 16: at 20,000 tests the whole-record paths cost more
time and memory than the measuring itself).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields

from pytest_energy.record import RunRecord, TestResult, to_plain

__all__ = [
    "appended_lines",
    "drop_lines",
    "encode_test",
    "keep_lines",
    "member",
    "rest_members",
    "results_chunks",
]


def member(name: str, value: object) -> str:
    """A member of the record as :meth:`RunRecord.to_json` writes it, one level in.

    JSON strings never hold a raw newline, so indenting every line break is safe.
    ``ensure_ascii`` (the default, here and in :func:`encode_test`) keeps every
    character one byte: offsets in a file are string lengths.
    """
    text = json.dumps(to_plain(value), indent=1, allow_nan=False)
    return f'"{name}": ' + text.replace("\n", "\n ")


def _fields_of(value: object) -> dict[str, object]:
    """A record dataclass as the C encoder's ``default`` sees it: its fields, in order."""
    names = getattr(value, "__dataclass_fields__", None)
    if names is None or isinstance(value, type):
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return {name: getattr(value, name) for name in names}


#: Tests are written with the C encoder, a test a line: 12 µs a test against 47 µs for
#: ``to_plain`` and an indented dump like the rest, measured on a model-meter result.
_LINE_ENCODER = json.JSONEncoder(default=_fields_of, allow_nan=False)


def _line_encoder() -> Callable[[object], str]:
    """The C encoder made once, not once per line as ``JSONEncoder.encode`` makes it, and
    without the cycle check (a record has no cycles): 1.5 of a line's 11.5 µs."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # Python built without its _json accelerator
        return _LINE_ENCODER.encode
    try:
        chunks = make(
            None, _fields_of, json.encoder.encode_basestring_ascii, None, ": ", ", ",
            False, False, False,
        )  # fmt: skip
    except TypeError:  # a Python whose accelerator takes other arguments
        return _LINE_ENCODER.encode

    def encode(value: object) -> str:
        return "".join(chunks(value, 0))

    return encode


_encode_line = _line_encoder()


#: The lines encoded this session, by the identity of their result, while a session
#: keeps them (:func:`keep_lines`). A result is frozen, so its line never changes: the
#: results file's checkpoints encode each test once, and the history's copy of the run
#: at the end reuses the lines instead of encoding every test again (12 µs a test).
#: ``_kept_results`` holds each of those results, so no id is reused while it is kept;
#: a dict of strings and one list are not walked by the garbage collector, where a
#: (result, line) pair per test was (issue 16).
_kept: dict[int, str] | None = None
_kept_results: list[TestResult] = []

#: Characters of lines kept at most. The saving is per test but the memory grows with
#: the suite: at 20,000 tests the lines took ~20 MB, which broke the 50-MB peak target
#: (issue 16). Past the cap, later tests are encoded again for the history.
KEEP_CHARS = 4_000_000
_kept_room = 0


def keep_lines(limit: int = KEEP_CHARS) -> None:
    """Remember the tests' lines from now on, up to ``limit`` characters, until
    :func:`drop_lines`."""
    global _kept, _kept_room, _kept_results
    _kept, _kept_room, _kept_results = {}, limit, []


def drop_lines() -> None:
    global _kept, _kept_results
    _kept, _kept_results = None, []


def encode_test(test: TestResult) -> str:
    """One test on one line, as :func:`to_plain` and ``json.dumps`` would write it."""
    global _kept_room
    kept = _kept
    if kept is not None:
        known = kept.get(id(test))
        if known is not None:
            return known
    try:
        line = _encode_line(test)
    except (ValueError, TypeError):
        # A non-finite float (to_plain writes null), or a value only to_plain knows how
        # to write: the slow path, so every writer says what the final results say.
        line = json.dumps(to_plain(test), allow_nan=False)
    if kept is not None and _kept_room >= len(line):
        kept[id(test)] = line
        _kept_results.append(test)  # alive while kept: its id stays its own
        _kept_room -= len(line)
    return line


def rest_members(record: RunRecord) -> list[str]:
    """Every member of the record but the schema version and the tests, in field order."""
    skip = ("schema_version", "tests")
    return [member(f.name, getattr(record, f.name)) for f in fields(record) if f.name not in skip]


def results_chunks(record: RunRecord) -> Iterator[str]:
    """The complete record, one test at a time: as :meth:`RunRecord.to_json` lays it
    out (same members, same order, same indentation), but with a test a line."""
    for index, item in enumerate(fields(record)):
        yield "{\n " if index == 0 else ",\n "
        if item.name != "tests":
            yield member(item.name, getattr(record, item.name))
            continue
        yield '"tests": ['
        for number, test in enumerate(record.tests):
            yield ("\n" if number == 0 else ",\n") + encode_test(test)
        yield "\n ]"
    yield "\n}\n"


def appended_lines(tests: Sequence[TestResult], already: int) -> str:
    """The tests after ``already`` others, each with the separator before it."""
    return "".join(
        ("\n" if already + n == 0 else ",\n") + encode_test(test) for n, test in enumerate(tests)
    )
