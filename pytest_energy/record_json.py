"""Record dataclasses to and from plain JSON data, with every field's type checked.

:func:`to_plain` writes any frozen dataclass of :mod:`pytest_energy.record` as
plain JSON data; :func:`from_plain` reads it back, checking each field's type
against the annotations, so a results file of the wrong shape is one
:class:`ResultsError` line, not a traceback somewhere in a report.
"""

from __future__ import annotations

import functools
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, Literal, TypeVar

T = TypeVar("T")


class ResultsError(ValueError):
    """A results file that cannot be used; the message is one line."""


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
    names = getattr(value, "__dataclass_fields__", None)
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
                f"malformed results: {where} is {value!r}, expected one of {allowed}"
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
        return {str(k): _convert(item, v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(annotation, type) and is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise _wrong(where, "an object", value)
        kwargs: dict[str, Any] = {}
        for name, hint, required in _hints(annotation):
            if name in value:
                kwargs[name] = _convert(hint, value[name], f"{where}.{name}")
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
        return float(value)
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


def _wrong(where: str, expected: str, value: Any) -> ResultsError:
    shown = repr(value) if isinstance(value, int | float | bool) or value is None else None
    got = shown or type(value).__name__
    return ResultsError(f"malformed results: {where} must be {expected}, got {got}")
