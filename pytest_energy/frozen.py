"""``@frozen``: a frozen dataclass that costs one compiled function to define, not six.

Why not ``@dataclass(frozen=True)``: on CPython before 3.13 the dataclass decorator compiles
each generated method (``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``,
``__delattr__``) with its own ``exec``. The package defines about eighty frozen records, and
that compiling was two thirds of what ``pytest --energy`` added to a one-test run (about 40 ms
of 60 ms of imports, measured with ``benchmarks/overhead.py`` on this project's 2-core VM).
Here only ``__init__`` is compiled, and only for a class that makes more than a couple of
instances (the first ones bind their arguments in shared Python code); equality, hashing,
``repr`` and immutability are shared functions that read the class's field names. The
fields are real ``dataclasses.Field`` objects in ``__dataclass_fields__``, so
``dataclasses.fields``, ``replace``, ``asdict`` and ``is_dataclass`` work as before; they
are collected here rather than by the standard decorator, which tests every string
annotation three times against ``ClassVar``, ``InitVar`` and ``KW_ONLY`` with a regular
expression and a module lookup: with ~400 fields that was 5-6 ms of a run's imports on a
2-vCPU VM, a tenth of what ``--energy`` costs a one-test run (issue 16); collected here,
~2 ms. Instances behave as a frozen dataclass's do: equal when of the same class with equal
compared fields, hashable, and ``FrozenInstanceError`` on assignment.

Supported: defaults, ``field(default_factory=...)``, ``field(init=False, ...)``,
``compare``/``hash``/``repr`` flags, inheritance between ``@frozen`` classes, and
``__post_init__``. Not supported (the package does not use them): ``ClassVar``, ``InitVar``
and ``KW_ONLY`` annotations, and ``kw_only``: a class using one is refused when defined.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # the stub ships with type checkers; nothing is imported at run time
    from typing_extensions import dataclass_transform
elif sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # Python 3.10: the marker only informs type checkers

    def dataclass_transform(**_: Any) -> Callable[[Any], Any]:
        return lambda decorated: decorated


T = TypeVar("T")

#: The parameters ``dataclass(init=False, repr=False, eq=False)`` records, as before;
#: the methods they would leave out are the shared ones below. The template has a
#: docstring: without one the decorator writes one from ``inspect.signature(cls)``, and
#: the signature of a class without ``__init__`` parses ``object``'s text signature, 3-5 ms
#: on the 2-vCPU VM, the first time in a process (issue 16).
_PARAMS = dataclasses.dataclass(init=False, repr=False, eq=False)(
    type("_Template", (), {"__doc__": "The parameters' template."})
).__dataclass_params__  # type: ignore[attr-defined]
#: The mark of a real field, as ``dataclasses.fields`` tests it (Python 3.7 to 3.14).
_FIELD_KIND = dataclasses._FIELD  # type: ignore[attr-defined]


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def frozen(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen dataclass (see the module's docstring)."""
    record: Any = cls  # the methods are set on the class as a whole
    all_fields = _collect_fields(cls)
    record.__dataclass_fields__ = all_fields
    record.__dataclass_params__ = _PARAMS
    fields = tuple(all_fields.values())
    if "__match_args__" not in cls.__dict__:
        type.__setattr__(cls, "__match_args__", tuple(f.name for f in fields if f.init))
    record.__init__ = _compile_on_first_call(cls, fields)
    # Class-level tuples: the shared methods below read them instead of compiled code.
    record._frozen_repr = tuple(f.name for f in fields if f.repr)
    record._frozen_compare = tuple(f.name for f in fields if f.compare)
    record._frozen_hash = tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))
    record.__repr__ = _repr
    record.__eq__ = _eq
    record.__hash__ = _hash
    record.__setattr__ = _refuse_set
    record.__delattr__ = _refuse_delete
    return cls


def _collect_fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """The class's fields, its bases' first, as ``dataclasses`` collects them.

    Each annotation of the class is a field; its class attribute, if any, is its
    default or its ``field(...)``, and a ``field(...)`` is replaced on the class by its
    default (or removed when it has none), as the standard decorator does.
    """
    fields: dict[str, dataclasses.Field[Any]] = {}
    for base in reversed(cls.__mro__[1:]):
        inherited = base.__dict__.get("__dataclass_fields__")
        if inherited is not None:
            fields.update(inherited)
    annotations = inspect.get_annotations(cls)
    for name, annotation in annotations.items():
        text = annotation if isinstance(annotation, str) else repr(annotation)
        # Not fields for dataclasses, and refused here; by substring, so a type whose
        # name merely contains one is refused too (rename it, or use @dataclass).
        if "ClassVar" in text or "InitVar" in text or "KW_ONLY" in text:
            raise TypeError(f"@frozen does not support {name}: {text}; use @dataclass")
        declared: Any = getattr(cls, name, dataclasses.MISSING)
        if isinstance(declared, dataclasses.Field):
            spec = declared
            if spec.default is dataclasses.MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
        else:
            spec = dataclasses.field(default=declared)
        if spec.default is not dataclasses.MISSING and spec.default.__class__.__hash__ is None:
            raise ValueError(
                f"mutable default {type(spec.default)} for field {name} is not allowed: "
                "use default_factory"
            )
        spec.name = name
        spec.type = annotation
        spec._field_type = _FIELD_KIND  # type: ignore[attr-defined]
        if getattr(spec, "kw_only", False) is dataclasses.MISSING:
            spec.kw_only = False
        fields[name] = spec
    for name, value in cls.__dict__.items():
        if isinstance(value, dataclasses.Field) and name not in annotations:
            raise TypeError(f"{name!r} is a field but has no type annotation")
    return fields


