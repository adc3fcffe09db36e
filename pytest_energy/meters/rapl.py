"""The Linux RAPL meter, read straight from the kernel's powercap sysfs tree.

RAPL (Running Average Power Limit) exposes per-socket energy counters that the
kernel publishes as powercap zones::

    /sys/class/powercap/intel-rapl:0/          name = package-0
    /sys/class/powercap/intel-rapl:0/intel-rapl:0:0   (also flat: intel-rapl:0:0)
    /sys/class/powercap/intel-rapl-mmio:0/     the same package-0, another interface

We read them ourselves rather than through pyRAPL, which has had no release
since 2019 and returns negative energy when a counter wraps.

What is counted, and why:

* ``package``: the sum of every ``package-N`` zone (``package-N-die-M`` on
  multi-die parts), so a two-socket machine reports both sockets.
* ``dram``: the sum of the ``dram`` zones, reported separately, when present.
* ``core``, ``uncore`` and ``psys`` are never added to anything: core and uncore
  are parts of the package and psys contains it, so adding them counts the same
  joules twice or three times.

The counters are 32 bits wide and wrap at ``max_energy_range_uj`` (every few
minutes on large AMD parts at full power). :func:`counter_delta` undoes one
wrap between two reads; a watchdog thread reads every counter often enough
that two wraps cannot happen between reads, so long windows stay right.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_energy.meters.base import (
    DomainInfo,
    MeterError,
    MeterInfo,
    MeterPermissionError,
    MeterUnavailable,
    Reading,
    clock,
    counter_delta,
)
from pytest_energy.meters.rapl_zones import PACKAGE_RE, Zone, classify_zone, discover_zones

DEFAULT_ROOT = Path("/sys/class/powercap")

#: A conservative ceiling on the power of one zone. The watchdog reads each
#: counter at least every range / (2 * P_MAX_W) seconds, so even at this power
#: a counter advances by at most half its range between reads and the modular
#: difference is unambiguous. (Zeus polls every 1 s, assuming at most 1000 W:
#: ml-energy/zeus, zeus/device/cpu/rapl.py, RAPL_COUNTER_MAX_INCREASE.)
P_MAX_W = 1000.0
#: Bounds on the watchdog interval. Intel's 262,143 J range gives 131 s at
#: 1000 W, so the cap decides there; AMD's 65,532 J range gives 33 s.
WATCHDOG_MAX_S = 60.0
WATCHDOG_MIN_S = 0.05

#: Intel SDM Vol. 3B, section 14.9: MSR_PKG_ENERGY_STATUS "is updated every ~1msec".
UPDATE_PERIOD_S = 0.001
#: Energy status unit 2^-14 J (61.04 uJ), typical of Intel packages; used when
#: the counter range is unknown. Otherwise it is derived from the range: the
#: counter is 32 bits wide, so range ~ 2^32 x unit (15.26 uJ on AMD).
DEFAULT_RESOLUTION_J = 61.04e-6
_COUNTER_STATES = 2**32

#: The same domain can appear through several interfaces; like CodeCarbon
#: (mlco2/codecarbon, codecarbon/core/cpu.py, _deduplicate_domains) we prefer
#: the newer MMIO/TPMI interface over the MSR one.
_INTERFACE_RANK = {"intel-rapl": 0, "intel-rapl-mmio": 1, "intel-rapl-tpmi": 2}

_DOMAIN_SCOPES = {"package": "cpu-package", "dram": "dram"}


def _read_counter(source: int | str) -> int:
    """Read one decimal counter in microjoules, from an open fd or a path.

    Every read of ``energy_uj`` and ``max_energy_range_uj`` goes through this
    function, on purpose: it is the seam tests monkeypatch to raise
    ``PermissionError`` (a non-root user on a kernel with the 2020 fix) or
    ``OSError(ENODEV)`` (a zone removed while its file is open). The test
    suite runs as root, where chmod cannot produce EACCES, and a file deleted
    from a fabricated tree stays readable through an open fd.
    """
    if isinstance(source, int):
        raw = os.pread(source, 32, 0)
    else:
        with open(source, "rb") as file:
            raw = file.read(32)
    return int(raw)


def _permission_message(root: Path, path: Path) -> str:
    # Kernel commit 949dd0104c49 "powercap: restrict energy meter to root
    # access" (Nov 2020, CVE-2020-8694, PLATYPUS), backported to stable
    # kernels, made energy_uj mode 0400.
    return (
        f"cannot read {path}: RAPL energy counters are root-only since the CVE-2020-8694 fix; "
        "run the energy job as root, or grant read access at boot with a udev rule on "
        f'SUBSYSTEM=="powercap" that runs chmod a+r (or chgrp + chmod g+r) on '
        f"{root}/intel-rapl*/energy_uj and max_energy_range_uj (see the README)"
    )


@dataclass
class _Counter:
    """An open, counted zone and its accumulated energy."""

    label: str
    domain: str
    zone: Zone
    relpath: str
    fd: int
    range_j: float | None
    last_j: float
    total_j: float = 0.0


def _relpath(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _read_range_j(path: Path) -> float | None:
    """The counter range in joules, or None when it is unreadable or 0."""
    try:
        range_uj = _read_counter(str(path / "max_energy_range_uj"))
    except (OSError, ValueError):
        return None
    return range_uj / 1e6 if range_uj > 0 else None


class _Unreadable(Exception):
    def __init__(self, message: str, permission: bool) -> None:
        super().__init__(message)
        self.permission = permission


def _open_counter(zone: Zone, domain: str, label: str, root: Path) -> _Counter:
    energy = zone.path / "energy_uj"
    relpath = _relpath(zone.path, root)
    try:
        # The probe by path is where a non-root user meets EACCES: sysfs
        # checks permissions at open.
        _read_counter(str(energy))
        range_j = _read_range_j(zone.path)
        # Kept open for cheap preads; Python opens it close-on-exec (PEP 446).
        fd = os.open(energy, os.O_RDONLY)
    except PermissionError:
        raise _Unreadable(_permission_message(root, energy), permission=True) from None
    except (OSError, ValueError) as exc:
        raise _Unreadable(f"cannot read RAPL counter {energy}: {exc}", permission=False) from None
    try:
        first_j = _read_counter(fd) / 1e6
    except PermissionError:
        os.close(fd)
        raise _Unreadable(_permission_message(root, energy), permission=True) from None
    except (OSError, ValueError) as exc:
        os.close(fd)
        raise _Unreadable(f"cannot read RAPL counter {energy}: {exc}", permission=False) from None
    return _Counter(label, domain, zone, f"{relpath}/energy_uj", fd, range_j, first_j)


def _close_all(counters: list[_Counter]) -> None:
    for counter in counters:
        with contextlib.suppress(OSError):
            os.close(counter.fd)


def _open_groups(
    groups: Mapping[tuple[str, str], list[Zone]], root: Path
) -> tuple[list[_Counter], dict[str, str], str | None]:
    """Open one counter per (domain, label), preferring MMIO/TPMI over MSR.

    Returns the counters, the duplicate zones left unread, and why DRAM was
    dropped (None when it was not). An interface that cannot be read falls
    back to the next one for the same domain.
    """
    counters: list[_Counter] = []
    shadowed: dict[str, str] = {}
    dram_problem: str | None = None
    try:
        for (domain, label), zones in sorted(groups.items()):
            candidates = sorted(
                zones, key=lambda z: (-_INTERFACE_RANK.get(z.interface, 1), z.zone_id)
            )
            problems: list[_Unreadable] = []
            chosen: _Counter | None = None
            for zone in candidates:
                if chosen is not None:
                    shadowed[zone.zone_id] = f"{label} (read through {chosen.zone.zone_id})"
                    continue
                try:
                    chosen = _open_counter(zone, domain, label, root)
                except _Unreadable as exc:
                    problems.append(exc)
            if chosen is not None:
                counters.append(chosen)
                continue
            problem = next((p for p in problems if p.permission), problems[0])
            if domain == "package":
                # A sum over sockets with one socket missing would under-read
                # silently, so an unreadable package zone fails the meter.
                if problem.permission:
                    raise MeterPermissionError(str(problem))
                raise MeterUnavailable(str(problem))
            dram_problem = str(problem)
    except BaseException:
        _close_all(counters)
        raise
    if dram_problem is not None:
        # Package energy is still right; a partial DRAM sum would not be.
        _close_all([c for c in counters if c.domain == "dram"])
        counters = [c for c in counters if c.domain != "dram"]
    return counters, shadowed, dram_problem


def _count_sockets(counters: list[_Counter]) -> int:
    """Distinct N of the package-N[-die-M] zones counted."""
    return len(
        {
            match.group(1)
            for c in counters
            if c.domain == "package" and (match := PACKAGE_RE.match(c.zone.name))
        }
    )


def watchdog_interval(ranges_j: list[float | None], p_max_w: float = P_MAX_W) -> float:
    """Seconds between watchdog reads: no counter can advance half its range.

    ``min(range / (2 * p_max_w))`` over counters with a known range, kept
    within [WATCHDOG_MIN_S, WATCHDOG_MAX_S]; the cap when no range is known.
    """
    known = [r / (2.0 * p_max_w) for r in ranges_j if r is not None]
    interval = min(known, default=WATCHDOG_MAX_S)
    return max(WATCHDOG_MIN_S, min(WATCHDOG_MAX_S, interval))


class RaplMeter:
    """Cumulative CPU package (and DRAM) joules from the powercap RAPL zones.

    Open with :meth:`open`; :meth:`read` returns joules since open with wraps
    undone; :meth:`close` stops the watchdog thread and closes the files.
    """

    def __init__(
        self,
        root: Path,
        counters: list[_Counter],
        details: Mapping[str, object],
        *,
        p_max_w: float = P_MAX_W,
        watchdog: bool = True,
    ) -> None:
        self._root = root
        self._counters = counters
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wraps = 0
        self._failure: MeterError | None = None
        self._closed = False
        self._polls = 0
        self._interval = watchdog_interval([c.range_j for c in counters], p_max_w)
        present = {c.domain for c in counters}
        self._domains: tuple[str, ...] = tuple(d for d in ("package", "dram") if d in present)
        self._info = self._make_info(details, p_max_w)
        self._thread: threading.Thread | None = None
        if watchdog:
            self._thread = threading.Thread(
                target=self._watch, name="pytest-energy-rapl-watchdog", daemon=True
            )
            self._thread.start()

    @classmethod
    def open(
        cls,
        root: Path = DEFAULT_ROOT,
        *,
        p_max_w: float = P_MAX_W,
        watchdog: bool = True,
    ) -> RaplMeter:
        """Find the RAPL zones under ``root``, open their counters and start the watchdog.

        Raises :class:`MeterUnavailable` when there are no RAPL zones or no
        readable package zone, and :class:`MeterPermissionError` when the
        zones exist but this user may not read them. ``watchdog=False`` leaves
        the thread out (tests then call :meth:`poll` themselves).
        """
        root = Path(root)
        if not root.is_dir():
            raise MeterUnavailable(
                f"no RAPL powercap zones under {root} (it does not exist; "
                "VMs and hosted CI runners expose none)"
            )
        zones = discover_zones(root)
        if not zones:
            raise MeterUnavailable(f"no RAPL powercap zones under {root}")

        groups: dict[tuple[str, str], list[Zone]] = {}
        ignored: dict[str, str] = {}
        for zone in zones.values():
            domain, label = classify_zone(zone, zones)
            if domain is None:
                ignored.setdefault(label, _relpath(zone.path, root))
            else:
                groups.setdefault((domain, label), []).append(zone)
        if not any(domain == "package" for domain, _ in groups):
            found = ", ".join(sorted(ignored)) or "none"
            raise MeterUnavailable(f"no RAPL package zone under {root} (zones found: {found})")

        counters, shadowed, dram_problem = _open_groups(groups, root)
        details: dict[str, object] = {
            "root": str(root),
            "zones": {
                c.label: {"path": c.relpath, "interface": c.zone.interface, "domain": c.domain}
                for c in counters
            },
            "sockets": _count_sockets(counters),
            "package_zones": sum(c.domain == "package" for c in counters),
            "ignored_zones": dict(sorted(ignored.items())),
            "shadowed_zones": dict(sorted(shadowed.items())),
            "range_unknown": sorted(c.label for c in counters if c.range_j is None),
        }
        if dram_problem is not None:
            details["dram_unavailable"] = dram_problem
        return cls(root, counters, details, p_max_w=p_max_w, watchdog=watchdog)

    def _make_info(self, details: Mapping[str, object], p_max_w: float) -> MeterInfo:
        sockets = _count_sockets(self._counters)
        package_zones = sum(c.domain == "package" for c in self._counters)
        domains = []
        for domain in self._domains:
            ranges = [c.range_j for c in self._counters if c.domain == domain]
            # The tightest range of the zones summed; None if any is unknown.
            known = [r for r in ranges if r is not None]
            range_j = min(known) if known and len(known) == len(ranges) else None
            domains.append(DomainInfo(domain, _DOMAIN_SCOPES[domain], range_j))
        units = [c.range_j / _COUNTER_STATES for c in self._counters if c.range_j is not None]
        # Four significant digits: the range is only ~2^32 units (kernel rounding).
        resolution = float(f"{max(units, default=DEFAULT_RESOLUTION_J):.4g}")
        text = f"package x{sockets} socket{'s' if sockets != 1 else ''}"
        if package_zones > sockets:
            text += f" ({package_zones} dies)"
        if "dram" in self._domains:
            text += ", dram"
        return MeterInfo(
            name="rapl",
            method="measured",
            update_period_s=UPDATE_PERIOD_S,
            resolution_j=resolution,
            domains=tuple(domains),
            details={
                **details,
                "watchdog_interval_s": self._interval,
                "p_max_w": p_max_w,
            },
            summary=f"rapl (measured: {text})",
        )

    @property
    def info(self) -> MeterInfo:
        return self._info

    @property
    def watchdog_interval_s(self) -> float:
        """Seconds between the watchdog's reads of every counter."""
        return self._interval

    @property
    def watchdog_alive(self) -> bool:
        """True while the watchdog thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def polls(self) -> int:
        """How many watchdog polls have completed (thread or :meth:`poll`)."""
        return self._polls

    def _sample(self) -> None:
        """Read every counter and add the energy since the last read. Hold the lock."""
        if self._closed:
            raise MeterError("the RAPL meter is closed")
        if self._failure is not None:
            raise MeterError(str(self._failure))
        updates: list[tuple[_Counter, float, float, bool]] = []
        try:
            for counter in self._counters:
                try:
                    value_j = _read_counter(counter.fd) / 1e6
                except (OSError, ValueError) as exc:
                    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                    raise MeterError(
                        f"cannot read RAPL counter {counter.relpath} under {self._root} "
                        f"({reason}); the zone disappeared or the driver was reloaded"
                    ) from None
                try:
                    delta, wrapped = counter_delta(counter.last_j, value_j, counter.range_j)
                except MeterError as exc:
                    raise MeterError(f"RAPL {counter.label} ({counter.relpath}): {exc}") from None
                updates.append((counter, value_j, delta, wrapped))
        except MeterError as exc:
            # Totals are no longer trustworthy after a reset or a lost zone:
            # every later read fails the same way.
            self._failure = exc
            raise
        # Commit only when every counter was read, so totals stay consistent.
        for counter, value_j, delta, wrapped in updates:
            counter.last_j = value_j
            counter.total_j += delta
            self._wraps += wrapped

    def poll(self) -> None:
        """One watchdog step: read every counter so no wrap goes unseen.

        The thread calls this every :attr:`watchdog_interval_s`; tests call it
        directly to play the watchdog deterministically.
        """
        with self._lock:
            self._sample()
            self._polls += 1

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.poll()
            except MeterError:
                # Kept in self._failure; the next read() raises it.
                return
            except Exception as exc:  # never let the thread die silently
                with self._lock:
                    self._failure = MeterError(f"RAPL watchdog failed: {exc!r}")
                return

    def read(self) -> Reading:
        """Cumulative joules per domain since open, with wrap-arounds undone."""
        with self._lock:
            self._sample()
            t = clock()
            joules = {
                domain: sum((c.total_j for c in self._counters if c.domain == domain), 0.0)
                for domain in self._domains
            }
            return Reading(t=t, joules=joules, wraps=self._wraps)

    def close(self) -> None:
        """Stop the watchdog thread and close the counter files; idempotent."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        with self._lock:
            if not self._closed:
                self._closed = True
                _close_all(self._counters)
