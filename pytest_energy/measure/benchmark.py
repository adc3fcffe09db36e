"""The ``energy_benchmark`` fixture: calibrated rounds, energy per unit of work, budgets.

A test body is usually far shorter than what a counter resolves (NVML ticks
every ~100 ms), so the fixture repeats the function: unbilled warm-up calls,
then enough calls per round that each round's window spans at least 20
counter periods (2 s with NVML, 0.2 s with RAPL or the model), then R rounds,
each its own energy window::

    def test_classify(energy_benchmark, model, batch):
        preds = energy_benchmark(model.predict, batch, units=len(batch), unit="sample")
        assert preds.shape[0] == len(batch)

Without ``--energy`` it calls the function once and measures nothing.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_energy.config.settings import SettingError, TestSettings
from pytest_energy.record import Benchmark, Measurement, Quality, Round

if TYPE_CHECKING:
    from pytest_energy.measure.families import FamilySpec, ReferenceRun
    from pytest_energy.measure.window import EnergyWindow
    from pytest_energy.plugin.hooks import EnergyRun

R = TypeVar("R")

#: At least this many counter periods per round window (see window.RESOLUTION_PERIODS
#: for what 10 buys; 20 keeps quantisation under ~1 % per round at steady power).
ROUND_PERIODS = 20
#: Rounds shorter than this are dominated by the cost of reading the meters.
MIN_ROUND_S = 0.1
MAX_CALLS_PER_ROUND = 10_000_000
#: Work and calibration alternate in chunks of about this long when normalizing.
CHUNK_S = 0.002
#: Calibration time per unit of work time in a normalized round. Matching the work
#: one for one doubles a round's length; half as much measured slightly worse in
#: benchmarks/model_gate_check.py (8/10 regressions caught against 9-10/10).
CALIBRATION_SHARE = 1.0
#: Benchmarks expected to take longer than this say so on an interactive terminal.
PROGRESS_AFTER_S = 3.0


def target_window(update_period_s: float, window: float | None) -> float:
    """How long one round should last for this meter."""
    if window is not None:
        return window
    return max(ROUND_PERIODS * update_period_s, MIN_ROUND_S)


def calls_for_window(per_call_s: float, target_s: float) -> int:
    """Calls per round so that a round lasts at least ``target_s``."""
    if per_call_s <= 0:
        return MAX_CALLS_PER_ROUND
    return max(1, min(MAX_CALLS_PER_ROUND, math.ceil(target_s / per_call_s)))


def time_per_call(call: Callable[[], object], target_s: float) -> float:
    """Wall time of one call, from doubling batches until a batch lasts a tenth of a round."""
    batch = 1
    while True:
        start = time.perf_counter()
        for _ in range(batch):
            call()
        elapsed = time.perf_counter() - start
        if elapsed >= target_s / 10 or batch >= MAX_CALLS_PER_ROUND:
            return elapsed / batch
        batch *= 2 if elapsed <= 0 else max(2, min(10, math.ceil(target_s / 10 / elapsed)))


class EnergyBenchmark:
    """Measure a function's energy: ``energy_benchmark(fn, *args, units=N, unit="sample")``."""

    def __init__(self, request: pytest.FixtureRequest, run: EnergyRun | None) -> None:
        self._request = request
        self._run = run
        self._settings: TestSettings | None = run.test_settings(request.node) if run else None
        self._used = False
        self._qualities: dict[str, Quality] = {}
        self._metadata: dict[str, Any] = {}
        self._family: FamilySpec | None = None
        self._reference: ReferenceRun | None = None
        self._paired: tuple[list[float], list[float]] | None = None
        self._judged = False
        self._chunk_calls = 1
        #: What was measured, once the function has been benchmarked.
        self.result: Benchmark | None = None
        self.variant_record: dict[str, Any] | None = None
        self.budget_notes: list[dict[str, Any]] = []

    @classmethod
    def for_request(cls, request: pytest.FixtureRequest) -> EnergyBenchmark:
        from pytest_energy.plugin import RUN_PLUGIN_NAME

        run = request.config.pluginmanager.get_plugin(RUN_PLUGIN_NAME)
        if run is not None and run.settings.benchmark_disable:
            run = None
        benchmark = cls(request, run)
        if run is not None:
            from pytest_energy.plugin.hooks import BENCHMARK

            request.node.stash[BENCHMARK] = benchmark
            request.addfinalizer(benchmark._finalize)
        return benchmark

    @property
    def measuring(self) -> bool:
        return self._run is not None and self._run.session.failure is None

    # -- the two ways to benchmark -------------------------------------------------

    def __call__(
        self,
        fn: Callable[..., R],
        /,
        *args: Any,
        units: float = 1,
        unit: str = "call",
        **kwargs: Any,
    ) -> R:
        """Benchmark ``fn(*args, **kwargs)``; ``units`` is the work one call does."""
        self._start(units, unit)
        if not self.measuring:
            return fn(*args, **kwargs)
        assert self._settings is not None

        # A C-level partial, not a Python closure: one interpreted call fewer per
        # repetition (benchmarks/fixture_overhead.py: ~21 ns instead of ~66 ns).
        call: Callable[[], R] = functools.partial(fn, *args, **kwargs)
        result: R = call()  # the first warm-up call: its result is what the test gets
        for _ in range(max(self._settings.warmup - 1, 0)):
            call()
        self._measure(
            call, units, unit, calls=None, rounds=self._settings.rounds, setup=None, pedantic=False
        )
        return result

    def pedantic(
        self,
        fn: Callable[..., R],
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        setup: Callable[[], object] | None = None,
        rounds: int = 5,
        calls_per_round: int = 1,
        warmup: int = 0,
        units: float = 1,
        unit: str = "call",
    ) -> R:
        """Explicit control: ``setup()`` before each round, fixed calls and rounds, no
        calibration."""
        if rounds < 1 or calls_per_round < 1 or warmup < 0:
            raise ValueError("pedantic needs rounds >= 1, calls_per_round >= 1 and warmup >= 0")
        self._start(units, unit)
        call: Callable[[], R] = functools.partial(fn, *args, **(kwargs or {}))
        if not self.measuring:
            if setup is not None:
                setup()
            return call()
        for _ in range(warmup):
            call()
        if setup is not None:
            setup()
        result: R = call()
        self._measure(
            call, units, unit, calls=calls_per_round, rounds=rounds, setup=setup, pedantic=True
        )
        return result

    def quality(
        self,
        name: str | None = None,
        value: float | None = None,
        *,
        higher_is_better: bool = True,
        **metrics: float,
    ) -> None:
        """Record quality metrics with the energy: ``quality(accuracy=0.97)`` (higher is
        better) or ``quality("perplexity", 12.3, higher_is_better=False)``."""
        if name is not None:
            if value is None:
                raise TypeError("quality(name, value): value is missing")
            metrics = {name: value, **metrics}
            direction = {name: higher_is_better}
        else:
            direction = {}
        for metric, number in metrics.items():
            if (
                isinstance(number, bool)
                or not isinstance(number, int | float)
                or not math.isfinite(number)
            ):
                raise TypeError(f"quality {metric!r} must be a finite number, got {number!r}")
            self._qualities[metric] = Quality(
                metric, float(number), direction.get(metric, higher_is_better)
            )
        if self._reference is None and self._family is not None and self._family.is_reference:
            self._register_reference_quality()
        self._refresh()
        self._judge_family()

    def metadata(self, **values: Any) -> None:
        """Record facts shown with the result: quantization, sparsity, batch size, ..."""
        self._metadata.update(values)
        self._refresh()

    def _refresh(self) -> None:
        """Keep the result's quality and metadata in step with what the test recorded."""
        if self.result is not None:
            self.result = _replace_benchmark(
                self.result,
                metadata=dict(self._metadata),
                quality=list(self._qualities.values()),
            )

    # -- measuring -------------------------------------------------------------------

    def _start(self, units: float, unit: str) -> None:
        if self._used:
            raise RuntimeError("energy_benchmark can benchmark one function per test")
        self._used = True
        if isinstance(units, bool) or not isinstance(units, int | float) or not units > 0:
            raise ValueError(f"units must be a positive number, got {units!r}")
        if not isinstance(unit, str) or not unit.strip():
            raise ValueError(f"unit must be a non-empty string, got {unit!r}")

    def _measure(
        self,
        call: Callable[[], object],
        units: float,
        unit: str,
        *,
        calls: int | None,
        rounds: int,
        setup: Callable[[], object] | None,
        pedantic: bool,
    ) -> None:
        run, settings = self._run, self._settings
        assert run is not None and settings is not None
        meters = run.session.meters
        assert meters is not None
        target = target_window(meters.update_period_s, settings.window)
        if calls is None:
            per_call = time_per_call(call, target)
            calls = calls_for_window(per_call, target)
            self._chunk_calls = max(1, round(CHUNK_S / max(per_call, 1e-9)))
        else:
            self._chunk_calls = calls  # pedantic: the round is one chunk
        self._family = run.family_spec(self._request.node)
        pairs = 2 if self._family is not None and not self._family.is_reference else 1
        self._announce(rounds * pairs * target)
        started = time.perf_counter()
        jitter = _jitter(
            meters.update_period_s,
            self._request.node.nodeid,
            any(d.scope == "gpu-board" for d in meters.domains),
        )
        if self._family is not None and not self._family.is_reference:
            measured = self._interleaved(call, calls, rounds, units, unit, setup, jitter)
        else:
            measured = self._rounds(call, calls, rounds, setup, jitter, started, settings)
        if measured is None:
            return  # the meter failed; the session reports it
        confirm = run.gate_extra_rounds(self._request.node, measured, units, unit)
        if confirm:
            extra = self._rounds(call, calls, confirm, setup, jitter, None, settings, "confirm")
            if extra is not None:
                measured = measured + extra
        self.result = _benchmark(
            measured,
            calls,
            units,
            unit,
            target,
            settings,
            pedantic,
            warmup=0 if pedantic else settings.warmup,
            confirmation=len([r for r in measured if r.role == "confirm"]),
            metadata=self._metadata,
        )
        self._refresh()
        if self._family is not None and self._family.is_reference:
            self._register_reference(call, calls, units, unit)
        self._judge_budgets()
        self._judge_family()

    def _announce(self, seconds: float) -> None:
        """A progress line before a long benchmark, on an interactive terminal, not under -q."""
        config = self._request.config
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if (
            reporter is None
            or seconds < PROGRESS_AFTER_S
            or config.get_verbosity() < 0
            or not getattr(reporter, "isatty", False)
        ):
            return
        line = (
            f"energy: measuring {self._request.node.nodeid} for about {seconds:.0f} s "
            "(rounds sized to the meter)"
        )
        # The test's output is being captured: step out of capture, as live logging does.
        capture = config.pluginmanager.get_plugin("capturemanager")
        if capture is None:
            reporter.write_line(line)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    def _window_round(self, call: Callable[[], object], calls: int, role: str) -> Round | None:
        run = self._run
        assert run is not None
        if run.session.normalizing:
            return self._normalized_round(call, calls, role)
        window: EnergyWindow | None = run.session.open_window()
        if window is None:
            return None
        try:
            for _ in itertools.repeat(None, calls):
                call()
        except BaseException:
            window.abandon()
            raise
        measurement: Measurement | None = run.session.close_window(window)
        if measurement is None:
            return None
        return Round(
            calls=calls,
            seconds=measurement.seconds,
            joules=dict(measurement.joules),
            total_j=measurement.total_j,
            role=role,
            flags=list(measurement.flags),
        )

    def _normalized_round(self, call: Callable[[], object], calls: int, role: str) -> Round | None:
        """A round whose calls alternate, chunk by chunk, with the calibration workload.

        On a shared VM the CPU time of the same work jumps by half within seconds
        (an SMT sibling gets busy, the clock changes); measured here, alternating
        ~2-ms chunks of work and of a fixed calibration loop brought the CV of their
        ratio from 21 % to 0.7 %. The round keeps the work's joules and records the
        calibration's joules per call next to them.
        """
        from pytest_energy.gate.run_gate import calibration_work
        from pytest_energy.measure.window import RESOLUTION_PERIODS
        from pytest_energy.meters import MeterError

        run = self._run
        assert run is not None
        session, meters = run.session, run.session.meters
        if meters is None or session.failure is not None:
            return None
        chunk = max(1, min(calls, self._chunk_calls))
        work = dict.fromkeys([d.name for d in meters.domains], 0.0)
        calibration_j = 0.0
        calibration_calls = seconds = 0.0
        done = 0
        try:
            before = meters.read()
            while done < calls:
                count = min(chunk, calls - done)
                started = time.perf_counter()
                for _ in itertools.repeat(None, count):
                    call()
                elapsed = time.perf_counter() - started
                middle = meters.read()
                matching = session.calibration_calls(elapsed * CALIBRATION_SHARE)
                for _ in itertools.repeat(None, matching):
                    calibration_work()
                after = meters.read()
                for name in work:
                    work[name] += middle.joules[name] - before.joules[name]
                calibration_j += sum(after.joules.values()) - sum(middle.joules.values())
                seconds += middle.t - before.t
                calibration_calls += matching
                done += count
                before = after
        except MeterError as exc:
            session.fail(str(exc))
            return None
        flags = ["concurrent"] if session.concurrent else []
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
        )

    def _rounds(
        self,
        call: Callable[[], object],
        calls: int,
        rounds: int,
        setup: Callable[[], object] | None,
        jitter: Callable[[], None],
        started: float | None,
        settings: TestSettings,
        role: str = "candidate",
    ) -> list[Round] | None:
        measured: list[Round] = []
        for index in range(rounds):
            if setup is not None and index > 0:
                setup()
            jitter()
            one = self._window_round(call, calls, role)
            if one is None:
                return None
            measured.append(one)
            if (
                started is not None
                and settings.max_time is not None
                and time.perf_counter() - started >= settings.max_time
            ):
                break  # the time budget is spent; what was measured stands
        return measured

    def _interleaved(
        self,
        call: Callable[[], object],
        calls: int,
        rounds: int,
        units: float,
        unit: str,
        setup: Callable[[], object] | None,
        jitter: Callable[[], None],
    ) -> list[Round] | None:
        """Rounds in the order R V V R R V ...: each pair shares the machine's state."""
        run = self._run
        assert run is not None and self._family is not None
        try:
            reference = run.families.reference_for(self._family)
        except SettingError as exc:
            pytest.fail(str(exc), pytrace=False)
        if reference.unit != unit:
            pytest.fail(
                f"family {self._family.family!r}: {self._family.variant} measures J per {unit} "
                f"but the reference {reference.spec.variant} J per {reference.unit}",
                pytrace=False,
            )
        self._reference = reference
        measured: list[Round] = []
        ref_per_unit: list[float] = []
        var_per_unit: list[float] = []
        cap = max(rounds, self._settings.rounds if self._settings else rounds)
        max_pairs = max(cap, run.settings.max_rounds)
        pair = 0
        while pair < max_pairs:
            order = ("reference", "candidate") if pair % 2 == 0 else ("candidate", "reference")
            results: dict[str, Round] = {}
            for role in order:
                if setup is not None and role == "candidate":
                    setup()
                jitter()
                if role == "reference":
                    one = self._window_round(reference.call, reference.calls_per_round, role)
                else:
                    one = self._window_round(call, calls, role)
                if one is None:
                    return None
                results[role] = one
                measured.append(one)
            # Normalized when both rounds carry their calibration: the pair then also
            # cancels CPU-speed changes faster than a pair of rounds.
            ref_per_unit.append(_per_unit(results["reference"], reference.units))
            var_per_unit.append(_per_unit(results["candidate"], units))
            pair += 1
            if pair >= rounds and not self._needs_more_pairs(ref_per_unit, var_per_unit):
                break
        self._paired = (ref_per_unit, var_per_unit)
        return measured

    def _needs_more_pairs(self, reference: list[float], variant: list[float]) -> bool:
        """Keep interleaving while the energy limit is neither met nor missed for sure."""
        spec = self._family
        if spec is None or spec.max_energy_ratio is None or len(reference) < 2:
            return False
        from pytest_energy.stats import paired_log_ratio

        try:
            low, high = paired_log_ratio(reference, variant).interval(0.95)
        except ValueError:
            return False
        return low <= spec.max_energy_ratio < high

    # -- judging -------------------------------------------------------------------------

    def _judge_budgets(self) -> None:
        from pytest_energy.gate.budgets import judge_benchmark

        run, settings, result = self._run, self._settings, self.result
        if run is None or settings is None or result is None or not settings.budgets:
            return
        flags = sorted({f for r in result.rounds for f in r.flags})
        notes = judge_benchmark(
            result,
            run.session.method,
            list(run.session.meters.names) if run.session.meters else [],
            flags,
            settings,
            run.grams_per_joule(),
        )
        self.budget_notes = [note.as_dict() for note in notes]
        from pytest_energy.plugin.hooks import _location

        for note in notes:
            note.enforce(_location(self._request.node))

    def _register_reference(
        self, call: Callable[[], object], calls: int, units: float, unit: str
    ) -> None:
        from pytest_energy.measure.families import ReferenceRun

        run, spec, result = self._run, self._family, self.result
        assert run is not None and spec is not None and result is not None
        run.families.register(
            ReferenceRun(
                spec=spec,
                nodeid=self._request.node.nodeid,
                call=call,
                calls_per_round=calls,
                units=units,
                unit=unit,
                method=run.session.method,
                quality=dict(self._qualities),
                metadata=self._metadata,
                energy_per_unit=result.per_unit.median,
            )
        )

    def _register_reference_quality(self) -> None:
        run, spec = self._run, self._family
        if run is None or spec is None:
            return
        found = run.families.references.get(spec.family)
        if found is not None and found.nodeid == self._request.node.nodeid:
            found.quality.update(self._qualities)

    def _judge_family(self) -> None:
        """Judge a variant against its limits once energy and quality are known."""
        from pytest_energy.measure.families import hardware_mismatch, judge_variant, quality_ratios

        spec, result, run = self._family, self.result, self._run
        if spec is None or result is None or run is None:
            return
        if spec.is_reference:
            self.variant_record = _reference_record(
                spec, result, self._qualities, run.session.method, self._environment()
            )
            return
        if self._paired is None or self._reference is None:
            return
        if spec.min_quality_ratio is not None and not self._qualities:
            return  # quality() has not been called yet; the finalizer insists on it
        from pytest_energy.stats import paired_log_ratio

        reference, variant = self._paired
        estimate = paired_log_ratio(reference, variant)
        ratio = estimate.ratio
        low, high = estimate.interval(0.95)
        qualities = quality_ratios(self._reference.quality, self._qualities)
        refusal = hardware_mismatch(self._reference.metadata, self._metadata)
        verdict, line = judge_variant(
            spec,
            ratio=ratio,
            ci_low=low,
            ci_high=high,
            unit=result.unit,
            method=run.session.method,
            qualities=qualities,
            refusal=refusal,
        )
        self.variant_record = {
            "family": spec.family,
            "reference": spec.reference,
            "variant": spec.variant,
            "nodeid": self._request.node.nodeid,
            "unit": result.unit,
            "method": run.session.method,
            "energy_per_unit": result.per_unit.median,
            "energy_ratio": ratio,
            "ci_low": low,
            "ci_high": high,
            "quality": qualities,
            "limits": {
                k: v
                for k, v in (
                    ("max_energy_ratio", spec.max_energy_ratio),
                    ("min_quality_ratio", spec.min_quality_ratio),
                )
                if v is not None
            },
            "verdict": verdict,
            "line": line,
            "metadata": {**self._environment(), **self._metadata},
            "pairs": len(reference),
        }
        if self._judged:
            return
        if verdict == "fail":
            self._judged = True
            pytest.fail(f"model variant check failed: {line}", pytrace=False)
        # An inconclusive verdict is reported (terminal, JSON, reports), never raised:
        # it must not fail suites that turn warnings into errors.

    def _environment(self) -> dict[str, Any]:
        from pytest_energy.measure.model_info import environment

        machine = self._run.session.machine if self._run is not None else None
        if machine is None:
            return {}
        return environment(machine.cpu_flags, machine.gpus)

    def _finalize(self) -> None:
        spec = self._family
        self._refresh()
        self._judge_family()  # metadata and quality may have arrived after the rounds
        if (
            spec is not None
            and not spec.is_reference
            and self.result is not None
            and spec.min_quality_ratio is not None
            and not self._qualities
        ):
            pytest.fail(
                f"{spec.variant}: min_quality_ratio is set for family {spec.family!r} but the "
                "test recorded no quality; call energy_benchmark.quality(name=value)",
                pytrace=False,
            )


