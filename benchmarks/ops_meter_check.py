"""Check the ops meter on the example suite: run-to-run CV 0, and its ratios beside the model's.

Not a test: a script that prints figures measured in one run, on the machine it runs on.

1. ``pytest --energy --energy-meter=ops examples/`` ``--runs`` times (default 5), each its own
   process, and once more under ``-p xdist -n 2``. Per test it prints the energy per unit of
   work of every run, the run-to-run CV (the target is 0: the same work must read the same
   joules, bit for bit), whether the xdist run read the same figure, and the CV between the
   rounds of each run (also 0).
2. ``pytest --energy --energy-meter=model examples/`` once, the CPU-time model.
3. Per model family, each variant's energy ratio to its reference from both meters side by
   side. The ops meter prices what the kernels compute (45 nm figures); the model scales
   process CPU time, which follows how fast this CPU runs each kernel. The two disagree where
   a kernel's speed is not its arithmetic (int8 with VNNI, fixed per-call costs), and
   neither is a measurement: for the measured side see README ("The ops meter").
4. With ``--overhead``: the wall time of the example suite without ``--energy``, with the
   model meter and with the ops meter, in alternating order, ``--overhead-reps`` times each
   (the ops meter adds a Python call to every torch operation).

    python benchmarks/ops_meter_check.py [--runs 5] [--no-xdist] [--no-model] [--overhead]

Exits 1 when a CV is not 0 or the xdist run disagrees. About 4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_energy.record import load

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_suite(json_path: Path | None, *args: str) -> float:
    """One ``python -m pytest examples/`` process; returns its wall time in seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_ENERGY")}
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", str(EXAMPLES), "-q", "-p", "no:cacheprovider"]
    if json_path is not None:
        command.append(f"--energy-json={json_path}")
    started = time.perf_counter()
    done = subprocess.run(
        [*command, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.stdout.write(done.stdout[-3000:] + done.stderr[-2000:])
        raise SystemExit(f"the example suite failed (exit {done.returncode}): {' '.join(args)}")
    return elapsed


def per_unit(path: Path) -> dict[str, list[float]]:
    """Each benchmark's J per unit of work, one value per candidate round."""
    values: dict[str, list[float]] = {}
    for test in load(path).tests:
        benchmark = test.benchmark
        if benchmark is None:
            continue
        values[test.nodeid.split("::", 1)[1]] = [
            r.per_unit(benchmark.units_per_call) for r in benchmark.rounds_of("candidate")
        ]
    return values


def family_ratios(path: Path) -> dict[tuple[str, str], float]:
    return {
        (family.family, variant.variant): variant.energy_ratio
        for family in load(path).families
        for variant in family.variants
    }


def cv(values: Sequence[float]) -> float:
    mean = statistics.fmean(values)
    return statistics.pstdev(values) / mean if mean else float("nan")


def check_ops(folder: Path, runs: int, xdist: bool) -> tuple[bool, Path]:
    ops = ("--energy", "--energy-meter=ops")
    paths = []
    for index in range(runs):
        path = folder / f"ops-{index}.json"
        seconds = run_suite(path, *ops)
        print(f"ops run {index + 1}/{runs}: {seconds:.1f} s")
        paths.append(path)
    xdist_values: dict[str, list[float]] = {}
    if xdist:
        path = folder / "ops-xdist.json"
        seconds = run_suite(path, *ops, "-p", "xdist", "-n", "2")
        print(f"ops run under -p xdist -n 2: {seconds:.1f} s")
        xdist_values = per_unit(path)
    runs_values = [per_unit(p) for p in paths]
    ok = True
    print("\nenergy per unit of work, ops meter (first round of each run):")
    print(f"{'test':<34} {'J/unit':>12} {'CV runs':>8} {'CV rounds':>9} {'xdist':>6}")
    for test in sorted(runs_values[0]):
        firsts = [values[test][0] for values in runs_values]
        rounds_cv = max(cv(values[test]) for values in runs_values)
        same_xdist = "-" if not xdist else str(xdist_values.get(test, [None])[0] == firsts[0])
        across = cv(firsts)
        ok = ok and across == 0 and rounds_cv == 0 and same_xdist in ("-", "True")
        print(f"{test:<34} {firsts[0]:>12.5g} {across:>8.2g} {rounds_cv:>9.2g} {same_xdist:>6}")
    return ok, paths[0]


def overhead(reps: int) -> None:
    variants = {
        "no --energy": (),
        "model meter": ("--energy", "--energy-meter=model"),
        "ops meter": ("--energy", "--energy-meter=ops"),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for rep in range(reps):
        for name in order if rep % 2 == 0 else reversed(order):
            times[name].append(run_suite(None, *variants[name]))
    print(f"\nwall time of the example suite, median of {reps} (alternating order):")
    for name, values in times.items():
        print(
            f"  {name:<12} {statistics.median(values):6.1f} s  (range {min(values):.1f}-"
            f"{max(values):.1f})"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-xdist", action="store_true")
    parser.add_argument("--no-model", action="store_true")
    parser.add_argument("--overhead", action="store_true")
    parser.add_argument("--overhead-reps", type=int, default=3)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ok, first = check_ops(folder, options.runs, not options.no_xdist)
        ops_ratios = family_ratios(first)
        model_ratios: dict[tuple[str, str], Any] = {}
        if not options.no_model:
            model = folder / "model.json"
            seconds = run_suite(model, "--energy", "--energy-meter=model")
            print(f"\nmodel meter run: {seconds:.1f} s")
            model_ratios = family_ratios(model)
        print(
            "\nenergy ratio to the family's reference (ops: counted x 45 nm prices; "
            "model: CPU time on this machine):"
        )
        print(f"{'family':<12} {'variant':<10} {'ops':>8} {'model':>8}")
        for family, variant in sorted(ops_ratios):
            model_ratio = model_ratios.get((family, variant))
            shown = f"{model_ratio:8.3f}" if model_ratio is not None else f"{'-':>8}"
            print(f"{family:<12} {variant:<10} {ops_ratios[(family, variant)]:8.3f} {shown}")
    if options.overhead:
        overhead(options.overhead_reps)
    print("\nrun-to-run CV 0 and xdist identical:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
