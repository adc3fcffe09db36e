"""Record dataclasses to and from plain JSON data, with every field's type checked.

:func:`to_plain` writes any frozen dataclass of :mod:`pytest_energy.record` as
plain JSON data; :func:`from_plain` reads it back, checking each field's type
against the annotations, so a results file of the wrong shape is one
:class:`ResultsError` line, not a traceback somewhere in a report.

Files anyone can write (results, baselines, a pull request's hint, a server's
answer) are parsed with :func:`parse_json`: strict JSON, nested at most
:data:`MAX_DEPTH` levels, numbers a float can hold. :func:`read_results_data`
reads a results file with it.
"""

from __future__ import annotations

import functools
import json
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

T = TypeVar("T")

#: The deepest nesting an untrusted JSON file may have. A results file nests 7 levels
#: (``tests[i].benchmark.rounds[j].joules``), a benchmark's metadata at most 16 more
#: (``measure.benchmark.METADATA_DEPTH``). Python's parser recurses once per level and
#: fails near 1,000 with a RecursionError, which a crafted file could otherwise
#: trigger anywhere, and so does anything that walks the data afterwards.
MAX_DEPTH = 64
#: Digits an integer may have: any more cannot be a float (1.8e308) and would make
#: ``float(n)`` raise; Python refuses to parse more than 4,300 digits at all.
MAX_DIGITS = 300

# Strings, compiled by re's cache on the first parse: a run that reads no JSON does
# not pay for compiling them (issue 16).
# A JSON string (quotes and escapes included) as one unrolled, linear-time match.
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_NOT_BRACKET = r"[^\[\]{}]+"
_EMPTY_PAIR = r"\[\]|\{\}"
#: Longest key or value quoted back in an error message.
_SHOWN_CHARS = 60


class ResultsError(ValueError):
    """A results file that cannot be used; the message is one line."""


class JSONInputError(ValueError):
    """Untrusted text that is not usable JSON.

    ``problem`` completes a sentence about the file (``"is not valid JSON"``,
    ``"is nested deeper than 64 levels"``); ``detail`` is the parser's message,
    if any; ``truncated`` says the text ends before the JSON does.
    """

    def __init__(self, problem: str, detail: str = "", *, truncated: bool = False) -> None:
        super().__init__(f"{problem} ({detail})" if detail else problem)
        self.problem = problem
        self.detail = detail
        self.truncated = truncated