def _jitter(period: float, seed: str, gpu: bool) -> Callable[[], None]:
    """A random pause before GPU rounds, so rounds do not phase-lock to NVML's ~100 ms
    sensor cycle (on A100/H100 only ~25 % of runtime is sampled; Yang et al., SC24)."""
    if not gpu:
        return lambda: None
    rng = random.Random(seed)
    return lambda: time.sleep(rng.uniform(0.0, period))


def _benchmark(
    rounds: list[Round],
    calls: int,
    units: float,
    unit: str,
    target: float,
    settings: TestSettings,
    pedantic: bool,
    *,
    warmup: int,
    confirmation: int,
    metadata: Mapping[str, Any],
) -> Benchmark:
    from pytest_energy.stats import summarize

    mine = [r for r in rounds if r.role != "reference"]
    per_call = [r.total_j / r.calls for r in mine]
    summary_call = summarize(per_call)
    summary_unit = summarize([j / units for j in per_call])
    ratios = [
        r.total_j / r.calls / units / r.calibration_j
        for r in mine
        if r.role == "candidate" and r.calibration_j
    ]
    normalized = summarize(ratios) if ratios else None
    # Stability is judged on what the gate compares: the normalized ratio when there is one.
    spread = normalized if normalized is not None else summary_call
    return Benchmark(
        unit=unit,
        units_per_call=units,
        calls_per_round=calls,
        warmup_calls=warmup,
        target_window_s=target,
        rounds=rounds,
        per_call=summary_call,
        per_unit=summary_unit,
        unstable=spread.n > 1 and spread.cv > settings.cv_limit,
        normalized=normalized,
        confirmation_rounds=confirmation,
        pedantic=pedantic,
        flags=_benchmark_flags(mine),
        metadata=dict(metadata),
    )