#: Instances a class makes through the interpreted ``__init__`` before it compiles its own.
#: Compiling costs ~20 µs a field (0.15-0.35 ms a record), and of the ~26 record classes a
#: one-test ``--energy`` run makes, most make a few instances a session (the run record,
#: its session, machine and totals, the four carbon datasets): compiled, they were ~4 ms
#: of what ``--energy`` costs a process (issue 16). Binding in Python costs ~4 µs more an
#: instance (Measurement: 5.7 µs against 1.7 µs), so compiling pays from ~40 instances;
#: the per-test records pass this count within the first tests.
COMPILE_AFTER = 16


def _compile_on_first_call(
    cls: type, fields: tuple[dataclasses.Field[Any], ...]
) -> Callable[..., None]:
    """An ``__init__`` that binds its arguments itself for the first instances, then
    compiles the real one (:data:`COMPILE_AFTER`), puts it on ``cls`` and calls it."""
    interpreted = _interpreted_init(cls, fields)
    made = 0

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal made
        if made < COMPILE_AFTER:
            made += 1
            interpreted(self, args, kwargs)
            return
        compiled = _init(cls, fields)
        type.__setattr__(cls, "__init__", compiled)
        compiled(self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _interpreted_init(
    cls: type, fields: tuple[dataclasses.Field[Any], ...]
) -> Callable[[Any, tuple[Any, ...], dict[str, Any]], None]:
    """What the compiled ``__init__`` does, with the arguments bound here, as Python would."""
    where = f"{cls.__qualname__}.__init__()"
    params = [f for f in fields if f.init]
    names = {f.name for f in params}
    post_init = hasattr(cls, "__post_init__")

    def init(self: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if len(args) > len(params):
            raise TypeError(
                f"{where} takes {len(params) + 1} positional arguments "
                f"but {len(args) + 1} were given"
            )
        given = {f.name: value for f, value in zip(params, args, strict=False)}  # fewer args
        for name, value in kwargs.items():
            if name not in names:
                raise TypeError(f"{where} got an unexpected keyword argument {name!r}")
            if name in given:
                raise TypeError(f"{where} got multiple values for argument {name!r}")
            given[name] = value
        missing = [
            f.name
            for f in params
            if f.name not in given
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            listed = ", ".join(repr(name) for name in missing)
            raise TypeError(f"{where} missing {len(missing)} required argument(s): {listed}")
        for f in fields:
            if f.init and f.name in given:
                value = given[f.name]
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            elif f.default is not dataclasses.MISSING:
                value = f.default
            else:
                continue  # init=False without a default: never set, as with dataclasses
            object.__setattr__(self, f.name, value)
        if post_init:
            self.__post_init__()

    return init


def _init(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> Callable[..., None]:
    """Compile ``__init__`` once: the per-instance path is as fast as dataclass's own."""
    scope: dict[str, Any] = {"_bind": object.__setattr__.__get__, "_MISSING": dataclasses.MISSING}
    params: list[str] = []
    body: list[str] = []
    for index, f in enumerate(fields):
        has_factory = f.default_factory is not dataclasses.MISSING
        if has_factory:
            scope[f"_factory_{index}"] = f.default_factory
        if f.init:
            if has_factory:
                params.append(f"{f.name}=_MISSING")
                body.append(
                    f"_set({f.name!r}, _factory_{index}() if {f.name} is _MISSING else {f.name})"
                )
                continue
            if f.default is not dataclasses.MISSING:
                scope[f"_default_{index}"] = f.default
                params.append(f"{f.name}=_default_{index}")
            else:
                params.append(f.name)
            body.append(f"_set({f.name!r}, {f.name})")
        elif has_factory:
            body.append(f"_set({f.name!r}, _factory_{index}())")
        elif f.default is not dataclasses.MISSING:
            scope[f"_default_{index}"] = f.default
            body.append(f"_set({f.name!r}, _default_{index})")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    # object.__setattr__, as dataclasses does: storing into self.__dict__ is twice as
    # fast but materialises the dict, and a suite's records then take 40 % more memory.
    # Bound to the instance once: called unbound, each store sliced its arguments into
    # a tuple of their own first (~30 % of a 16-field record's __init__; issue 16).
    if body:
        body.insert(0, "_set = _bind(self)")
    source = f"def __init__(self, {', '.join(params)}):\n    " + "\n    ".join(body or ["pass"])
    exec(source, scope)  # compiled from field names, as dataclasses does
    init: Callable[..., None] = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _values(self: Any, names: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(getattr(self, name) for name in names)


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._frozen_repr)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    names = self._frozen_compare
    return _values(self, names) == _values(other, names)


def _hash(self: Any) -> int:
    return hash(_values(self, self._frozen_hash))


def _refuse_set(self: Any, name: str, value: Any) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _refuse_delete(self: Any, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