def parse_json(text: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Strict JSON from an untrusted source; raises :class:`JSONInputError`.

    The nesting depth is checked before parsing (brackets outside strings), so a
    crafted file is refused before the parser could recurse; ``NaN``,
    ``Infinity``, numbers beyond a float and integers over :data:`MAX_DIGITS`
    digits are refused too, so every number read is finite.
    """
    if nesting_depth(text, stop_after=max_depth) > max_depth:
        raise JSONInputError(f"is nested deeper than {max_depth} levels")
    try:
        return json.loads(
            text, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_bounded_int
        )
    except JSONInputError:
        raise
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        raise JSONInputError("is not valid JSON", str(exc), truncated=truncated) from None
    except (RecursionError, ValueError) as exc:  # mismatched brackets the depth check skipped
        raise JSONInputError("is not valid JSON", " ".join(str(exc).split())) from None


def nesting_depth(text: str, *, stop_after: int | None = None) -> int:
    """The deepest nesting of arrays and objects in JSON ``text``, strings skipped.

    Each pass removes the innermost ``[]`` and ``{}`` pairs of the brackets left
    once strings are gone, at C speed and in memory the size of the text; counting
    stops after ``stop_after`` levels. Mismatched brackets stop the count early:
    the parser then says what is wrong.
    """
    brackets = re.sub(_NOT_BRACKET, "", re.sub(_STRING, "", text))
    depth = 0
    while brackets and (stop_after is None or depth <= stop_after):
        inner = re.sub(_EMPTY_PAIR, "", brackets)
        if inner == brackets:
            break
        brackets, depth = inner, depth + 1
    return depth


def _no_constant(token: str) -> Any:
    raise JSONInputError("is not valid JSON", f"{token} is not allowed; strict JSON writes null")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise JSONInputError(f"holds the number {_shown(token)}, too large for a float")
    return value


def _bounded_int(token: str) -> int:
    if len(token.lstrip("-")) > MAX_DIGITS:
        raise JSONInputError(f"holds an integer of {len(token)} digits, too large to use")
    return int(token)


def read_results_data(path: Path) -> dict[str, Any]:
    """The JSON object of the results file at ``path``; every problem is a ResultsError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"results file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"cannot read results file {path}: {exc}") from None
    try:
        data = parse_json(text)
    except JSONInputError as exc:
        raise ResultsError(f"results file {path} {exc}") from None
    if not isinstance(data, dict):
        raise ResultsError(f"results file {path} must hold a JSON object")
    return data


def to_plain(value: Any) -> Any:
    """A dataclass (or nested structure) as plain JSON data; non-finite floats become None.

    One pass, no deep copies (unlike ``dataclasses.asdict``): results of big suites
    are converted on every checkpoint and into the history.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    # A @frozen record's field names, without making its Field objects (frozen.py).
    names = getattr(value, "_frozen_names", None) or getattr(value, "__dataclass_fields__", None)
    if names is not None and not isinstance(value, type):
        return {name: to_plain(getattr(value, name)) for name in names}
    return value


def from_plain(cls: type[T], data: Any) -> T:
    """Rebuild a record dataclass from :func:`to_plain` output, checking every type.

    Unknown keys are ignored (files of newer patch releases stay readable); a
    missing required field or a value of the wrong type is a :class:`ResultsError`
    that names the field.
    """
    try:
        built: T = _convert(cls, data, cls.__name__)
    except RecursionError:
        raise ResultsError("malformed results: nested too deeply") from None
    return built


@functools.cache
def _hints(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name, type, required) for every field of a record dataclass."""
    hints = typing.get_type_hints(cls)
    return tuple(
        (f.name, hints[f.name], f.default is MISSING and f.default_factory is MISSING)
        for f in fields(cls)
    )


def _convert(annotation: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        (inner,) = [a for a in options if a is not type(None)]
        return _convert(inner, value, where)
    if origin is Literal:
        if value not in typing.get_args(annotation):
            allowed = ", ".join(repr(a) for a in typing.get_args(annotation))
            raise ResultsError(
                f"malformed results: {where} is {_shown(value)}, expected one of {allowed}"
            )
        return value
    if origin is list:
        (item,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise _wrong(where, "a list", value)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(annotation)
        if not isinstance(value, dict):
            raise _wrong(where, "an object", value)
        return {str(k): _convert(item, v, f"{where}.{_key(k)}") for k, v in value.items()}
    if isinstance(annotation, type) and is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise _wrong(where, "an object", value)
        kwargs: dict[str, Any] = {}
        for name, hint, required in _hints(annotation):
            if name in value:
                kwargs[name] = _convert(hint, value[name], f"{where}.{name}")
                _check_positive(annotation, name, kwargs[name], where)
            elif required:
                raise ResultsError(f"malformed results: {where} has no {name!r}")
        return annotation(**kwargs)
    return _scalar(annotation, value, where)


def _scalar(annotation: Any, value: Any, where: str) -> Any:
    if annotation is float:
        if value is None:
            return math.nan  # a non-finite float is written as null (strict JSON)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong(where, "a number", value)
        try:
            return float(value)
        except OverflowError:  # an integer beyond any float
            raise _wrong(where, "a number a float can hold", value) from None
    if annotation is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)  # 0.1 wrote some counts as 7.0
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(where, "a whole number", value)
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise _wrong(where, "true or false", value)
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise _wrong(where, "a string", value)
        return value
    raise TypeError(f"record field {where} has an unsupported type {annotation!r}")


#: Fields the package divides by or compares with zero: a value that is not a
#: positive number cannot have been written by pytest-energy, and would stop the
#: gate with a traceback (``units_per_call`` weighs a test in the suite total).
_POSITIVE = {("Benchmark", "units_per_call"), ("Gating", "threshold")}


def _check_positive(cls: type, name: str, value: Any, where: str) -> None:
    if (cls.__name__, name) not in _POSITIVE or value is None:
        return
    if not (math.isfinite(value) and value > 0):
        shown = "null" if math.isnan(value) else _shown(value)
        raise ResultsError(f"malformed results: {where}.{name} must be above 0, got {shown}")


def _key(key: Any) -> str:
    """A key of a JSON object inside an error's path, cut short."""
    text = str(key)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _shown(value: Any) -> str:
    """A value for an error message, cut short: a whole object would swamp the line."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _wrong(where: str, expected: str, value: Any) -> ResultsError:
    shown = _shown(value) if isinstance(value, int | float | bool) or value is None else None
    got = shown or type(value).__name__
    return ResultsError(f"malformed results: {where} must be {expected}, got {got}")
