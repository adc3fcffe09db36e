"""The set of meters a session reads together, and how ``--energy-meter`` opens it.

``open_meters`` turns an ``--energy-meter`` specification into a
:class:`MeterSet`; the concrete meter modules are imported only when asked for,
so loading the plugin touches no hardware and imports no ``pynvml``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path

from pytest_energy.frozen import frozen
from pytest_energy.meters.base import (
    Meter,
    MeterInfo,
    MeterPermissionError,
    MeterUnavailable,
    Method,
    Reading,
    clock,
)

COUNTER_METERS = ("rapl", "nvml")
#: In a replay path, replaced by the index of the process that plays it.
PROCESS_FIELD = "{process}"
#: Meters that stand alone: modelled, so never added to measured joules or to each other.
MODEL_METERS = ("model", "ops")
METER_NAMES = ("auto", "rapl", "nvml", "model", "ops", "replay:PATH")


@frozen
class MeterSpec:
    """A parsed ``--energy-meter`` value."""

    names: tuple[str, ...]
    replay_path: Path | None = None

    def __str__(self) -> str:
        if self.replay_path is not None:
            return f"replay:{self.replay_path}"
        return ",".join(self.names)


def parse_meter_spec(text: str) -> MeterSpec:
    """Parse ``auto``, ``rapl``, ``nvml``, ``model``, ``ops``, ``rapl,nvml`` or ``replay:PATH``."""
    value = text.strip()
    if value.startswith("replay:"):
        path = value[len("replay:") :].strip()
        if not path:
            raise ValueError("replay needs a trace file: replay:PATH")
        return MeterSpec(("replay",), Path(path))
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    if not names:
        raise ValueError(f"expected one of {', '.join(METER_NAMES)}")
    for name in names:
        if name not in ("auto", *MODEL_METERS, *COUNTER_METERS):
            raise ValueError(f"unknown meter {name!r}; expected one of {', '.join(METER_NAMES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"meter listed twice in {value!r}")
    if len(names) > 1 and any(name in ("auto", *MODEL_METERS) for name in names):
        # Measured and modelled joules must never be added together.
        raise ValueError("only counters combine (rapl,nvml); 'auto', 'model' and 'ops' stand alone")
    return MeterSpec(names)


class MeterSet:
    """The active meters, read together at each window edge."""

    def __init__(self, meters: Sequence[Meter], notices: Sequence[str] = ()) -> None:
        if not meters:
            raise ValueError("a MeterSet needs at least one meter")
        methods = {m.info.method for m in meters}
        if len(methods) > 1:
            raise ValueError("cannot combine measured and modelled meters")
        names = [d.name for m in meters for d in m.info.domains]
        if len(set(names)) != len(names):
            raise ValueError(f"meters report overlapping domains: {names}")
        self.meters = tuple(meters)
        #: One-line messages for the user, e.g. why a counter was not used.
        self.notices = tuple(notices)
        self.method: Method = meters[0].info.method
        self.virtual_clock = any(m.info.virtual_clock for m in meters)
        #: The slowest counter decides how long a window must be to resolve.
        self.update_period_s = max(m.info.update_period_s for m in meters)
        self.domains = tuple(d for m in meters for d in m.info.domains)
        #: The same work always reads the same joules (the ops meter counts work): any
        #: window resolves, no session drifts, and one call per round is enough.
        self.deterministic = all(m.info.details.get("deterministic") is True for m in meters)

    @property
    def infos(self) -> tuple[MeterInfo, ...]:
        return tuple(m.info for m in self.meters)

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @cached_property
    def _names(self) -> tuple[str, ...]:
        # Read on every test's window: a meter's name never changes.
        return tuple(m.info.name for m in self.meters)

    @cached_property
    def name_list(self) -> list[str]:
        """The names as the one list every measurement of the session shares.

        A list per test was one more object per test for the garbage collector to
        walk for the rest of the session (issue 16); records never mutate it.
        """
        return list(self._names)

    def read(self) -> Reading:
        if len(self.meters) == 1:
            # The common case, on every test's window edges: nothing to merge, and the
            # meter's own time is of the same clock (NVML's the midpoint of its reads).
            return self.meters[0].read()
        readings = [m.read() for m in self.meters]
        joules: dict[str, float] = {}
        for reading in readings:
            joules.update(reading.joules)
        t = readings[0].t if self.virtual_clock else clock()
        return Reading(
            t=t,
            joules=joules,
            wraps=sum(r.wraps for r in readings),
            notes=frozenset().union(*(r.notes for r in readings)),
        )

    def close(self) -> None:
        for meter in self.meters:
            meter.close()


def _plainly_absent(name: str, rapl_root: Path) -> bool:
    """Whether ``auto`` may pass a counter by without importing its meter.

    The first check the meter's own ``open`` makes, made without its module
    (1-2 ms each to import and to tear down at exit, on the machines that have
    neither counter: VMs, most CI runners). Nothing it skips would have opened.
    """
    if name == "rapl":
        return not rapl_root.is_dir()
    from pytest_energy.meters.nvml_library import binding_would_fail

    return binding_would_fail() is not None


def _open_counter(name: str, rapl_root: Path) -> Meter:
    if name == "rapl":
        from pytest_energy.meters.rapl import RaplMeter

        return RaplMeter.open(rapl_root)
    from pytest_energy.meters.nvml import NvmlMeter

    return NvmlMeter.open()


def check_available(spec: MeterSpec, *, rapl_root: Path, model_watts: float) -> None:
    """Raise :class:`MeterUnavailable` when a meter ``spec`` names cannot be opened.

    For a process that reports but never measures (the pytest-xdist controller): it
    opens the meters once and closes them at once, so a missing counter is one error
    there, before any worker starts, instead of the same error in every worker.
    ``auto`` is always available: it falls back to the model.
    """
    if spec.names == ("auto",):
        return
    open_meters(spec, rapl_root=rapl_root, model_watts=model_watts).close()


def open_meters(
    spec: MeterSpec,
    *,
    rapl_root: Path,
    model_watts: float,
    process: int = 0,
    warn: Callable[[str], None] = lambda message: None,
) -> MeterSet:
    """Open the meters ``spec`` names.

    A meter named explicitly that cannot be opened raises
    :class:`MeterUnavailable` (a usage error for the caller). ``auto`` takes
    every counter that opens and falls back to the model, saying why. A replay
    path may hold ``{process}``: each process of a run (0 for the session, 1, 2,
    ... for the fresh processes the gate starts) then plays its own trace.
    """
    if spec.replay_path is not None:
        from pytest_energy.meters.replay import ReplayMeter

        path = Path(str(spec.replay_path).replace(PROCESS_FIELD, str(process)))
        return MeterSet([ReplayMeter.from_file(path)])
    if spec.names == ("model",):
        from pytest_energy.meters.model import ModelMeter

        return MeterSet([ModelMeter(model_watts)])
    if spec.names == ("ops",):
        # Imports torch: only when the ops meter is asked for.
        from pytest_energy.meters.ops import OpsMeter

        return MeterSet([OpsMeter()])
    if spec.names != ("auto",):
        return MeterSet([_open_counter(name, rapl_root) for name in spec.names])

    meters: list[Meter] = []
    notices: list[str] = []
    for name in COUNTER_METERS:
        if _plainly_absent(name, rapl_root):
            continue
        try:
            meters.append(_open_counter(name, rapl_root))
        except MeterPermissionError as exc:
            # Counters exist but are root-only: say how to fix it, every run.
            notices.append(f"{name}: {exc}")
            warn(f"{name} counters are not readable: {exc}")
        except MeterUnavailable:
            continue
    if meters:
        return MeterSet(meters, notices)
    from pytest_energy.meters.model import ModelMeter

    notices.append("no readable energy counter; energy is modelled from CPU time")
    return MeterSet([ModelMeter(model_watts)], notices)