def _per_unit(one: Round, units: float) -> float:
    """J per unit of a round, over its calibration J per call when it has one."""
    value = one.total_j / one.calls / units
    return value / one.calibration_j if one.calibration_j else value


def _benchmark_flags(rounds: list[Round]) -> list[str]:
    """Flags of a benchmark: any round's taint, but "below resolution" only when the
    typical (median) round is, since one short round among five does not blind the meter."""
    flags = {f for r in rounds for f in r.flags if f != "below_resolution"}
    short = sum("below_resolution" in r.flags for r in rounds)
    if rounds and short * 2 > len(rounds):
        flags.add("below_resolution")
    return sorted(flags)


def _replace_benchmark(result: Benchmark, **changes: Any) -> Benchmark:
    from dataclasses import replace

    return replace(result, **changes)


def _reference_record(
    spec: FamilySpec,
    result: Benchmark,
    qualities: Mapping[str, Quality],
    method: str,
    environment: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "family": spec.family,
        "reference": spec.reference,
        "variant": spec.variant,
        "unit": result.unit,
        "method": method,
        "energy_per_unit": result.per_unit.median,
        "energy_ratio": 1.0,
        "ci_low": 1.0,
        "ci_high": 1.0,
        "quality": {
            q.name: {
                "value": q.value,
                "reference": q.value,
                "ratio": 1.0,
                "higher_is_better": q.higher_is_better,
            }
            for q in qualities.values()
        },
        "limits": {},
        "verdict": "reference",
        "line": f"{spec.variant}: the reference of {spec.family}",
        "metadata": {**environment, **result.metadata},
    }
