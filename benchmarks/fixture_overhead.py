"""The ``energy_benchmark`` fixture's own cost per call, outside the measured function.

Not a test: a script that prints figures measured in the same run. Target: below 1 % of the
function's time for functions of 10 µs or more.

What the overhead consists of. Inside a measured round the fixture runs
``for _ in itertools.repeat(None, calls): fn(a)`` (``pytest_energy.measure.repeat``: a
partial's positional arguments, up to three and no keywords, are bound once; otherwise it
calls the ``functools.partial`` itself). With the model meter rounds are normalized
(``--energy-normalize=auto``): the calls run in chunks of ~10 ms (``CHUNK_S``) that alternate
with a calibration loop, and each chunk is one energy window, read when it opens and when it
closes. Per call that is:

* the loop: one ``itertools.repeat`` iteration;
* the call ``fn(a)``, which CPython 3.11+ runs without a nested C-level interpreter call.
  Through a ``functools.partial`` (the fixture's loop before) or a closure doing
  ``fn(*args, **kwargs)`` (before that), ``fn`` runs in a nested C-level call, and in some
  processes (it depends on the memory layout the process happens to get) that makes the body
  of ``fn`` itself run ~1-3 % slower than when it is called directly;
* the chunk edges, amortised over a chunk's calls: the closing meter read (a few µs, inside
  the window) and the work's first calls after the calibration loop, which run cold. Measured
  at ~8-13 µs per chunk, ~0.1 % of a 10-ms chunk (~10 ns per call of a 10-µs function); with
  the 2-ms chunks before, ~0.6 % (the whole figure was then +1.5 % at ~10 µs).

Calibration and warm-up calls happen outside the rounds; they cost the test wall time but are
not billed to the function, so they are not part of this figure.

How it is measured. A pure-Python busy loop (``busywork.spin(n)``) is sized so that it takes at
least ~10 µs and ~100 µs per call. An in-process ``pytest.main`` with ``--energy
--energy-meter=model --energy-json=...`` runs generated tests; each does::

    busywork.bare(...)                      # a timed bare loop: for _ in range(calls): spin(n)
    energy_benchmark(busywork.spin, n)      # the default path: warm-up, calibration, 1 round
    busywork.bare(...)                      # the same bare loop again

The round's seconds / calls (and CPU seconds / calls: the model's joules divided by its watts
per core) come from the JSON file; the bare loops time wall and CPU per call with
``perf_counter`` / ``process_time``. Each test gives one paired figure, taken as a share so
that the machine's drifting speed cancels: ``round / mean(bare before, bare after) - 1``, plus
the empty loop's share of a call, because the fixture's loop is part of what it adds
(``function time = bare - empty loop``, ``overhead = round - bare + empty loop``).

Because of the layout effect above, one process is one draw: the whole measurement runs in
``--processes`` fresh processes one after the other (5 by default, ``--tests`` paired tests per
size each). It prints each process's median share with a 95 % interval of that median (order
statistics), and the median over processes, which decides PASS or FAIL (wall time; the CPU-time
share is printed beside it).

Why rounds of 20 ms (``--energy-window=0.02 --energy-rounds=1``) rather than the model's default
0.2 s. On a shared machine (2 vCPUs, other jobs running) the speed of the same loop swings by
tens of % between consecutive 0.2-s batches, in CPU time as much as in wall time, so comparing
whole runs cannot resolve 1 %. Bare loops and rounds 20 ms long, adjacent in time and repeated
hundreds of times, can. The per-call path inside a round is the default one, and so are the
chunks (two of ~10 ms per 20-ms round, as in a 0.2-s round's twenty): only the round's own
start and end are spread over 10x fewer calls, which makes the figure conservative by a few
ns per call.

The script also times the parts one by one (the fixture's loop and call, the meter read) and,
for comparison, the earlier loops (a partial, a closure). Last, in every process, it times the
three loop shapes outside pytest with the ~10-µs function itself, each against bare loops
around it.

Run from the repository's virtual environment, where the plugin is installed::

    python benchmarks/fixture_overhead.py [--processes 5] [--tests 100] [--window 0.02]

About two minutes on 2 cores. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import io
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_energy.record import RunRecord

TARGET = 0.01
SIZES = (("10us", 10e-6), ("100us", 100e-6))
TEST_FILE = "test_fixture_overhead.py"

BUSYWORK = '''"""Pure-Python busy work, and the bare loop compared with the fixture's rounds."""

