"""Energy meters: hardware counters (RAPL, NVML), the CPU-time model, and replay.

Meters know nothing of pytest: each is a cumulative counter behind the small
interface of :mod:`.base`. :mod:`.meter_set` opens the ones ``--energy-meter``
names and reads them together; the concrete meter modules are imported only
when asked for, so loading the plugin touches no hardware.
"""

from __future__ import annotations

from pytest_energy.meters.base import (
    DomainInfo,
    Meter,
    MeterError,
    MeterInfo,
    MeterPermissionError,
    MeterUnavailable,
    Method,
    Reading,
    counter_delta,
)
from pytest_energy.meters.meter_set import (
    MeterSet,
    MeterSpec,
    check_available,
    open_meters,
    parse_meter_spec,
)

__all__ = [
    "DomainInfo",
    "Meter",
    "MeterError",
    "MeterInfo",
    "MeterPermissionError",
    "MeterSet",
    "MeterSpec",
    "MeterUnavailable",
    "Method",
    "Reading",
    "check_available",
    "counter_delta",
    "open_meters",
    "parse_meter_spec",
]
