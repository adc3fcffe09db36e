"""``@frozen`` behaves as ``@dataclass(frozen=True)`` does, for everything the package uses."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import field
from typing import ClassVar

import pytest

from pytest_energy import frozen as frozen_module
from pytest_energy.frozen import frozen


@frozen
class Window:
    """A record with every kind of field the package's records use."""

    name: str
    joules: float = 0.0
    tags: list[str] = field(default_factory=list)
    note: str = field(default="", compare=False)
    derived: int = field(init=False, default=7)


@frozen
class Checked:
    """A record that validates in ``__post_init__``."""

    value: float

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")


@frozen
class Base:
    """A base record."""

    a: int


@frozen
class Child(Base):
    """A record that adds a field to its base."""

    b: int = 2


@dataclasses.dataclass(frozen=True)
class Reference:
    """The standard library's frozen dataclass, to compare behaviour with."""

    name: str
    joules: float = 0.0
    tags: list[str] = field(default_factory=list)
    note: str = field(default="", compare=False)
    derived: int = field(init=False, default=7)


def test_construction_defaults_and_repr_match_a_frozen_dataclass() -> None:
    ours, theirs = Window("w", 2.0, note="n"), Reference("w", 2.0, note="n")
    assert repr(ours) == repr(theirs).replace("Reference", "Window")
    assert dataclasses.asdict(ours) == dataclasses.asdict(theirs)
    assert [f.name for f in dataclasses.fields(ours)] == [
        "name",
        "joules",
        "tags",
        "note",
        "derived",
    ]
    assert dataclasses.is_dataclass(ours)
    assert ours.derived == 7


def test_default_factory_gives_each_instance_its_own_value() -> None:
    first, second = Window("a"), Window("b")
    assert first.tags == []
    assert first.tags is not second.tags
    assert Window("c", tags=["x"]).tags == ["x"]


def test_equality_and_hash_follow_the_compared_fields() -> None:
    assert Window("w", 1.0, note="x") == Window("w", 1.0, note="y")
    assert Window("w", 1.0) != Window("w", 2.0)
    assert Base(1) != Child(1)  # a different class is never equal, as with dataclasses
    assert Base(1).__eq__(1) is NotImplemented
    assert hash(Base(3)) == hash(Base(3))
    assert len({Child(1, 2), Child(1, 2), Child(1, 3)}) == 2


def test_assignment_and_deletion_are_refused() -> None:
    record = Window("w")
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.joules = 3.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del record.name  # type: ignore[misc]
    assert record.joules == 0.0


def test_replace_copy_and_pickle_keep_the_values() -> None:
    record = Window("w", 1.5, ["t"], note="n")
    changed = dataclasses.replace(record, joules=2.5)
    assert (changed.name, changed.joules, changed.tags, changed.note) == ("w", 2.5, ["t"], "n")
    assert pickle.loads(pickle.dumps(record)) == record
    assert copy.deepcopy(record) == record
    with pytest.raises(ValueError, match="init=False"):
        dataclasses.replace(record, derived=1)


def test_post_init_runs_and_inheritance_keeps_base_fields() -> None:
    with pytest.raises(ValueError, match="negative"):
        Checked(-1.0)
    assert Checked(1.0).value == 1.0
    assert Child(1).a == 1
    assert Child(1).b == 2
    assert repr(Child(1, 3)) == "Child(a=1, b=3)"


def test_a_missing_argument_is_a_type_error_as_with_dataclasses() -> None:
    with pytest.raises(TypeError, match="name"):
        Window()  # type: ignore[call-arg]


