"""Simulate CI runs through the energy gate: false alarms, power, fresh processes used.

Each simulated CI run gates 50 tests. Every test has its own energy per unit
(log-uniform between 0.5 and 50 J). Noise has three layers, as measured on
shared VMs and GPUs (docs/gate.md):

* round to round inside one process: lognormal with the level's CV;
* process to process, per test: each process gives each test its own offset
  (memory layout, hash seed), which more rounds cannot shrink;
* process to process, shared: an offset a process gives all its tests alike
  (a slower VM, the GPU's clocks).

The gate runs as the plugin runs it: a baseline of 3 processes (the session and two
fresh ones) of 5 rounds each; the current session's own process screens every test;
a flagged test is measured again in 3 fresh processes and decided on those; then
``evaluate``: the spread between processes pooled across tests, Holm over the 50
tests and the suite total, alpha = 1 %.

Scenarios, per run:

* clean: nothing regressed; "false alarms" is the share of runs in which the build
  fails (any test or the suite);
* one test +5 % and another +10 %, the 48 others clean: "power" is the share of runs
  in which that test is a regression (a lone regression among 50 is the hardest case
  for a multiplicity-corrected gate);
* every test +7 % (every 4th run): how often the build fails, the suite check alone,
  and the share of tests found one by one.

``--worst-case`` checks the false-alarm guarantee at its boundary: every test exactly
at ``1 + margin`` with the threshold set to the margin, so that only the certainty test
(screen, fresh processes, Holm) protects the build; the share of runs with any false
regression must not exceed alpha.

Run: ``python benchmarks/gate_power.py`` (a few minutes on 2 idle cores).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields, replace
from pathlib import Path

# Run from a checkout without installing: import the package next to this folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_energy.config import defaults
from pytest_energy.gate import GateInput, decide, evaluate, screen


@dataclass(frozen=True)
class Noise:
    """One noise level: round-to-round CV, per-test and shared per-process offsets (SDs)."""

    cv: float
    per_test: float
    shared: float

    def label(self) -> str:
        return f"CV {self.cv:.0%}, offsets {self.per_test:.1%} + {self.shared:.1%} shared"


LEVELS = (
    Noise(0.01, 0.005, 0.0),
    Noise(0.03, 0.01, 0.005),
    Noise(0.03, 0.02, 0.01),
    Noise(0.05, 0.04, 0.02),
)
#: The old simulation's world: rounds i.i.d. around one level, no process offsets.
IID = Noise(0.03, 0.0, 0.0)
ROUNDS = defaults.ROUNDS
PROCESSES = (
    defaults.PROCESSES
)  # baseline processes, and fresh ones per flagged test; --gate-processes
ALPHA = defaults.ALPHA
THRESHOLD = defaults.THRESHOLD
MARGIN = defaults.MARGIN
SMALL_EFFECT = 0.05
LARGE_EFFECT = 0.10
BROAD_EFFECT = 0.07
BROAD_EVERY = 4
NAIVE_LIMIT = 1.05
TARGET_FALSE_ALARMS = 0.01
TARGET_POWER = 0.90
#: Power is checked at CV 3 % with 1 % + 0.5 % process offsets. The stronger levels
#: (2 % and 4 % offsets, like a busy shared VM) show what more processes buy.
TARGET_LEVEL = LEVELS[1]


@dataclass
class Tally:
    """Counts for one noise level, summed over runs."""

    runs: int = 0
    clean_fail: int = 0  # no regression injected, the build failed anyway
    naive_clean_fail: int = 0
    hit_small: int = 0
    naive_hit_small: int = 0
    hit_large: int = 0
    naive_hit_large: int = 0
    fresh_clean: int = 0  # tests of the clean run that were measured in fresh processes
    broad_runs: int = 0
    broad_fail: int = 0
    broad_suite: int = 0
    broad_tests_hit: int = 0

    def add(self, other: Tally) -> Tally:
        return Tally(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


@dataclass(frozen=True)
class Job:
    noise: Noise
    runs: int
    tests: int
    seed: int


class World:
    """The machine of one CI run: each process's shared offset, drawn once."""

    def __init__(self, rng: random.Random, noise: Noise) -> None:
        self.rng = rng
        self.noise = noise
        self.sigma = math.sqrt(math.log(1.0 + noise.cv**2))  # lognormal with this CV
        self._shared: dict[str, list[float]] = {}

    def shared(self, side: str, count: int) -> list[float]:
        if side not in self._shared:
            self._shared[side] = [self.rng.gauss(0.0, self.noise.shared) for _ in range(count)]
        return self._shared[side]

    def processes(self, level: float, side: str, count: int) -> list[list[float]]:
        """``count`` processes of ``ROUNDS`` rounds of one test at ``level``."""
        out = []
        for offset in self.shared(side, count):
            own = offset + self.rng.gauss(0.0, self.noise.per_test)
            out.append(
                [
                    level * math.exp(own + self.sigma * self.rng.gauss(0.0, 1.0))
                    for _ in range(ROUNDS)
                ]
            )
        return out