import time

#: (size, test index) -> [(wall s per call, CPU s per call), ...]
TIMINGS = {}


def spin(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def noop(n):
    return n


def bare(size, index, n, calls):
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        spin(n)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    TIMINGS.setdefault((size, index), []).append((wall / calls, cpu / calls))
'''

TEST_TEMPLATE = """

@pytest.mark.parametrize("index", range({tests}))
def test_spin_{size}(energy_benchmark, index):
    busywork.bare("{size}", index, {n}, {calls})
    energy_benchmark(busywork.spin, {n})
    busywork.bare("{size}", index, {n}, {calls})
"""


def machine_line() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import pytest

    from pytest_energy import __version__

    return (
        f"machine: {model}, {os.cpu_count()} logical CPUs, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, pytest {pytest.__version__}, "
        f"pytest-energy {__version__}"
    )


def load_line() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average: unknown"
    return f"load average (1/5/15 min): {one:.2f} {five:.2f} {fifteen:.2f}"


def median_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Median and a distribution-free 95 % interval of the median (order statistics)."""
    ordered = sorted(values)
    count = len(ordered)
    half = 1.96 * math.sqrt(count) / 2
    low = ordered[max(0, math.floor(count / 2 - half))]
    high = ordered[min(count - 1, math.ceil(count / 2 + half))]
    return statistics.median(ordered), low, high


def per_call(fn: Callable[[], object], loops: int) -> float:
    """Median over 7 timings of ``fn`` (which runs ``loops`` iterations), per iteration."""
    times = []
    for _ in range(7):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) / loops)
    return statistics.median(times)


def empty_loop(loops: int) -> float:
    def run() -> None:
        for _ in range(loops):
            pass

    return per_call(run, loops)


def calibrate(spin: Callable[[int], object], seconds: float) -> int:
    """The ``n`` for which ``spin(n)`` takes at least ``seconds``.

    Sized on the fastest of 40 batches of 10 ms: the machine's speed drifts, and a function that
    is 10 µs when the machine is at its fastest is 10 µs or more for most of the run.
    """
    n = 100
    for batches in (5, 5, 40):
        calls = max(1, round(0.01 / seconds))
        times = []
        for _ in range(batches):
            start = time.perf_counter()
            for _ in range(calls):
                spin(n)
            times.append((time.perf_counter() - start) / calls)
        n = max(1, round(n * seconds / min(times)))
    return n


def loop_share(spin: Callable[[int], object], n: int, seconds: float) -> float:
    """The empty loop's share of a bare ``spin(n)`` call, timed back to back (median of 15)."""
    calls = max(1, round(0.01 / seconds))
    ratios = []
    for _ in range(15):
        start = time.perf_counter()
        for _ in range(calls):
            spin(n)
        call = (time.perf_counter() - start) / calls
        ratios.append(empty_loop(200_000) / call)
    return statistics.median(ratios)


def closure_of(fn: Callable[..., object], *args: Any, **kwargs: Any) -> Callable[[], object]:
    def call() -> object:  # the shape of an earlier EnergyBenchmark.__call__'s closure
        return fn(*args, **kwargs)

    return call


def loop_variants(
    spin: Callable[[int], object], n: int, seconds: float, window: float, loop_ratio: float
) -> dict[str, float]:
    """Shares of a ``spin(n)`` call added by three loops, outside pytest (median of 60).

    Each of 60 repetitions times a bare loop, the three loops in a rotating order, and a bare
    loop again, all ``window`` long; shares are counted like the fixture's (range loop added).
    """
    calls = max(1, round(window / seconds))
    closure = closure_of(spin, n)
    bound = functools.partial(spin, n)

    def bare() -> None:
        for _ in range(calls):
            spin(n)

    def through_closure() -> None:
        for _ in range(calls):
            closure()

    def through_partial() -> None:
        for _ in itertools.repeat(None, calls):
            bound()

    def inline() -> None:
        fn, arg = spin, n
        for _ in itertools.repeat(None, calls):
            fn(arg)

    def timed(run: Callable[[], None]) -> float:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    variants = {"closure": through_closure, "partial": through_partial, "inline": inline}
    names = list(variants)
    shares: dict[str, list[float]] = {name: [] for name in names}
    for index in range(60):
        before = timed(bare)
        order = names[index % 3 :] + names[: index % 3]
        got = {name: timed(variants[name]) for name in order}
        reference = (before + timed(bare)) / 2
        for name in names:
            shares[name].append((got[name] / reference - 1 + loop_ratio) / (1 - loop_ratio))
    return {name: statistics.median(values) for name, values in shares.items()}


def components(noop: Callable[[int], object]) -> dict[str, float]:
    """The overhead's parts, timed one by one (seconds per call)."""

    call = closure_of(noop, 1)
    bound = functools.partial(noop, 1)
    loops = 200_000

    def direct() -> None:
        for _ in range(loops):
            noop(1)

    def wrapped() -> None:
        for _ in range(loops):
            call()

    def suggested() -> None:
        for _ in itertools.repeat(None, loops):
            bound()

    def inline() -> None:
        fn, (arg,) = noop, (1,)
        for _ in itertools.repeat(None, loops):
            fn(arg)

    loop = empty_loop(loops)
    plain = per_call(direct, loops)
    parts = {
        "loop": loop,
        "closure": per_call(wrapped, loops) - plain,
        # The loop and the call without the closure, counted the same way (loop included).
        "suggested": per_call(suggested, loops) - plain + loop,
        "inline": per_call(inline, loops) - plain + loop,
    }
    try:
        from pytest_energy.meters import MeterSet
        from pytest_energy.meters.model import ModelMeter

        meters = MeterSet([ModelMeter()])

        def reads() -> None:
            for _ in range(1000):
                meters.read()

        parts["meter read"] = per_call(reads, 1000)
    except (ImportError, TypeError, ValueError):
        pass
    return parts


def run_pytest(folder: Path, json_path: Path, window: float) -> RunRecord:
    """The in-process pytest run of the generated tests; its results file."""
    import pytest

    from pytest_energy.record import load

    argv = [
        "-q",
        "-p",
        "no:cacheprovider",
        "--energy",
        "--energy-meter=model",
        f"--energy-json={json_path}",
        f"--energy-window={window}",
        "--energy-rounds=1",
        "--energy-history=off",
        "--rootdir",
        str(folder),
        str(folder / TEST_FILE),
    ]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = pytest.main(argv)
    if code != 0:
        raise SystemExit(f"pytest {' '.join(argv)} exited {code}:\n{out.getvalue()[-3000:]}")
    return load(json_path)


def analyse(
    size: str,
    record: RunRecord,
    timings: dict[tuple[str, int], list[Any]],
    loop_ratio: float,
) -> dict[str, Any]:
    """Per test: the round's per-call time against the mean of the bare loops around it.

    Shares are taken test by test (the machine's speed drifts between tests, the ratio much
    less): ``(round / bare - 1 + r) / (1 - r)`` with ``r`` the loop's share of a bare call.
    """
    watts = float(record.session.meters[0].details["watts_per_core"])
    shares, cpu_shares, functions, calls = [], [], [], []
    drift, versus_before, versus_after = [], [], []
    for test in record.tests:
        nodeid = test.nodeid
        if f"::test_spin_{size}[" not in nodeid or test.benchmark is None:
            continue
        index = int(nodeid.rsplit("[", 1)[1].rstrip("]"))
        first = next(r for r in test.benchmark.rounds if r.role == "candidate")
        bare = timings[(size, index)]
        wall = statistics.fmean(b[0] for b in bare)
        cpu = statistics.fmean(b[1] for b in bare)
        round_wall = first.seconds / first.calls
        round_cpu = first.total_j / watts / first.calls
        shares.append((round_wall / wall - 1 + loop_ratio) / (1 - loop_ratio))
        cpu_shares.append((round_cpu / cpu - 1 + loop_ratio) / (1 - loop_ratio))
        functions.append(wall * (1 - loop_ratio))
        calls.append(first.calls)
        drift.append(bare[-1][0] / bare[0][0] - 1)
        versus_before.append(round_wall / bare[0][0] - 1)
        versus_after.append(round_wall / bare[-1][0] - 1)
    if len(shares) < 4:
        raise SystemExit(f"too few measured rounds for test_spin_{size} in the results file")
    share, low, high = median_ci(shares)
    function_s = statistics.median(functions)
    return {
        "calls": int(statistics.median(calls)),
        "function_s": function_s,
        "overhead_s": share * function_s,
        "share": share,
        "ci": [low, high],
        "cpu_share": statistics.median(cpu_shares),
        "order": [statistics.median(x) for x in (drift, versus_before, versus_after)],
    }


def worker(folder: Path, tests: int, window: float) -> dict[str, Any]:
    """One process's measurement, in ``folder``."""
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (folder / "busywork.py").write_text(BUSYWORK, encoding="utf-8")
    sys.path.insert(0, str(folder))
    # The very function objects the tests benchmark (the tests import the same module).
    busywork = importlib.import_module("busywork")

    n = {size: calibrate(busywork.spin, seconds) for size, seconds in SIZES}
    calls = {size: max(1, round(window / seconds)) for size, seconds in SIZES}
    source = "import busywork\nimport pytest\n" + "".join(
        TEST_TEMPLATE.format(size=size, tests=tests, n=n[size], calls=calls[size])
        for size, _ in SIZES
    )
    (folder / TEST_FILE).write_text(source, encoding="utf-8")
    record = run_pytest(folder, folder / "energy.json", window)
    timings: dict[tuple[str, int], list[Any]] = busywork.TIMINGS
    loop_ratio = {size: loop_share(busywork.spin, n[size], seconds) for size, seconds in SIZES}
    ten, ten_s = SIZES[0]
    return {
        "loops": loop_variants(busywork.spin, n[ten], ten_s, window, loop_ratio[ten]),
        "sizes": {
            size: analyse(size, record, timings, loop_ratio[size])
            | {"loop_share": loop_ratio[size]}
            for size, _ in SIZES
        },
        "parts": components(busywork.noop),
    }


def report(results: list[dict[str, Any]], tests: int, window: float) -> bool:
    print(
        f"\nper-call overhead inside energy_benchmark's measured rounds vs bare loops around "
        f"them ({len(results)} processes x {tests} paired tests per size, one "
        f"{window * 1e3:g}-ms round each; --energy --energy-meter=model)"
    )
    print(
        f"  {'function':<8} {'process':>7} {'calls/round':>11} {'time':>9} {'overhead':>9} "
        f"{'share':>7} {'95% CI of share':>16} {'CPU share':>9}"
    )
    ok = True
    for size, _ in SIZES:
        label = "~" + size.replace("us", " µs")
        rows = [result["sizes"][size] for result in results]
        for index, row in enumerate(rows, 1):
            low, high = row["ci"]
            print(
                f"  {label if index == 1 else '':<8} {index:>7} {row['calls']:>11,} "
                f"{row['function_s'] * 1e6:>6.2f} µs {row['overhead_s'] * 1e9:>+6.0f} ns "
                f"{row['share']:>+7.2%} [{low:>+6.2%},{high:>+7.2%}] {row['cpu_share']:>+9.2%}"
            )
        share = statistics.median(row["share"] for row in rows)
        good = share < TARGET
        ok = ok and good
        print(
            f"  {'':<8} {'median':>7} {'':>11} "
            f"{statistics.median(row['function_s'] for row in rows) * 1e6:>6.2f} µs "
            f"{statistics.median(row['overhead_s'] for row in rows) * 1e9:>+6.0f} ns "
            f"{share:>+7.2%} {'':>16} "
            f"{statistics.median(row['cpu_share'] for row in rows):>+9.2%}  "
            f"{'PASS' if good else 'FAIL'} (< {TARGET:.0%}; worst process "
            f"{max(row['share'] for row in rows):+.2%})"
        )
    print(
        "  (share per test = round / mean(bare before, bare after) - 1, plus the empty loop's "
        "share of a call: "
        + ", ".join(
            f"{statistics.median(r['sizes'][size]['loop_share'] for r in results):.2%} at "
            f"~{size.replace('us', ' µs')}"
            for size, _ in SIZES
        )
        + ")"
    )
    print("  order check, medians over processes (a drift inside a test would show here):")
    for size, _ in SIZES:
        drift, before, after = (
            statistics.median(r["sizes"][size]["order"][i] for r in results) for i in range(3)
        )
        print(
            f"    ~{size.replace('us', ' µs')}: bare after / bare before {drift:+.2%}; "
            f"round / bare before {before:+.2%}; round / bare after {after:+.2%}"
        )

    def part(name: str) -> float:
        value: float = statistics.median(r["parts"][name] for r in results)
        return value

    loop, closure, suggested = part("loop"), part("closure"), part("suggested")
    inline = part("inline")
    reads = [r["parts"]["meter read"] for r in results if "meter read" in r["parts"]]
    read = statistics.median(reads) if reads else None
    ten = SIZES[0][1]
    print("\nthe overhead's parts, timed one by one (medians over the processes):")
    print(
        f"  the fixture's loop and call (itertools.repeat, fn(a) with the arguments bound once): "
        f"{inline * 1e9:.1f} ns per call"
    )
    total = inline
    if read is None:
        print("  model meter read: n/a (pytest_energy.meters API changed)")
    else:
        from pytest_energy.measure.rounds import CHUNK_S

        chunk_calls = max(1, round(CHUNK_S / ten))
        print(
            f"  model meter read: {read * 1e6:.2f} µs, one inside each ~{CHUNK_S * 1e3:g}-ms "
            f"chunk's window; per call of a 10-µs function: {read / chunk_calls * 1e9:.2f} ns "
            f"(the cold start after each calibration loop is not in this sum)"
        )
        total += read / chunk_calls
    print(
        f"  sum with default rounds: {total * 1e9:.1f} ns per call = {total / ten:.2%} of 10 µs, "
        f"{total / SIZES[1][1]:.2%} of 100 µs (without the layout effect on fn's own body)"
    )
    print("  for comparison, the fixture's earlier loops, counted the same way:")
    print(
        f"    itertools.repeat + functools.partial(fn, *args, **kwargs): {suggested * 1e9:.1f} ns "
        f"per call = {suggested / ten:.2%} of 10 µs (fn runs in a nested C-level call)"
    )
    print(
        f"    range + a closure doing fn(*args, **kwargs): {(loop + closure) * 1e9:.1f} ns per "
        f"call = {(loop + closure) / ten:.2%} of 10 µs"
    )
    closure_share, partial_share, inline_share = (
        statistics.median(r["loops"][name] for r in results)
        for name in ("closure", "partial", "inline")
    )
    print(
        "\nthe same loops outside pytest, with the ~10-µs function itself (60 x 4 interleaved "
        f"{window * 1e3:g}-ms batches per process; share of its time, median over processes):"
    )
    print(f"  the fixture's loop, repeat + fn(a), arguments bound: {inline_share:+.2%}")
    print(f"  before: itertools.repeat + functools.partial:        {partial_share:+.2%}")
    print(f"  before that: range + closure:                        {closure_share:+.2%}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=5, help="fresh processes, one by one")
    parser.add_argument("--tests", type=int, default=100, help="paired tests per size per process")
    parser.add_argument("--window", type=float, default=0.02, help="round length in seconds")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for key in list(os.environ):
        if key.startswith("PYTEST_ENERGY_") or key in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS"):
            del os.environ[key]
    try:
        import pytest_energy.plugin  # noqa: F401
    except ImportError:
        print("pytest-energy is not importable: run from its virtual environment", file=sys.stderr)
        return 2
    if args.worker is not None:
        print("RESULT=" + json.dumps(worker(args.worker, args.tests, args.window)))
        return 0

    print(machine_line())
    print(load_line())
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="energy-fixture-overhead-") as scratch:
        for index in range(args.processes):
            folder = Path(scratch) / f"process{index}"
            folder.mkdir()
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--worker",
                str(folder),
                f"--tests={args.tests}",
                f"--window={args.window}",
            ]
            proc = subprocess.run(command, capture_output=True, text=True, check=False)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT=")), None)
            if proc.returncode != 0 or line is None:
                print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                return 2
            results.append(json.loads(line[len("RESULT=") :]))
    ok = report(results, args.tests, args.window)
    print(f"\n{load_line()}; took {time.perf_counter() - started:.0f} s")
    print(f"overall: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
