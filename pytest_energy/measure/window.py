"""Energy windows: a reading at each edge, GPU work synchronised, flags from the meters.

A window never polls: it reads the meters once when it opens and once when it
closes (an NVML energy read costs 3-4 ms on an H100). Before each edge it
waits for queued CUDA work when a GPU meter is active, so the work launched
inside the window is billed to it and nothing from before leaks in: CUDA
kernels run asynchronously, and a test can return while its kernels are still
queued. The H100 probe showed it: "50 ms" windows that launched matmuls for
50 ms and then synchronised held ~0.9 s of GPU work and ~630 J
(docs/measurements/h100-nvml-probe.json, short_50ms_J).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from pytest_energy.meters import MeterSet, Reading
from pytest_energy.record import Measurement

#: A window shorter than this many counter periods cannot resolve +-5 %
#: (one tick of quantisation at each edge; measured on an H100: 0.3-s windows
#: were off by ~10 %, 1.9-s windows agreed within 2 %).
RESOLUTION_PERIODS = 10


def _no_sync() -> bool:
    return False


def gpu_synchronizer(meters: MeterSet) -> Callable[[], bool]:
    """The CUDA sync to run at window edges: only when a GPU is being metered."""
    if not any(domain.scope == "gpu-board" for domain in meters.domains):
        return _no_sync
    return synchronize_cuda


class EnergyWindow:
    """Open with :meth:`begin`, close with :meth:`end`; one measurement per window."""

    def __init__(self, meters: MeterSet, sync: Callable[[], bool] = _no_sync) -> None:
        self._meters = meters
        self._sync = sync
        self._start: Reading | None = None

    def begin(self) -> None:
        self._sync()
        self._start = self._meters.read()

    @property
    def is_open(self) -> bool:
        return self._start is not None

    def abandon(self) -> None:
        """Drop an open window without reading the meters (the measured code raised)."""
        self._start = None

    def end(self, extra_flags: tuple[str, ...] = ()) -> Measurement:
        if self._start is None:
            raise RuntimeError("EnergyWindow.end() called before begin()")
        self._sync()
        stop = self._meters.read()
        start, self._start = self._start, None
        return measurement_between(start, stop, self._meters, extra_flags)


#: The sorted flag lists measurements share, by their flags. A suite's tests have a
#: handful of combinations, and a list per test was one more object per test for the
#: garbage collector to walk for the rest of the session (issue 16). Records are
#: frozen and never mutate their lists.
_FLAG_LISTS: dict[frozenset[str], list[str]] = {}
_FLAG_LISTS_MAX = 256


def _flag_list(flags: frozenset[str]) -> list[str]:
    shared = _FLAG_LISTS.get(flags)
    if shared is None:
        shared = sorted(flags)
        if len(_FLAG_LISTS) < _FLAG_LISTS_MAX:
            _FLAG_LISTS[flags] = shared
    return shared


def measurement_between(
    start: Reading, stop: Reading, meters: MeterSet, extra_flags: tuple[str, ...] = ()
) -> Measurement:
    """The energy between two readings, with every flag that taints it."""
    seconds = max(stop.t - start.t, 0.0)
    before = start.joules
    joules = {name: value - before[name] for name, value in stop.joules.items()}
    flags = set(extra_flags)
    if start.notes or stop.notes:
        flags |= start.notes | stop.notes
    if stop.wraps > start.wraps:
        flags.add("wrapped")
    return Measurement(
        seconds=seconds,
        joules=joules,
        total_j=sum(joules.values()),
        method=meters.method,
        meters=meters.name_list,
        flags=window_flags(seconds, joules.values(), meters, flags),
    )


#: A reading of a single-domain meter without its :class:`Reading`: time and joules so far.
Edge = tuple[float, float]


class EdgeWindows:
    """Windows of the session's one single-domain meter as its two edges, each a
    (time, joules) pair: the same numbers as :func:`measurement_between` gives for the
    readings with these numbers, without the records around them (issue 16)."""

    def __init__(self, meters: MeterSet, domain: str) -> None:
        self._meters = meters
        self.domain = domain
        self._resolvable = RESOLUTION_PERIODS * meters.update_period_s
        #: The flags a window gets, by what they depend on: too short, joules above or
        #: at most zero (both False for NaN). A session sees two or three of them.
        self._flags: dict[tuple[bool, bool, bool], list[str]] = {}

    def numbers(self, start: Edge, stop: Edge) -> tuple[float, float, list[str]]:
        """Seconds, joules and flags between two edges."""
        seconds = max(stop[0] - start[0], 0.0)
        joules = stop[1] - start[1]
        key = (seconds < self._resolvable, joules > 0, joules <= 0)
        flags = self._flags.get(key)
        if flags is None:
            flags = self._flags[key] = window_flags(seconds, (joules,), self._meters, set())
        return seconds, joules, flags

    def measurement(self, start: Edge, stop: Edge) -> Measurement:
        """The window as a measurement, for what needs the record."""
        seconds, joules, flags = self.numbers(start, stop)
        return Measurement(
            seconds=seconds,
            joules={self.domain: joules},
            total_j=joules,
            method=self._meters.method,
            meters=self._meters.name_list,
            flags=flags,
        )


def window_flags(
    seconds: float, joules: Iterable[float], meters: MeterSet, flags: set[str]
) -> list[str]:
    """``flags`` and what the window's length and joules add, as the shared sorted list."""
    resolvable = RESOLUTION_PERIODS * meters.update_period_s
    if seconds < resolvable:
        flags.add("below_resolution")
    elif meters.method == "measured" and any(j <= 0 for j in joules):
        # A powered device always draws something; a counter that did not move
        # over many of its periods is stuck, and its zero is not a measurement.
        flags.add("counter_stalled")
    elif meters.method == "modelled" and not any(j > 0 for j in joules):
        # A model that priced nothing did not see the work (pure Python for the ops
        # meter): its 0 J is unknown energy, never free work.
        flags.add("uncounted")
    return _flag_list(frozenset(flags))


def synchronize_cuda() -> bool:
    """Synchronise every CUDA device this process uses, if torch already uses CUDA.

    Never imports torch and never initialises CUDA: a test that used no GPU
    pays one dictionary lookup. Returns whether it synchronised. An
    asynchronous CUDA error raised by the test's own kernels surfaces here, as
    it would at the test's next synchronisation.
    """
    torch: Any = sys.modules.get("torch")
    if torch is None:
        return False
    cuda: Any = getattr(torch, "cuda", None)
    # A partially imported torch (an import in progress or failed) has no cuda yet.
    if cuda is None or not cuda.is_initialized():
        return False
    # torch.cuda.synchronize(k) makes k current, which creates a CUDA context
    # (hundreds of MB) on a device the process never touched; skip those when
    # torch can tell us which devices have one.
    has_context: Any = getattr(getattr(torch, "_C", None), "_cuda_hasPrimaryContext", None)
    for device in range(cuda.device_count()):
        if has_context is not None and not has_context(device):
            continue
        cuda.synchronize(device)
    return True


def cuda_in_use() -> bool:
    """Whether this process has initialised CUDA through torch (never imports torch)."""
    torch: Any = sys.modules.get("torch")
    cuda: Any = getattr(torch, "cuda", None) if torch is not None else None
    return bool(cuda is not None and cuda.is_initialized())
