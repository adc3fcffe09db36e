"""``@frozen``: a frozen dataclass that costs one compiled function to define, not six.

Why not ``@dataclass(frozen=True)``: on CPython before 3.13 the dataclass decorator compiles
each generated method (``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``,
``__delattr__``) with its own ``exec``. The package defines about eighty frozen records, and
that compiling was two thirds of what ``pytest --energy`` added to a one-test run (about 40 ms
of 60 ms of imports, measured with ``benchmarks/overhead.py`` on this project's 2-core VM).
Here only ``__init__`` is compiled, and only for a class that makes more than a couple of
instances (the first ones bind their arguments in shared Python code); equality, hashing,
``repr`` and immutability are shared functions that read the class's field names. The
fields are real ``dataclasses.Field`` objects in ``__dataclass_fields__``, made the first
time it is read, so ``dataclasses.fields``, ``replace``, ``asdict`` and ``is_dataclass``
work as before; the package's own serializers read the names alone (``_frozen_names``).
They are collected here rather than by the standard decorator, which tests every string
annotation three times against ``ClassVar``, ``InitVar`` and ``KW_ONLY`` with a regular
expression and a module lookup: with ~400 fields that was 5-6 ms of a run's imports on a
2-vCPU VM, a tenth of what ``--energy`` costs a one-test run (issue 16); collected here into
a few tuples a class (:class:`_Layout`), 10-13 µs a class, ~0.6 ms for the ~50 a run loads.
Instances behave as a frozen dataclass's do: equal when of the same class with equal
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
    layout = _Layout(cls)
    record._frozen_layout = layout
    record._frozen_names = layout.names
    record.__dataclass_fields__ = _FieldsOnFirstUse(cls)
    record.__dataclass_params__ = _PARAMS
    if "__match_args__" not in cls.__dict__:
        type.__setattr__(cls, "__match_args__", layout.params)
    record.__init__ = _first_init
    # Class-level tuples: the shared methods below read them instead of compiled code.
    record._frozen_repr = layout.shown
    record._frozen_compare = layout.compared
    record._frozen_hash = layout.hashed
    record.__repr__ = _repr
    record.__eq__ = _eq
    record.__hash__ = _hash
    record.__setattr__ = _refuse_set
    record.__delattr__ = _refuse_delete
    return cls


class _Layout:
    """A record class's fields, kept as a few tuples rather than a ``Field`` each.

    Each annotation of the class is a field, after its bases' (a field of the same name
    replaces the base's, in place); its class attribute, if any, is its default or its
    ``field(...)``, and a ``field(...)`` is replaced on the class by its default (or
    removed when it has none), as the standard decorator does. The ``Field`` objects
    are made only when something asks for them (:class:`_FieldsOnFirstUse`): a one-test
    ``--energy`` run asks for a few classes' out of ~50, and the rest were ~400
    objects that every full garbage collection walked (issue 16).
    """

    __slots__ = (
        "annotations",
        "cls",
        "compared",
        "declared",
        "defaults",
        "factories",
        "hashed",
        "made",
        "names",
        "param_set",
        "params",
        "post_init",
        "shown",
    )

    def __init__(self, cls: type) -> None:
        self.cls = cls
        #: Per field, by name: its annotation; the ``field(...)`` it was declared with,
        #: if any; its default; its default factory (absent: none).
        self.annotations: dict[str, Any] = {}
        self.declared: dict[str, dataclasses.Field[Any]] = {}
        self.defaults: dict[str, Any] = {}
        self.factories: dict[str, Callable[[], Any]] = {}
        for base in cls.__mro__[-2:0:-1]:  # the bases, object left out, farthest first
            inherited = base.__dict__.get("_frozen_layout")
            if inherited is None and "__dataclass_fields__" in base.__dict__:
                inherited = _Layout.of_dataclass(base)
            if inherited is not None:
                self.annotations.update(inherited.annotations)
                self.declared.update(inherited.declared)
                self.defaults.update(inherited.defaults)
                self.factories.update(inherited.factories)
        self._add_own_fields(cls)
        declared = self.declared
        self.names = names = tuple(self.annotations)
        if declared:
            self.params = tuple(n for n in names if n not in declared or declared[n].init)
            self.shown = tuple(n for n in names if n not in declared or declared[n].repr)
            self.compared = tuple(n for n in names if n not in declared or declared[n].compare)
            self.hashed = tuple(n for n in names if _hashed(declared.get(n)))
        else:  # no field(...): every field is in __init__, repr, eq and the hash
            self.params = self.shown = self.compared = self.hashed = names
        self.param_set = frozenset(self.params)
        self.post_init = hasattr(cls, "__post_init__")
        self.made = 0

    def _add_own_fields(self, cls: type) -> None:
        """Add the fields ``cls`` annotates itself, after (or in place of) its bases'."""
        inheriting = bool(self.annotations)
        own = inspect.get_annotations(cls)
        missing = dataclasses.MISSING
        for name, annotation in own.items():
            text = annotation if isinstance(annotation, str) else repr(annotation)
            # Not fields for dataclasses, and refused here; by substring, so a type whose
            # name merely contains one is refused too (rename it, or use @dataclass).
            if "ClassVar" in text or "InitVar" in text or "KW_ONLY" in text:
                raise TypeError(f"@frozen does not support {name}: {text}; use @dataclass")
            self.annotations[name] = annotation
            if inheriting:  # a base's field of this name is replaced, in its place
                self.declared.pop(name, None)
                self.defaults.pop(name, None)
                self.factories.pop(name, None)
            value: Any = getattr(cls, name, missing)
            if isinstance(value, dataclasses.Field):
                self.declared[name] = value
                if value.default_factory is not missing:
                    self.factories[name] = value.default_factory
                value = value.default
                if value is missing:
                    delattr(cls, name)
                else:
                    setattr(cls, name, value)
            if value is not missing:
                if value.__class__.__hash__ is None:
                    raise ValueError(
                        f"mutable default {type(value)} for field {name} is not allowed: "
                        "use default_factory"
                    )
                self.defaults[name] = value
        for name, value in cls.__dict__.items():
            if isinstance(value, dataclasses.Field) and name not in own:
                raise TypeError(f"{name!r} is a field but has no type annotation")

    @staticmethod
    def of_dataclass(base: type) -> _Layout:
        """The layout of a standard dataclass base, from its fields."""
        layout = _Layout.__new__(_Layout)
        fields = dataclasses.fields(base)
        layout.annotations = {f.name: f.type for f in fields}
        layout.declared = {f.name: f for f in fields}
        layout.defaults = {
            f.name: f.default for f in fields if f.default is not dataclasses.MISSING
        }
        layout.factories = {
            f.name: f.default_factory
            for f in fields
            if f.default_factory is not dataclasses.MISSING
        }
        return layout

    def init(self, name: str) -> bool:
        spec = self.declared.get(name)
        return spec is None or spec.init

    def fields(self) -> dict[str, dataclasses.Field[Any]]:
        """The fields as ``dataclasses`` describes them, made now."""
        fields: dict[str, dataclasses.Field[Any]] = {}
        for name, annotation in self.annotations.items():
            spec: Any = self.declared.get(name)  # a Field; field() is typed as its default
            if spec is None:
                spec = dataclasses.field(default=self.defaults.get(name, dataclasses.MISSING))
            spec.name = name
            spec.type = annotation
            spec._field_type = _FIELD_KIND
            if getattr(spec, "kw_only", False) is dataclasses.MISSING:
                spec.kw_only = False
            fields[name] = spec
        return fields