def _fresh_window() -> type[Window]:
    """A class like Window that has made no instance yet (each class compiles its own
    ``__init__`` after :data:`~pytest_energy.frozen.COMPILE_AFTER` instances)."""

    @frozen
    class Fresh:
        name: str
        joules: float = 0.0
        tags: list[str] = field(default_factory=list)
        note: str = field(default="", compare=False)
        derived: int = field(init=False, default=7)

    return Fresh  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("w",), {}),
        (("w", 2.0), {"note": "n"}),
        ((), {"name": "w", "tags": ["t"]}),
        (("w", 1.0, ["a"], "n"), {}),
    ],
)
def test_the_first_instances_and_the_compiled_ones_are_built_alike(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    fresh = _fresh_window()
    first_init = fresh.__init__
    made = [fresh(*args, **kwargs) for _ in range(frozen_module.COMPILE_AFTER + 2)]
    assert fresh.__init__ is not first_init  # compiled along the way
    expected = Reference(*args, **kwargs)  # type: ignore[arg-type]
    for record in made:
        assert dataclasses.asdict(record) == dataclasses.asdict(expected)
        assert repr(record).replace(fresh.__qualname__, "Reference") == repr(expected)
    if len(args) < 3 and "tags" not in kwargs:
        assert made[0].tags is not made[1].tags  # a new list from the factory each time


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "missing 1 required"),
        (("w", 1.0, [], "n", 3), {}, "positional arguments but 6 were given"),
        (("w",), {"watts": 1.0}, "unexpected keyword argument 'watts'"),
        (("w",), {"name": "v"}, "multiple values for argument 'name'"),
        (("w",), {"derived": 1}, "unexpected keyword argument 'derived'"),
    ],
)
def test_bad_arguments_are_type_errors_before_and_after_compiling(
    args: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    fresh = _fresh_window()
    for _ in range(frozen_module.COMPILE_AFTER + 2):
        with pytest.raises(TypeError, match=message):
            fresh(*args, **kwargs)
        with pytest.raises(TypeError):
            Reference(*args, **kwargs)  # type: ignore[arg-type]
        fresh("ok")  # moves the class towards its compiled __init__


def test_post_init_runs_on_the_first_instances_too() -> None:
    @frozen
    class Positive:
        value: float

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")

    for _ in range(frozen_module.COMPILE_AFTER + 2):
        with pytest.raises(ValueError, match="negative"):
            Positive(-1.0)
        assert Positive(2.0).value == 2.0


def _described(cls: type) -> list[tuple[object, ...]]:
    return [
        (
            f.name,
            f.type,
            f.default,
            f.default_factory,
            f.init,
            f.repr,
            f.hash,
            f.compare,
            dict(f.metadata),
            f.kw_only,
        )
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
    ]


def test_the_fields_are_the_ones_dataclasses_collects() -> None:
    # @frozen collects the fields itself (issue 16): each must read as the standard
    # decorator's would, and the class attributes must be left as it leaves them.
    assert _described(Window) == _described(Reference)
    assert Window.__match_args__ == Reference.__match_args__  # type: ignore[attr-defined]
    assert Window.joules == Reference.joules == 0.0
    assert Window.note == Reference.note == ""
    assert "tags" not in vars(Window)
    assert "tags" not in vars(Reference)

    @dataclasses.dataclass(frozen=True)
    class StandardBase:
        a: int

    @dataclasses.dataclass(frozen=True)
    class StandardChild(StandardBase):
        b: int = 2

    assert _described(Child) == _described(StandardChild)


def test_what_frozen_does_not_support_is_refused_where_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match="does not support"):

        @frozen
        class WithClassVar:
            limit: ClassVar[int] = 3

    with pytest.raises(ValueError, match="mutable default"):

        @frozen
        class WithList:
            items: list[int] = []  # noqa: RUF012

    with pytest.raises(TypeError, match="no type annotation"):

        @frozen
        class Unannotated:
            value = field(default=1)


def test_fields_are_made_when_first_read_and_serializers_do_not_read_them() -> None:
    # ~400 Field objects that a run mostly never reads were walked by every full
    # garbage collection (issue 16): they are made on first use, once.
    from pytest_energy.record_json import to_plain
    from pytest_energy.record_lines import _fields_of

    @frozen
    class Lazy:
        a: int
        b: str = "x"

    record = Lazy(1)
    assert to_plain(record) == {"a": 1, "b": "x"}
    assert _fields_of(record) == {"a": 1, "b": "x"}
    assert not isinstance(vars(Lazy)["__dataclass_fields__"], dict)
    assert dataclasses.is_dataclass(record)
    first = dataclasses.fields(Lazy)  # type: ignore[arg-type]
    assert isinstance(vars(Lazy)["__dataclass_fields__"], dict)
    assert dataclasses.fields(Lazy) == first  # type: ignore[arg-type]
    assert [f.name for f in first] == ["a", "b"]
    assert dataclasses.replace(record, b="y") == Lazy(1, "y")


def test_a_standard_dataclass_base_and_a_field_redeclared_in_the_child() -> None:
    @dataclasses.dataclass(frozen=True)
    class StandardBase:
        a: int
        hidden: str = field(default="h", repr=False)

    @frozen
    class OnStandard(StandardBase):
        b: int = 2

    @dataclasses.dataclass(frozen=True)
    class StandardOnStandard(StandardBase):
        b: int = 2

    assert _described(OnStandard) == _described(StandardOnStandard)
    assert repr(OnStandard(1)).endswith(".OnStandard(a=1, b=2)")  # hidden: repr=False

    @frozen
    class Redeclared(Child):
        a: int = 5  # the base's field, now with a default: it keeps its place

    @dataclasses.dataclass(frozen=True)
    class StandardParent:
        a: int
        b: int = 2

    @dataclasses.dataclass(frozen=True)
    class StandardRedeclared(StandardParent):
        a: int = 5

    assert _described(Redeclared) == _described(StandardRedeclared)
    assert Redeclared() == Redeclared(5, 2)
    for _ in range(frozen_module.COMPILE_AFTER + 2):
        assert Redeclared(b=3) == Redeclared(5, 3)
