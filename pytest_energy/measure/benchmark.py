"""The ``energy_benchmark`` fixture's object: a function measured in calibrated rounds.

Unbilled warm-up calls, then enough calls per round that each round's window is
long enough for the meter (:mod:`.rounds`), then R rounds, each its own energy
window::

    def test_classify(energy_benchmark, model, batch):
        preds = energy_benchmark(model.predict, batch, units=len(batch), unit="sample")
        assert preds.shape[0] == len(batch)

A variant of a model family is measured in rounds interleaved with its
reference's (reference, variant, variant, reference, ...), so the machine's
slow drift hits both alike. What was measured stays on the object; the plugin
judges budgets and variant limits after the test body (:mod:`pytest_energy.gate`).
Without ``--energy`` the function is called once and nothing is measured.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol, TypeVar

import pytest

from pytest_energy.config.families import FamilySpec
from pytest_energy.config.marker import TestSettings
from pytest_energy.config.settings import SettingError
from pytest_energy.measure.driver import ROUND_DRIVER, round_by_round
from pytest_energy.measure.families import ReferenceRun
from pytest_energy.measure.model_info import environment
from pytest_energy.measure.recorder import SessionRecorder
from pytest_energy.measure.rounds import (
    CHUNK_S,
    RoundRunner,
    interleaved_order,
    jitter,
    paired_value,
    summarize_rounds,
)
from pytest_energy.measure.sizing import calls_for_window, target_window, time_per_call
from pytest_energy.record import Benchmark, Quality, Round
from pytest_energy.stats import paired_log_ratio

R = TypeVar("R")

#: Benchmarks expected to take longer than this say so on an interactive terminal.
PROGRESS_AFTER_S = 3.0


#: Lists and dicts nested deeper than this in a fact are kept as their ``str()``.
METADATA_DEPTH = 16


def json_value(value: Any, depth: int = 0) -> tuple[Any, bool]:
    """``value`` as JSON data, and whether some part of it was replaced by its ``str()``.

    numpy and torch scalars are recognised by ``.item()`` on a value without
    dimensions, so neither library is imported; lists, tuples and dicts are
    converted item by item; anything else (a dtype, a tensor, NaN) becomes its
    ``str()``. Never raises: a fact must not cost the results file.
    """
    if value is None or isinstance(value, bool | str):
        return value, False
    if isinstance(value, int):
        return int(value), False
    if isinstance(value, float):
        return (float(value), False) if math.isfinite(value) else (_text(value), True)
    if depth < METADATA_DEPTH and isinstance(value, list | tuple):
        items = [json_value(item, depth + 1) for item in value]
        return [plain for plain, _ in items], any(converted for _, converted in items)
    if depth < METADATA_DEPTH and isinstance(value, dict):
        return _json_object(value, depth)
    scalar = _scalar(value)
    if scalar is not None:
        return json_value(scalar, depth)
    return _text(value), True


def _json_object(value: dict[Any, Any], depth: int) -> tuple[dict[str, Any], bool]:
    plain: dict[str, Any] = {}
    any_converted = False
    for key, item in value.items():
        name = key if isinstance(key, str) else _text(key)
        plain[name], converted = json_value(item, depth + 1)
        any_converted = any_converted or converted or not isinstance(key, str)
    return plain, any_converted


def _scalar(value: Any) -> bool | int | float | None:
    """The Python number inside a numpy or torch scalar, or None for anything else."""
    try:
        if getattr(value, "ndim", None) != 0 or not callable(getattr(value, "item", None)):
            return None
        number = value.item()
    except Exception:  # a third-party object failing: not a scalar
        return None
    return number if isinstance(number, bool | int | float) else None


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ still leaves a record
        return f"<{type(value).__name__} that cannot be printed>"


def finite_number(value: Any) -> float | None:
    """A quality value as a finite float (numpy and torch scalars too), or None."""
    number = value if isinstance(value, int | float) else _scalar(value)
    if isinstance(number, bool) or not isinstance(number, int | float):
        return None
    return float(number) if math.isfinite(number) else None


class BenchmarkHost(Protocol):
    """What a benchmark needs from the session it runs in (the plugin provides it)."""

    @property
    def recorder(self) -> SessionRecorder: ...

    def test_settings(self, item: pytest.Item) -> TestSettings: ...

    def family_spec(self, item: pytest.Item) -> FamilySpec | None: ...

    def before_rounds(self) -> None:
        """Called after a benchmark's warm-up, before its first round (the drift check's start)."""
        ...


class EnergyBenchmark:
    """Measure a function's energy: ``energy_benchmark(fn, *args, units=N, unit="sample")``."""

    def __init__(self, request: pytest.FixtureRequest, host: BenchmarkHost | None) -> None:
        self._request = request
        self._host = host
        self._settings = host.test_settings(request.node) if host else None
        self._used = False
        self._chunk_calls = 1
        #: Quality metrics and facts recorded by the test.
        self.qualities: dict[str, Quality] = {}
        self.facts: dict[str, Any] = {}
        #: The family this test belongs to, and the reference it was measured against.
        self.family: FamilySpec | None = None
        self.reference: ReferenceRun | None = None
        #: Per pair of interleaved rounds: (reference value, variant value).
        self.paired: tuple[list[float], list[float]] | None = None
        self._result: Benchmark | None = None
        #: Facts already reported as recorded with ``str()``.
        self._converted: set[str] = set()

    @property
    def measuring(self) -> bool:
        return self._host is not None and self._host.recorder.failure is None

    @property
    def result(self) -> Benchmark | None:
        """What was measured, with the quality and facts recorded so far."""
        if self._result is None:
            return None
        return replace(
            self._result,
            metadata={k: self._plain(k, v) for k, v in self.facts.items()},
            quality=[*self.qualities.values()],
        )

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
        # repetition (benchmarks/fixture_overhead.py: ~21 ns instead of ~66 ns); the
        # rounds unpack it once and call fn(a) itself (measure.repeat: ~5 ns).
        call: Callable[[], R] = functools.partial(fn, *args, **kwargs)
        result: R = call()  # the first warm-up call: its result is what the test gets
        for _ in range(max(self._settings.warmup - 1, 0)):
            call()
        self._measure(call, units, unit, calls=None, rounds=self._settings.rounds, setup=None)
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
        self._measure(call, units, unit, calls=calls_per_round, rounds=rounds, setup=setup)
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
            finite = finite_number(number)
            if finite is None:
                raise TypeError(f"quality {metric!r} must be a finite number, got {number!r}")
            self.qualities[metric] = Quality(
                metric, finite, direction.get(metric, higher_is_better)
            )
        self._share_reference_quality()

    def metadata(self, **values: Any) -> None:
        """Record facts shown with the result: quantization, sparsity, batch size, ...

        numpy and torch scalars are kept as numbers; a value JSON cannot hold (a
        dtype, a NaN, any other object) is kept as its ``str()``, with a notice, so
        that writing the results never fails on a value a test handed over.
        """
        self.facts.update({key: self._plain(key, value) for key, value in values.items()})

    def _plain(self, key: str, value: Any) -> Any:
        """A fact as JSON data; said once per fact, not per call, when it took ``str()``."""
        plain, converted = json_value(value)
        if converted and key not in self._converted and self._host is not None:
            self._converted.add(key)
            kind = type(value)
            self._host.recorder.notices.append(
                f"{self._request.node.nodeid}: metadata {key!r} ({kind.__module__}."
                f"{kind.__qualname__}) is not a JSON number or string; recorded as its str()"
            )
        return plain

    def environment(self) -> dict[str, Any]:
        """Where this ran (frameworks, CPU instruction sets, GPU), for a variant's metadata."""
        machine = self._host.recorder.machine if self._host is not None else None
        if machine is None:
            return {}
        return environment(machine.cpu_flags, machine.gpus)

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
    ) -> None:
        host, settings = self._host, self._settings
        assert host is not None and settings is not None
        meters = host.recorder.meters
        assert meters is not None
        node = self._request.node
        pedantic = calls is not None
        if calls is None and meters.deterministic:
            calls = 1  # a counting meter prices calls alike: same J per call in every process
        target = target_window(meters.update_period_s, settings.window)
        if calls is None:
            per_call = time_per_call(call, target)
            calls = calls_for_window(per_call, target)
            self._chunk_calls = max(1, round(CHUNK_S / max(per_call, 1e-9)))
        else:
            self._chunk_calls = calls  # pedantic: the round is one chunk
        self.family = host.family_spec(node)
        # Under pytest-xdist the reference may run on another worker, and every
        # window holds other tests' energy anyway: a variant is then measured on
        # its own and reported as not judged, never failed.
        interleaved = (
            self.family is not None
            and not self.family.is_reference
            and not host.recorder.concurrent
        )
        self._announce(rounds * (2 if interleaved else 1) * target)
        pause = jitter(
            meters.update_period_s, node.nodeid, any(d.scope == "gpu-board" for d in meters.domains)
        )
        runner = RoundRunner(host.recorder, self._chunk_calls)
        host.before_rounds()
        started = time.perf_counter()
        driver = self._request.config.stash.get(ROUND_DRIVER, None)
        if driver is not None:
            one_round = round_by_round(runner, call, calls, setup, pause)
            measured = driver.drive(node.nodeid, one_round, units, unit)
        elif interleaved:
            measured = self._interleaved(runner, call, calls, rounds, units, unit, setup, pause)
        else:
            measured = self._rounds(runner, call, calls, rounds, setup, pause, started)
        if measured is None:
            return  # the meter failed; the session reports it
        self._result = summarize_rounds(
            measured,
            calls=calls,
            units=units,
            unit=unit,
            target_s=target,
            cv_limit=settings.cv_limit,
            pedantic=pedantic,
            warmup=0 if pedantic else settings.warmup,
            metadata=self.facts,
        )
        if self.family is not None and self.family.is_reference:
            self._register_reference(call, calls, units, unit)

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

    def _rounds(
        self,
        runner: RoundRunner,
        call: Callable[[], object],
        calls: int,
        rounds: int,
        setup: Callable[[], object] | None,
        pause: Callable[[], None],
        started: float | None,
    ) -> list[Round] | None:
        settings = self._settings
        assert settings is not None
        measured: list[Round] = []
        for index in range(rounds):
            if setup is not None and index > 0:
                setup()
            pause()
            one = runner.round(call, calls, "candidate")
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
        runner: RoundRunner,
        call: Callable[[], object],
        calls: int,
        rounds: int,
        units: float,
        unit: str,
        setup: Callable[[], object] | None,
        pause: Callable[[], None],
    ) -> list[Round] | None:
        """Rounds in the order R V V R R V ...: each pair shares the machine's state."""
        host, spec = self._host, self.family
        assert host is not None and spec is not None
        try:
            reference = host.recorder.families.reference_for(spec)
        except SettingError as exc:
            pytest.fail(str(exc), pytrace=False)
        if reference.unit != unit:
            pytest.fail(
                f"family {spec.family!r}: {spec.variant} measures J per {unit} "
                f"but the reference {reference.spec.variant} J per {reference.unit}",
                pytrace=False,
            )
        self.reference = reference
        measured: list[Round] = []
        pairs: tuple[list[float], list[float]] = ([], [])
        max_pairs = max(rounds, host.recorder.settings.max_rounds)
        while len(pairs[0]) < max_pairs:
            done: dict[str, Round] = {}
            for side in interleaved_order(len(pairs[0])):
                if setup is not None and side == "candidate":
                    setup()
                pause()
                if side == "reference":
                    one = runner.round(reference.call, reference.calls_per_round, "reference")
                else:
                    one = runner.round(call, calls, "candidate")
                if one is None:
                    return None
                done[side] = one
                measured.append(one)
            # Normalized when both rounds carry their calibration: the pair then also
            # cancels CPU-speed changes faster than a pair of rounds.
            pairs[0].append(paired_value(done["reference"], reference.units))
            pairs[1].append(paired_value(done["candidate"], units))
            if len(pairs[0]) >= rounds and not self._needs_more_pairs(*pairs):
                break
        self.paired = pairs
        return measured

    def _needs_more_pairs(self, reference: list[float], variant: list[float]) -> bool:
        """Keep interleaving while the energy limit is neither met nor missed for sure."""
        spec = self.family
        if spec is None or spec.max_energy_ratio is None or len(reference) < 2:
            return False
        try:
            low, high = paired_log_ratio(reference, variant).interval(0.95)
        except ValueError:
            return False
        return low <= spec.max_energy_ratio < high

    def _register_reference(
        self, call: Callable[[], object], calls: int, units: float, unit: str
    ) -> None:
        host, spec, result = self._host, self.family, self._result
        assert host is not None and spec is not None and result is not None
        host.recorder.families.register(
            ReferenceRun(
                spec=spec,
                nodeid=self._request.node.nodeid,
                call=call,
                calls_per_round=calls,
                units=units,
                unit=unit,
                method=host.recorder.method,
                quality=dict(self.qualities),
                metadata=self.facts,
                energy_per_unit=result.per_unit.median,
            )
        )

    def _share_reference_quality(self) -> None:
        """A reference's quality recorded after its rounds still reaches its variants."""
        if self._host is None or self.family is None or not self.family.is_reference:
            return
        found = self._host.recorder.families.references.get(self.family.family)
        if found is not None and found.nodeid == self._request.node.nodeid:
            found.quality.update(self.qualities)