def _hashed(spec: dataclasses.Field[Any] | None) -> bool:
    if spec is None:
        return True
    return bool(spec.compare if spec.hash is None else spec.hash)


class _FieldsOnFirstUse:
    """``__dataclass_fields__`` until something reads it: then the fields, made once
    and put on the class in its place (``dataclasses.fields``, ``replace``,
    ``is_dataclass`` and ``asdict`` all read it through ``getattr``)."""

    __slots__ = ("cls",)

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        cls = self.cls
        fields = cls.__dict__["_frozen_layout"].fields()
        type.__setattr__(cls, "__dataclass_fields__", fields)
        return fields


#: Instances a class makes through the interpreted ``__init__`` before it compiles its own.
#: Compiling costs ~20 µs a field (0.15-0.35 ms a record), and of the ~26 record classes a
#: one-test ``--energy`` run makes, most make a few instances a session (the run record,
#: its session, machine and totals, the four carbon datasets): compiled, they were ~4 ms
#: of what ``--energy`` costs a process (issue 16). Binding in Python costs ~4 µs more an
#: instance (Measurement: 5.7 µs against 1.7 µs), so compiling pays from ~40 instances;
#: the per-test records pass this count within the first tests.
COMPILE_AFTER = 16


def _first_init(self: Any, *args: Any, **kwargs: Any) -> None:
    """Every record class's ``__init__`` for its first instances: binds the arguments
    itself, as Python would, then after :data:`COMPILE_AFTER` instances compiles the
    class's own ``__init__``, puts it on the class and calls it. One function for all
    classes, reading the class's layout: a closure each was ~10 objects a class."""
    layout: _Layout = self._frozen_layout
    if layout.made >= COMPILE_AFTER:
        compiled = _init(layout)
        type.__setattr__(layout.cls, "__init__", compiled)
        compiled(self, *args, **kwargs)
        return
    layout.made += 1
    params = layout.params
    if len(args) > len(params):
        raise TypeError(
            f"{_where(layout)} takes {len(params) + 1} positional arguments "
            f"but {len(args) + 1} were given"
        )
    given = dict(zip(params, args, strict=False))  # fewer args than params is fine
    for name, value in kwargs.items():
        if name not in layout.param_set:
            raise TypeError(f"{_where(layout)} got an unexpected keyword argument {name!r}")
        if name in given:
            raise TypeError(f"{_where(layout)} got multiple values for argument {name!r}")
        given[name] = value
    defaults, factories = layout.defaults, layout.factories
    missing = [n for n in params if n not in given and n not in defaults and n not in factories]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        raise TypeError(f"{_where(layout)} missing {len(missing)} required argument(s): {listed}")
    for name in layout.names:
        if name in given:
            value = given[name]
        elif name in factories:
            value = factories[name]()
        elif name in defaults:
            value = defaults[name]
        else:
            continue  # init=False without a default: never set, as with dataclasses
        object.__setattr__(self, name, value)
    if layout.post_init:
        self.__post_init__()


