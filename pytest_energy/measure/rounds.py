"""Benchmark rounds: running one, the interleaving order, and summarizing them.

A test body is usually far shorter than what a counter resolves (NVML ticks
every ~100 ms), so a benchmark repeats its function: enough calls per round that
each round's window spans at least 20 counter periods (:mod:`.sizing`), each
round its own energy window.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pytest_energy.measure.calibration import calibration_work
from pytest_energy.measure.recorder import SessionRecorder
from pytest_energy.measure.repeat import call_times
from pytest_energy.measure.window import RESOLUTION_PERIODS
from pytest_energy.meters import MeterError
from pytest_energy.record import Benchmark, Round, RoundRole
from pytest_energy.stats import summarize

if TYPE_CHECKING:
    from pytest_energy.meters.base import Reading

#: Work and calibration alternate in chunks of about this long when normalizing. Each
#: chunk's edges cost the work ~10 µs (the closing read, and the work's first calls after
#: the calibration loop has evicted its caches): ~0.6 % of its time with 2-ms chunks, ~0.1 %
#: with 10-ms ones (``benchmarks/fixture_overhead.py``: +1.56 % against +0.50 % and +1.23 %
#: at 10 µs a call), while the normalized spread was the same from 2 to 20 ms
#: (``benchmarks/README.md``).
CHUNK_S = 0.01
#: Calibration time per unit of work time in a normalized round. Matching the work
#: one for one doubles a round's length; half as much measured slightly worse in
#: benchmarks/model_gate_check.py (8/10 regressions caught against 9-10/10).
CALIBRATION_SHARE = 1.0

Side = Literal["reference", "candidate"]


def interleaved_order(pair: int) -> tuple[Side, Side]:
    """Which side runs first in pair ``pair``: A B, B A, A B, ...

    Alternating cancels a linear drift within each two pairs and gives neither
    side a fixed first-round advantage (warm caches, a cooler GPU).

    >>> [interleaved_order(k) for k in range(3)]
    [('reference', 'candidate'), ('candidate', 'reference'), ('reference', 'candidate')]
    """
    return ("reference", "candidate") if pair % 2 == 0 else ("candidate", "reference")


def jitter(period_s: float, seed: str, gpu: bool) -> Callable[[], None]:
    """A random pause before GPU rounds, so rounds do not phase-lock to NVML's ~100 ms
    sensor cycle (on A100/H100 only ~25 % of runtime is sampled; Yang et al., SC24)."""
    if not gpu:
        return lambda: None
    rng = random.Random(seed)
    return lambda: time.sleep(rng.uniform(0.0, period_s))


class RoundRunner:
    """Runs rounds of one benchmark through the session's meters."""

    def __init__(self, recorder: SessionRecorder, chunk_calls: int) -> None:
        self._recorder = recorder
        self._chunk_calls = chunk_calls

    def round(self, call: Callable[[], object], calls: int, role: RoundRole) -> Round | None:
        """One round of ``calls`` calls, or None when the meter failed (the session says why)."""
        if self._recorder.normalizing:
            return self._normalized(call, calls, role)
        window = self._recorder.open_window()
        if window is None:
            return None
        try:
            call_times(call, calls)
        except BaseException:
            window.abandon()
            raise
        measurement = self._recorder.close_window(window)
        if measurement is None:
            return None
        return Round(
            calls=calls,
            seconds=measurement.seconds,
            joules=dict(measurement.joules),
            total_j=measurement.total_j,
            role=role,
            flags=list(measurement.flags),
            process=self._recorder.settings.replica,
        )

    def _normalized(self, call: Callable[[], object], calls: int, role: RoundRole) -> Round | None:
        """A round whose calls alternate, chunk by chunk, with the calibration workload.

        On a shared VM the CPU time of the same work jumps by half within seconds
        (an SMT neighbour gets busy, the clock changes); measured here, alternating
        ~2-ms chunks of work and of a fixed calibration loop brought the CV of their
        ratio from 21 % to 0.7 %. The round keeps the work's joules and records the
        calibration's joules per call next to them.

        Between a chunk's opening and closing readings runs nothing but its calls:
        the readings are kept and summed after the round, so no bookkeeping is billed
        to the work; what is left of a chunk's edge is the closing read and the cold
        start after the calibration loop (see :data:`CHUNK_S`).
        """
        recorder = self._recorder
        meters = recorder.meters
        if meters is None or recorder.failure is not None:
            return None
        read = meters.read
        chunk = max(1, min(calls, self._chunk_calls))
        # readings[0] opens the first chunk; then, per chunk, its closing reading
        # (which opens the calibration) and the calibration's closing reading
        # (which opens the next chunk).
        readings: list[Reading] = []
        calibration_calls = done = 0
        try:
            opened = read()
            readings.append(opened)
            while done < calls:
                count = min(chunk, calls - done)
                call_times(call, count)
                closed = read()
                readings.append(closed)
                matching = recorder.calibration_calls((closed.t - opened.t) * CALIBRATION_SHARE)
                calibration_calls += matching
                for _ in itertools.repeat(None, matching):
                    calibration_work()
                opened = read()
                readings.append(opened)
                done += count
        except MeterError as exc:
            recorder.fail(str(exc))
            return None
        work = dict.fromkeys([d.name for d in meters.domains], 0.0)
        calibration_j = seconds = 0.0
        for index in range(0, len(readings) - 1, 2):
            start, middle, end = readings[index : index + 3]
            for name in work:
                work[name] += middle.joules[name] - start.joules[name]
            calibration_j += sum(end.joules.values()) - sum(middle.joules.values())
            seconds += middle.t - start.t
        flags = ["concurrent"] if recorder.concurrent else []
        if seconds < RESOLUTION_PERIODS * meters.update_period_s:
            flags.append("below_resolution")
        return Round(
            calls=calls,
            seconds=seconds,
            joules=work,
            total_j=sum(work.values()),
            role=role,
            flags=flags,
            calibration_j=calibration_j / calibration_calls if calibration_calls else None,
            process=self._recorder.settings.replica,
        )


