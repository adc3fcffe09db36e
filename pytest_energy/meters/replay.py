"""The replay meter: plays back a recorded trace, one reading per read.

It drives every path of the plugin deterministically (wrap-around, a stuck
counter, a permission error, a GPU that disappears) without hardware.

Trace format (JSON, documented in the README)::

    {
      "pytest_energy_trace": 1,
      "meter": "nvml",                  # name shown in results
      "method": "measured",             # or "modelled"
      "update_period_s": 0.1,           # how often the recorded counter advanced
      "resolution_j": 0.001,            # optional
      "domains": {"gpu:0": {"scope": "gpu-board", "range_j": null}},
      "open_error": null,               # or {"kind": "permission"|"unavailable", "message": "..."}
      "cycle": false,                   # true: after the last reading, repeat the increments
      "readings": [
        {"t": 0.0, "counters": {"gpu:0": 1000.0}},
        {"t": 2.0, "counters": {"gpu:0": 1150.0}, "notes": ["gpu_shared"]},
        {"t": 4.0, "error": "GPU is lost (NVML_ERROR_GPU_IS_LOST)"}
      ]
    }

Counters are raw values in joules; with ``range_j`` they wrap like hardware
counters and the meter undoes the wrap. The plugin reads the meter only at
window edges, in order, so reading ``k`` of the trace is the ``k``-th edge.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_energy.frozen import frozen
from pytest_energy.meters.base import (
    DomainInfo,
    MeterError,
    MeterInfo,
    MeterPermissionError,
    MeterUnavailable,
    Reading,
    counter_delta,
)

TRACE_VERSION = 1
_SCOPES = {"cpu-package", "dram", "gpu-board", "process-cpu"}


class TraceError(ValueError):
    """A trace file that cannot be used; the message is one line."""


@frozen
class _Sample:
    t: float
    counters: Mapping[str, float] | None
    notes: frozenset[str]
    error: str | None


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TraceError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _parse_domains(raw: object) -> tuple[DomainInfo, ...]:
    if not isinstance(raw, dict) or not raw:
        raise TraceError("'domains' must be a non-empty object of domain name -> {scope, range_j}")
    domains = []
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise TraceError(f"domain {name!r} must be an object")
        scope = spec.get("scope")
        if scope not in _SCOPES:
            raise TraceError(
                f"domain {name!r} has scope {scope!r}; expected one of {sorted(_SCOPES)}"
            )
        range_j = spec.get("range_j")
        if range_j is not None:
            range_j = _number(range_j, f"domain {name!r} range_j")
            if range_j <= 0:
                raise TraceError(f"domain {name!r} range_j must be positive")
        domains.append(DomainInfo(str(name), str(scope), range_j))
    return tuple(domains)


def _parse_samples(raw: object, domain_names: set[str]) -> list[_Sample]:
    if not isinstance(raw, list) or not raw:
        raise TraceError("'readings' must be a non-empty list")
    samples: list[_Sample] = []
    for index, item in enumerate(raw):
        where = f"reading {index}"
        if not isinstance(item, dict):
            raise TraceError(f"{where} must be an object")
        t = _number(item.get("t"), f"{where} t")
        if samples and t < samples[-1].t:
            raise TraceError(f"{where}: time goes backwards ({t} < {samples[-1].t})")
        notes = item.get("notes", [])
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise TraceError(f"{where}: 'notes' must be a list of strings")
        error = item.get("error")
        if error is not None:
            samples.append(_Sample(t, None, frozenset(notes), str(error)))
            continue
        counters = item.get("counters")
        if not isinstance(counters, dict) or set(counters) != domain_names:
            raise TraceError(
                f"{where}: 'counters' must give exactly the domains {sorted(domain_names)}"
            )
        values = {name: _number(v, f"{where} counter {name!r}") for name, v in counters.items()}
        samples.append(_Sample(t, values, frozenset(notes), None))
    return samples


class ReplayMeter:
    """Plays a recorded trace back: the k-th read returns the k-th reading."""

    def __init__(self, path: Path, document: Mapping[str, Any]) -> None:
        if document.get("pytest_energy_trace") != TRACE_VERSION:
            raise TraceError(
                f"not a pytest-energy trace of version {TRACE_VERSION} "
                "(missing or wrong 'pytest_energy_trace')"
            )
        method = document.get("method", "measured")
        if method not in ("measured", "modelled"):
            raise TraceError(f"'method' must be 'measured' or 'modelled', got {method!r}")
        period = _number(document.get("update_period_s"), "update_period_s")
        if period <= 0:
            raise TraceError("update_period_s must be positive")
        resolution = _number(document.get("resolution_j", 0.0), "resolution_j")
        domains = _parse_domains(document.get("domains"))
        self._ranges = {d.name: d.range_j for d in domains}
        self._samples = _parse_samples(document.get("readings"), set(self._ranges))
        self._cycle = bool(document.get("cycle", False))
        if self._cycle and any(s.error for s in self._samples):
            raise TraceError("a cycling trace cannot contain error readings")
        name = str(document.get("meter", "replay"))
        self._info = MeterInfo(
            name=name,
            method=method,
            update_period_s=period,
            resolution_j=resolution,
            domains=domains,
            details={"replay_trace": path.name},
            summary=f"{name} replayed from {path.name} ({method})",
            virtual_clock=True,
        )
        open_error = document.get("open_error")
        if open_error is not None:
            if not isinstance(open_error, dict):
                raise TraceError("'open_error' must be an object with 'kind' and 'message'")
            message = str(open_error.get("message", "meter unavailable"))
            if open_error.get("kind") == "permission":
                raise MeterPermissionError(message)
            raise MeterUnavailable(message)
        self._next = 0
        self._last_raw: dict[str, float] | None = None
        self._accumulated = dict.fromkeys(self._ranges, 0.0)
        self._wraps = 0

    @classmethod
    def from_file(cls, path: Path) -> ReplayMeter:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TraceError(f"trace file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TraceError(f"cannot read trace file {path}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise TraceError(f"trace file {path} is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise TraceError(f"trace file {path} must hold a JSON object")
        return cls(path, document)

    @property
    def info(self) -> MeterInfo:
        return self._info

    def _sample(self, index: int) -> _Sample:
        count = len(self._samples)
        if index < count:
            return self._samples[index]
        if not self._cycle:
            raise MeterError(
                f"replay trace {self._info.details['replay_trace']} is exhausted after "
                f"{count} readings"
            )
        # Repeat the recorded increments: after the last reading the trace goes
        # on with readings 1, 2, ... shifted by its own span in time and energy.
        if count < 2:
            raise MeterError("a cycling replay trace needs at least two readings")
        lap, offset = divmod(index - 1, count - 1)
        first, last = self._samples[0], self._samples[-1]
        base = self._samples[offset + 1]
        assert base.counters is not None and first.counters is not None
        assert last.counters is not None
        span_t = last.t - first.t
        counters = {}
        for name, value in base.counters.items():
            span_j = self._unwrapped_span(name)
            range_j = self._ranges[name]
            raw = value + lap * span_j
            counters[name] = raw % range_j if range_j else raw
        return _Sample(base.t + lap * span_t, counters, base.notes, None)

    def _unwrapped_span(self, name: str) -> float:
        total = 0.0
        for before, after in zip(self._samples, self._samples[1:], strict=False):
            assert before.counters is not None and after.counters is not None
            total += counter_delta(before.counters[name], after.counters[name], self._ranges[name])[
                0
            ]
        return total

    def read(self) -> Reading:
        sample = self._sample(self._next)
        self._next += 1
        if sample.error is not None:
            raise MeterError(sample.error)
        assert sample.counters is not None
        if self._last_raw is not None:
            for name, raw in sample.counters.items():
                delta, wrapped = counter_delta(self._last_raw[name], raw, self._ranges[name])
                self._accumulated[name] += delta
                self._wraps += wrapped
        self._last_raw = dict(sample.counters)
        return Reading(
            t=sample.t, joules=dict(self._accumulated), wraps=self._wraps, notes=sample.notes
        )

    def close(self) -> None:
        """Nothing to release."""
