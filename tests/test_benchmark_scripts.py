"""The measuring logic of ``benchmarks/overhead.py``: how it pairs runs and judges a target.

The script's figures come from a real machine; what is tested here is what must hold on any
machine: a concurrent pair's runs come back on the side they were started for, the pairing
balances the CPUs and the start order, and the verdict's interval is the sign test's.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "overhead.py"


@pytest.fixture(scope="module")
def overhead() -> ModuleType:
    spec = importlib.util.spec_from_file_location("overhead_script", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defined
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_two_consecutive_concurrent_pairs_balance_cpu_and_start_order(
    overhead: ModuleType,
) -> None:
    for start in range(0, 40, 2):
        plans = [overhead.concurrent_plan(index) for index in (start, start + 1)]
        assert sorted(swap for swap, _ in plans) == [False, True]
        assert sorted(second_first for _, second_first in plans) == [False, True]
    combinations = {overhead.concurrent_plan(index) for index in range(4)}
    assert len(combinations) == 4


@pytest.fixture(params=["concurrent", "alternating"])
def paired(
    overhead: ModuleType, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    """The script with ``--pairing`` set, both sides of a concurrent pair on one CPU (the
    pairing logic does not need two)."""
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    monkeypatch.setattr(overhead, "PAIRING", request.param)
    monkeypatch.setattr(overhead, "PAIR_CPUS", (cpu, cpu))
    return overhead


def test_each_run_of_a_pair_comes_back_on_its_own_side(paired: ModuleType, tmp_path: Path) -> None:
    overhead = paired
    env = dict(os.environ)

    def command(name: str) -> Any:
        return overhead.Command(("-c", f"print({name!r})"), tmp_path, env, name)

    for index in range(4):
        (a, a_output), (b, b_output) = overhead.run_pair(index, command("first"), command("second"))
        assert (a_output.strip(), b_output.strip()) == ("first", "second")
        assert a.wall > 0
        assert b.wall > 0
        assert a.peak_mb > 0


def test_each_run_of_a_pair_is_timed_to_its_own_end(paired: ModuleType, tmp_path: Path) -> None:
    # A lower bound, not a timing: a child that sleeps 0.2 s cannot take less, on any
    # machine; timed to the other child's end (a bug once), it took ~0.03 s.
    overhead = paired
    quick = overhead.Command(("-c", "pass"), tmp_path, dict(os.environ))
    sleeper = overhead.Command(("-c", "import time; time.sleep(0.2)"), tmp_path, dict(os.environ))
    for index in range(4):
        (slow, _), _ = overhead.run_pair(index, sleeper, quick)
        _, (late, _) = overhead.run_pair(index, quick, sleeper)
        assert slow.wall >= 0.2
        assert late.wall >= 0.2


def test_a_run_is_timed_to_the_end_of_its_exit(paired: ModuleType, tmp_path: Path) -> None:
    # The fixed cost is judged from pytest.main's start (the child's clock) to the process's
    # end (the parent's): one clock for both, and the interpreter's exit inside. A lower
    # bound again: work at exit of 0.2 s cannot be missed.
    overhead = paired
    at_exit = (
        "import atexit, time; print('STARTED=%r' % time.perf_counter()); "
        "atexit.register(time.sleep, 0.2)"
    )
    exiting = overhead.Command(("-c", at_exit), tmp_path, dict(os.environ))
    quick = overhead.Command(("-c", "pass"), tmp_path, dict(os.environ))
    for index in range(2):
        (sample, output), _ = overhead.run_pair(index, exiting, quick)
        started = float(output.split("STARTED=")[1])
        assert 0.2 <= sample.ended - started <= sample.wall
        assert sample.ended <= time.perf_counter()


def test_a_failed_child_stops_the_script_with_its_output(
    overhead: ModuleType, tmp_path: Path
) -> None:
    failing = overhead.Command(("-c", "print('broken'); raise SystemExit(3)"), tmp_path, {})
    with pytest.raises(SystemExit, match=r"child failed \(exit 3\).*broken"):
        overhead.reap([overhead.start_child(failing)])


def test_the_median_interval_is_the_sign_tests(overhead: ModuleType) -> None:
    low, high, coverage = overhead.median_interval([5, 1, 4, 2, 3])
    assert (low, high) == (1, 5)
    assert coverage == pytest.approx(1 - 2 / 32)
    # Nine values: the 2nd smallest and the 2nd largest, 1 - 2 * 10/512 = 96.1 %.
    low, high, coverage = overhead.median_interval(list(range(9)))
    assert (low, high) == (1, 7)
    assert coverage == pytest.approx(1 - 20 / 512)


def test_a_target_is_judged_on_the_interval_not_the_median(overhead: ModuleType) -> None:
    assert overhead.judged([0.05, 0.06, 0.07, 0.08, 0.09], 0.1)[0] is True
    failed, words = overhead.judged([0.11, 0.12, 0.13, 0.14, 0.15], 0.1)
    assert not failed
    assert words.startswith("FAIL")
    # A median under the target whose interval holds it is not a pass.
    undecided, words = overhead.judged([0.02, 0.05, 0.06, 0.07, 0.2], 0.1)
    assert not undecided
    assert words.startswith("UNDECIDED")
