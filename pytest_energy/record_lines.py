"""A run record as the results file lays it out, a test a line.

:func:`results_chunks` yields the record piece by piece in the order and indentation
of :meth:`RunRecord.to_json <pytest_energy.record.RunRecord.to_json>`, except that each
test is one line, encoded with the C encoder. The results file and its checkpoints
(:mod:`pytest_energy.measure.checkpoint`) and the history's compressed copy of the run
(:mod:`pytest_energy.storage.history_schema`) are written from these pieces, never from
one string of the whole run (issue 16: at 20,000 tests the whole-record paths cost more
time and memory than the measuring itself). Once the results file holds the session's
tests, the history's copy reads their lines from it (:func:`offer_written`).
"""

from __future__ import annotations

import json
import keyword
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from typing import Any

from pytest_energy.record import RunRecord, TestResult, to_plain

__all__ = [
    "WrittenTests",
    "appended_lines",
    "encode_test",
    "member",
    "offer_written",
    "rest_members",
    "results_chunks",
    "withdraw_written",
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
    cls = type(value)
    fields_dict = _FIELD_DICTS.get(cls)
    if fields_dict is None:
        # A @frozen record's field names, without making its Field objects (frozen.py).
        names = getattr(cls, "_frozen_names", None) or getattr(value, "__dataclass_fields__", None)
        if names is None or isinstance(value, type):
            raise TypeError(f"Object of type {cls.__name__} is not JSON serializable")
        fields_dict = _FIELD_DICTS[cls] = _compile_fields_dict(cls.__name__, tuple(names))
    return fields_dict(value)


#: A function per record class that returns its fields as a dict, compiled on the class's
#: first line: one dict display of attribute reads, 0.35 µs a record against 0.8 µs for a
#: comprehension over ``getattr`` (three records a test; issue 16).
_FIELD_DICTS: dict[type, Callable[[Any], dict[str, object]]] = {}


def _compile_fields_dict(
    class_name: str, names: tuple[str, ...]
) -> Callable[[Any], dict[str, object]]:
    if not all(name.isidentifier() and not keyword.iskeyword(name) for name in names):
        return lambda value: {name: getattr(value, name) for name in names}  # made by hand
    body = ", ".join(f"{name!r}: value.{name}" for name in names)
    source = f"def fields_dict(value):\n    return {{{body}}}\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<fields of {class_name}>", "exec"), namespace)
    return namespace["fields_dict"]  # type: ignore[no-any-return]


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


#: Where this session's tests are already written out, a test a line: a function that
#: gives the text of a list of tests as the results file holds it, read back in pieces,
#: or None when the file does not hold these very tests any more
#: (:meth:`Checkpoint.tests_text <pytest_energy.measure.checkpoint.Checkpoint.tests_text>`).
#: The history's copy of the run reads the tests from there instead of encoding every
#: test again (12 µs a test, and no encoded line kept in memory; issue 16).
WrittenTests = Callable[[Sequence[TestResult]], Iterator[str] | None]
_written: WrittenTests | None = None


def offer_written(source: WrittenTests) -> None:
    """From now on, :func:`results_chunks` takes the tests' text from ``source`` when it can."""
    global _written
    _written = source


def withdraw_written() -> None:
    global _written
    _written = None


def encode_test(test: TestResult) -> str:
    """One test on one line, as :func:`to_plain` and ``json.dumps`` would write it."""
    try:
        return _encode_line(test)
    except (ValueError, TypeError):
        # A non-finite float (to_plain writes null), or a value only to_plain knows how
        # to write: the slow path, so every writer says what the final results say.
        return json.dumps(to_plain(test), allow_nan=False)


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
        written = _written(record.tests) if _written is not None else None
        if written is not None:
            yield from written
        else:
            for number, test in enumerate(record.tests):
                yield ("\n" if number == 0 else ",\n") + encode_test(test)
        yield "\n ]"
    yield "\n}\n"


def appended_lines(
    tests: Sequence[Any], already: int, encode: Callable[[Any], str] = encode_test
) -> str:
    """The tests after ``already`` others, each with the separator before it."""
    return "".join(
        ("\n" if already + n == 0 else ",\n") + encode(test) for n, test in enumerate(tests)
    )