def paired_value(one: Round, units: float) -> float:
    """What a round contributes to a paired ratio: J per unit, normalized when it can be."""
    normalized = one.normalized(units)
    return normalized if normalized is not None else one.per_unit(units)


def summarize_rounds(
    rounds: Sequence[Round],
    *,
    calls: int,
    units: float,
    unit: str,
    target_s: float,
    cv_limit: float,
    pedantic: bool,
    warmup: int,
    metadata: Mapping[str, Any],
) -> Benchmark:
    """The benchmark record: per-call and per-unit statistics of its own rounds."""
    own = [r for r in rounds if r.role != "reference"]
    per_call = [r.total_j / r.calls for r in own]
    normalized_values = [
        v for r in own if r.role == "candidate" and (v := r.normalized(units)) is not None
    ]
    normalized = summarize(normalized_values) if normalized_values else None
    summary_call = summarize(per_call)
    # Stability is judged on what the gate compares: the normalized ratio when there is one.
    spread = normalized if normalized is not None else summary_call
    return Benchmark(
        unit=unit,
        units_per_call=units,
        calls_per_round=calls,
        warmup_calls=warmup,
        target_window_s=target_s,
        rounds=list(rounds),
        per_call=summary_call,
        per_unit=summarize([j / units for j in per_call]),
        unstable=spread.n > 1 and spread.cv > cv_limit,
        normalized=normalized,
        confirmation_rounds=sum(r.role == "confirm" for r in own),
        pedantic=pedantic,
        flags=benchmark_flags(own),
        metadata=dict(metadata),
    )


def benchmark_flags(rounds: Sequence[Round]) -> list[str]:
    """Flags of a benchmark: any round's taint, but "below resolution" only when the
    typical (median) round is, since one short round among five does not blind the meter."""
    flags = {f for r in rounds for f in r.flags if f != "below_resolution"}
    short = sum("below_resolution" in r.flags for r in rounds)
    if rounds and short * 2 > len(rounds):
        flags.add("below_resolution")
    return sorted(flags)