def _where(layout: _Layout) -> str:
    return f"{layout.cls.__qualname__}.__init__()"


def _init(layout: _Layout) -> Callable[..., None]:
    """Compile ``__init__`` once: the per-instance path is as fast as dataclass's own."""
    scope: dict[str, Any] = {"_bind": object.__setattr__.__get__, "_MISSING": dataclasses.MISSING}
    params: list[str] = []
    body: list[str] = []
    for index, name in enumerate(layout.names):
        if name in layout.factories:
            scope[f"_factory_{index}"] = layout.factories[name]
            if layout.init(name):
                params.append(f"{name}=_MISSING")
                body.append(f"_set({name!r}, _factory_{index}() if {name} is _MISSING else {name})")
            else:
                body.append(f"_set({name!r}, _factory_{index}())")
            continue
        if name in layout.defaults:
            scope[f"_default_{index}"] = layout.defaults[name]
            if layout.init(name):
                params.append(f"{name}=_default_{index}")
                body.append(f"_set({name!r}, {name})")
            else:
                body.append(f"_set({name!r}, _default_{index})")
        elif layout.init(name):
            params.append(name)
            body.append(f"_set({name!r}, {name})")
    if layout.post_init:
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
    init.__qualname__ = f"{layout.cls.__qualname__}.__init__"
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
