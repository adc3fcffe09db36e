"""Replay traces for tests: recorded counters the plugin plays back deterministically.

The plugin reads the meter at every window edge, in order, so a trace of
``edges`` readings scripts exactly what each test, round or idle bracket sees.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def trace(
    energies: Sequence[float | str],
    *,
    times: Sequence[float] | None = None,
    period: float = 0.1,
    meter: str = "nvml",
    domain: str = "gpu:0",
    scope: str = "gpu-board",
    range_j: float | None = None,
    method: str = "measured",
    cycle: bool = False,
    notes: dict[int, list[str]] | None = None,
    open_error: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A one-domain trace. A string in ``energies`` is an error reading with that message.

    ``times`` defaults to one second between readings.
    """
    stamps = list(times) if times is not None else [float(i) for i in range(len(energies))]
    readings: list[dict[str, Any]] = []
    for index, (t, value) in enumerate(zip(stamps, energies, strict=True)):
        if isinstance(value, str):
            readings.append({"t": t, "error": value})
            continue
        reading: dict[str, Any] = {"t": t, "counters": {domain: value}}
        if notes and index in notes:
            reading["notes"] = notes[index]
        readings.append(reading)
    document: dict[str, Any] = {
        "pytest_energy_trace": 1,
        "meter": meter,
        "method": method,
        "update_period_s": period,
        "resolution_j": 0.001,
        "domains": {domain: {"scope": scope, "range_j": range_j}},
        "cycle": cycle,
        "readings": readings,
    }
    if open_error is not None:
        document["open_error"] = open_error
    return document


def windows(*joules_and_seconds: tuple[float, float], start: float = 1000.0) -> dict[str, Any]:
    """A trace whose consecutive windows (begin, end) have the given (J, s)."""
    energies: list[float] = []
    times: list[float] = []
    counter, clock = start, 0.0
    for joules, seconds in joules_and_seconds:
        energies.append(counter)
        times.append(clock)
        counter += joules
        clock += seconds
        energies.append(counter)
        times.append(clock)
        clock += 0.5  # time between windows
    return trace(energies, times=times)


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def benchmark_rounds(
    round_joules: Sequence[float], *, method: str = "measured", period: float = 0.01
) -> dict[str, Any]:
    """A trace for one test whose benchmark runs ``len(round_joules)`` rounds.

    Readings: the test's own window opens, each round opens and closes, the
    test's window closes. Between rounds the counter idles (no energy).
    """
    return script("edge", *round_joules, "edge", method=method, period=period)


def script(
    *steps: float | str, method: str = "measured", period: float = 0.01, meter: str = "nvml"
) -> dict[str, Any]:
    """Readings in the order the plugin takes them: a number is a window (a begin and an
    end reading, that many joules over 1 s apart); ``"edge"`` is a single reading (a test's
    own window opening or closing, an idle bracket's edge). ``meter="rapl"`` records a CPU
    package counter instead of a GPU board's (the drift check then runs a CPU workload)."""
    energies: list[float] = []
    times: list[float] = []
    counter, clock = 0.0, 0.0
    for step in steps:
        clock += 0.1
        energies.append(counter)
        times.append(clock)
        if step == "edge":
            continue
        counter += float(step)
        clock += 1.0
        energies.append(counter)
        times.append(clock)
    if method != "measured":
        meter, domain, scope = "model", "cpu", "process-cpu"
    elif meter == "rapl":
        domain, scope = "package-0", "cpu-package"
    else:
        domain, scope = "gpu:0", "gpu-board"
    return trace(
        energies, times=times, method=method, period=period, meter=meter, domain=domain, scope=scope
    )


def cycle_rounds(round_joules: Sequence[float], *, period: float = 0.01) -> dict[str, Any]:
    """A trace that never runs out: any window opened at an odd-numbered reading (which
    pedantic benchmark rounds are, after their test's opening edge) reads the next of
    ``round_joules``, over and over; gaps between windows read 0 J."""
    energies, times = [0.0], [0.0]
    for joules in round_joules:
        energies += [energies[-1], energies[-1] + joules]
        times += [times[-1] + 0.1, times[-1] + 1.1]
    return trace(energies, times=times, period=period, cycle=True)
