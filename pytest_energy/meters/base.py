"""The one small interface every energy meter implements.

A meter is a cumulative counter: :meth:`Meter.read` returns, per domain, the
joules accumulated since the meter was opened (wrap-around already undone),
with the time of the reading. A window is the difference of two readings, so
meters never integrate power and never need to know about tests.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import field
from typing import Literal, Protocol, runtime_checkable

from pytest_energy.frozen import frozen

Method = Literal["measured", "modelled"]

#: What a domain's joules cover. Kept as plain strings so results files stay
#: readable: "cpu-package" (RAPL package, summed over sockets), "dram",
#: "gpu-board" (NVML, whole board incl. memory), "process-cpu" (the model).
Scope = str


class MeterError(Exception):
    """A meter failed while reading (a GPU that disappeared, an exhausted trace).

    The message is one line meant for the user.
    """


class MeterUnavailable(Exception):
    """A meter cannot be opened on this machine; the message says why in one line."""


class MeterPermissionError(MeterUnavailable):
    """The counters exist but this user may not read them; the message names the fixes."""


@frozen
class DomainInfo:
    """One energy domain a meter reports, for example ``package`` or ``gpu:0``."""

    name: str
    scope: Scope
    #: Counter range in joules before it wraps, when the hardware has one.
    range_j: float | None = None


@frozen
class MeterInfo:
    """What a meter is, how fine it resolves and how it obtains its numbers."""

    name: str
    method: Method
    #: How often the underlying counter advances, in seconds.
    update_period_s: float
    #: Smallest energy step the counter can show, in joules.
    resolution_j: float
    domains: tuple[DomainInfo, ...]
    #: Free-form facts for the machine fingerprint (GPU models, driver, CPU power figure).
    details: Mapping[str, object] = field(default_factory=dict)
    #: A one-line description for the report header.
    summary: str = ""
    #: True when reading times come from a recording rather than the live clock
    #: (the replay meter); the plugin then never sleeps to wait for the meter.
    virtual_clock: bool = False


@frozen
class Reading:
    """A snapshot of a meter: cumulative joules per domain at time ``t``."""

    t: float
    joules: Mapping[str, float]
    #: How many counter wrap-arounds the meter has undone so far.
    wraps: int = 0
    #: Conditions seen at this reading that taint a window containing it,
    #: for example ``gpu_shared`` when a foreign process was using the GPU.
    notes: frozenset[str] = frozenset()


@runtime_checkable
class Meter(Protocol):
    """Every meter: a name, facts about itself, cumulative readings, and a close."""

    @property
    def info(self) -> MeterInfo: ...

    def read(self) -> Reading:
        """Return cumulative joules per domain; raise :class:`MeterError` on failure."""
        ...

    def close(self) -> None: ...


#: Monotonic clock shared by the live meters, so readings of several meters
#: taken together are comparable.
clock = time.perf_counter


def counter_delta(previous: float, current: float, range_j: float | None) -> tuple[float, bool]:
    """Energy between two raw counter values, and whether the counter wrapped.

    A counter with a range wraps to zero when it passes ``range_j``; the modular
    difference is right as long as it wrapped at most once between the two
    values, which callers guarantee by reading often enough.
    """
    if current >= previous:
        return current - previous, False
    if range_j is None or range_j <= 0:
        # A decrease with no known range is a reset (driver reload), not a wrap:
        # refuse to invent energy.
        raise MeterError(
            f"energy counter went backwards ({previous:.6g} J -> {current:.6g} J) and its "
            "range is unknown; the counter was probably reset"
        )
    return current + range_j - previous, True