def gate_run(
    world: World,
    levels: Sequence[float],
    baselines: Sequence[list[list[float]]],
    factors: Sequence[float],
    *,
    threshold: float = THRESHOLD,
    margin: float = MARGIN,
) -> tuple[list[GateInput], int]:
    """Screen on this session's process, confirm flagged tests in fresh processes."""
    tests = [
        GateInput(f"t{i}", baselines[i], world.processes(levels[i] * factors[i], "screen", 1))
        for i in range(len(levels))
    ]
    results = screen(tests, alpha=ALPHA, threshold=threshold, margin=margin)
    fresh = 0
    for i, result in enumerate(results):
        if result.flagged:
            confirmation = world.processes(levels[i] * factors[i], "confirm", PROCESSES)
            tests[i] = replace(tests[i], confirmation=confirmation)
            fresh += 1
    return tests, fresh


def _one_run(rng: random.Random, job: Job, *, broad: bool) -> Tally:
    world = World(rng, job.noise)
    levels = [math.exp(rng.uniform(math.log(0.5), math.log(50.0))) for _ in range(job.tests)]
    baselines = [world.processes(level, "baseline", PROCESSES) for level in levels]

    def naive(test: GateInput) -> bool:
        return test.current[0][0] / test.baseline[0][0] > NAIVE_LIMIT

    clean, fresh = gate_run(world, levels, baselines, [1.0] * job.tests)
    clean_outcome = evaluate(clean, alpha=ALPHA, threshold=THRESHOLD)
    factors = [1.0 + SMALL_EFFECT, 1.0 + LARGE_EFFECT] + [1.0] * (job.tests - 2)
    regressed, _ = gate_run(World(rng, job.noise), levels, baselines, factors)
    outcome = evaluate(regressed, alpha=ALPHA, threshold=THRESHOLD)
    tally = Tally(
        runs=1,
        clean_fail=int(clean_outcome.failed),
        naive_clean_fail=int(any(naive(t) for t in clean)),
        hit_small=int(outcome.verdicts[0].status == "regression"),
        naive_hit_small=int(naive(regressed[0])),
        hit_large=int(outcome.verdicts[1].status == "regression"),
        naive_hit_large=int(naive(regressed[1])),
        fresh_clean=fresh,
    )
    if broad:
        everything, _ = gate_run(
            World(rng, job.noise), levels, baselines, [1.0 + BROAD_EFFECT] * job.tests
        )
        broad_outcome = evaluate(everything, alpha=ALPHA, threshold=THRESHOLD)
        tally.broad_runs = 1
        tally.broad_fail = int(broad_outcome.failed)
        tally.broad_suite = int(broad_outcome.suite.status == "regression")
        tally.broad_tests_hit = sum(v.status == "regression" for v in broad_outcome.verdicts)
    return tally


def simulate(job: Job) -> Tally:
    rng = random.Random(job.seed)
    tally = Tally()
    for run in range(job.runs):
        tally = tally.add(_one_run(rng, job, broad=run % BROAD_EVERY == 0))
    return tally


def simulate_worst_case(job: Job) -> int:
    """Runs with a false regression when every test sits exactly on ``1 + margin``."""
    rng = random.Random(job.seed)
    failures = 0
    for _ in range(job.runs):
        world = World(rng, job.noise)
        baselines = [world.processes(1.0, "baseline", PROCESSES) for _ in range(job.tests)]
        tests, _ = gate_run(
            world,
            [1.0] * job.tests,
            baselines,
            [1.0 + MARGIN] * job.tests,
            threshold=MARGIN,
            margin=MARGIN,
        )
        verdicts = decide(tests, alpha=ALPHA, threshold=MARGIN, margin=MARGIN)
        failures += any(v.status == "regression" for v in verdicts)
    return failures


def _jobs(args: argparse.Namespace, levels: Sequence[Noise]) -> list[Job]:
    chunks = max(1, args.processes * 4)
    jobs = []
    for k, noise in enumerate(levels):
        for c in range(chunks):
            count = args.runs // chunks + (1 if c < args.runs % chunks else 0)
            jobs.append(Job(noise, count, args.tests, args.seed * 1_000_003 + k * 101 + c))
    return jobs


def run_all(args: argparse.Namespace, levels: Sequence[Noise]) -> dict[Noise, Tally]:
    jobs = _jobs(args, levels)
    with ProcessPoolExecutor(max_workers=args.processes) as pool:
        results = list(pool.map(simulate, jobs))
    totals = {noise: Tally() for noise in levels}
    for job, tally in zip(jobs, results, strict=True):
        totals[job.noise] = totals[job.noise].add(tally)
    return totals


def worst_case(args: argparse.Namespace) -> bool:
    jobs = _jobs(args, LEVELS)
    with ProcessPoolExecutor(max_workers=args.processes) as pool:
        failures = list(pool.map(simulate_worst_case, jobs))
    print(
        f"\n== worst case: all {args.tests} tests exactly at +{MARGIN:.0%} (threshold = margin), "
        f"{args.runs} runs per noise level =="
    )
    ok = True
    for noise in LEVELS:
        count = sum(f for job, f in zip(jobs, failures, strict=True) if job.noise == noise)
        rate = count / args.runs
        # Pass unless the rate is above alpha beyond Monte Carlo error (2 standard errors).
        error = 2.0 * math.sqrt(ALPHA * (1.0 - ALPHA) / args.runs)
        good = rate <= ALPHA + error
        ok &= good
        print(
            f"{'PASS' if good else 'FAIL'}  {noise.label()}: a false regression in "
            f"{rate:.2%} of runs (alpha {ALPHA:.0%}, +-{error:.2%} simulation error)"
        )
    return ok


HEADERS = [
    "noise",
    "false alarms/run",
    "(naive)",
    f"power +{SMALL_EFFECT:.0%}",
    "(naive)",
    f"power +{LARGE_EFFECT:.0%}",
    "(naive)",
    "fresh processes/run, clean",
    f"all +{BROAD_EFFECT:.0%}: build fails",
    "suite finds",
    "tests found",
]


def rows(totals: dict[Noise, Tally], tests: int) -> list[list[str]]:
    table = []
    for noise, t in totals.items():
        n = t.runs
        table.append(
            [
                noise.label(),
                _pct(t.clean_fail, n),
                _pct(t.naive_clean_fail, n),
                _pct(t.hit_small, n),
                _pct(t.naive_hit_small, n),
                _pct(t.hit_large, n),
                _pct(t.naive_hit_large, n),
                f"{t.fresh_clean / n:.2f} tests x {PROCESSES}",
                _pct(t.broad_fail, t.broad_runs),
                _pct(t.broad_suite, t.broad_runs),
                _pct(t.broad_tests_hit, t.broad_runs * tests),
            ]
        )
    return table


def _pct(count: int, total: int) -> str:
    return f"{100.0 * count / total:.1f}%" if total else "-"


def print_table(table: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(HEADERS)]
    print("  ".join(h.rjust(w) for h, w in zip(HEADERS, widths, strict=True)))
    for row in table:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def print_markdown(table: list[list[str]]) -> None:
    print("| " + " | ".join(HEADERS) + " |")
    print("|" + "|".join("---:" for _ in HEADERS) + "|")
    for row in table:
        print("| " + " | ".join(row) + " |")


def check_targets(totals: dict[Noise, Tally]) -> tuple[bool, list[str]]:
    lines, ok = [], True
    for noise, t in totals.items():
        rate = t.clean_fail / t.runs
        good = rate <= TARGET_FALSE_ALARMS
        ok &= good
        lines.append(
            f"{'PASS' if good else 'FAIL'}  false alarms, {noise.label()}: {rate:.2%} per run "
            f"(target <= {TARGET_FALSE_ALARMS:.0%})"
        )
    if TARGET_LEVEL in totals:
        t = totals[TARGET_LEVEL]
        power = t.hit_large / t.runs
        good = power >= TARGET_POWER
        ok &= good
        lines.append(
            f"{'PASS' if good else 'FAIL'}  power for +{LARGE_EFFECT:.0%}, "
            f"{TARGET_LEVEL.label()}: {power:.1%} (target >= {TARGET_POWER:.0%})"
        )
    return ok, lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="CI runs per noise level")
    parser.add_argument("--tests", type=int, default=50, help="gated tests per CI run")
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--gate-processes",
        type=int,
        default=defaults.PROCESSES,
        help="processes per baseline and fresh processes per flagged test (--energy-processes)",
    )
    parser.add_argument(
        "--worst-case",
        action="store_true",
        help="instead, check the false-alarm guarantee with every test on the margin",
    )
    args = parser.parse_args(argv)
    global PROCESSES
    PROCESSES = args.gate_processes
    if args.worst_case:
        return 0 if worst_case(args) else 1
    print(
        f"gate: baseline {PROCESSES} processes x {ROUNDS} rounds; screen on this session's "
        f"process, flagged tests confirmed in {PROCESSES} fresh ones; Holm at alpha {ALPHA:g}, "
        f"threshold {THRESHOLD:.0%}; naive: first round per side, fail above "
        f"+{NAIVE_LIMIT - 1:.0%}"
    )
    started = time.perf_counter()
    totals = run_all(args, [*LEVELS, IID])
    print(
        f"\n== {args.runs} CI runs of {args.tests} gated tests per level; "
        f"{time.perf_counter() - started:.0f} s =="
    )
    table = rows(totals, args.tests)
    print_table(table)
    ok, lines = check_targets(totals)
    print("\n".join(lines))
    print("\nMarkdown:\n")
    print_markdown(table)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
