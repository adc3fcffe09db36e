"""Simulate CI runs through the energy gate: false alarms, power, rounds used.

Each simulated CI run gates 50 tests. Every test has its own energy per unit
(log-uniform between 0.5 and 50 J) and lognormal round-to-round noise at a
given CV, the same in the baseline session and in the current one. The
baseline is made the way the plugin makes it: ``--baseline-rounds`` rounds,
stored. The current run follows the full rule of ``pytest_energy.gate``:
screen on 5 rounds, run the fresh confirmation rounds the screen asks for (at
most 20 rounds in all), then ``evaluate``: Holm's correction over the 50 tests
and the suite total at alpha = 1 %.

Scenarios, all from the same random draws (common random numbers):

* clean: nothing regressed. "false alarms" is the share of runs in which the
  build fails (any test or the suite).
* one test +5 % and another test +10 %, the 48 others clean: "power" is the
  share of runs in which that test is found to be a regression. A lone
  regression among 50 is the hardest case for a multiplicity-corrected gate.
* every test +7 % (every 4th run only): how often the build fails, how often
  the suite check alone finds it, and the share of tests found one by one.
  This is the suite check's job: small regressions everywhere.

The naive rule is pytest-benchmark's style: one value per side (the first
baseline round and the first current round), fail if the ratio exceeds +5 %.

Run: ``python benchmarks/gate_power.py`` (2,000 runs per noise level, under a
minute per stored-baseline size on 2 idle cores). Without options it runs the
plugin's default 5-round baseline and, while a target fails, larger stored
baselines, and says which size the targets need; ``--baseline-rounds N``
runs one size only. ``--worst-case --runs 1000`` checks the false-alarm
guarantee itself: every test exactly at ``1 + margin`` with the threshold set
to the margin, so that only the certainty test (screen, fresh confirmation,
Holm) protects the build; the share of runs with any false regression must
not exceed alpha.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

# Run from a checkout without installing: import the package next to this folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_energy.config import defaults
from pytest_energy.gate import GateInput, decide, evaluate, screen

DEFAULT_ALPHA = defaults.ALPHA
DEFAULT_MARGIN = defaults.MARGIN
DEFAULT_MAX_ROUNDS = defaults.MAX_ROUNDS
DEFAULT_THRESHOLD = defaults.THRESHOLD
RECOMMENDED_BASELINE_ROUNDS = defaults.BASELINE_ROUNDS

CVS = (0.01, 0.03, 0.05)
SMALL_EFFECT = 0.05
LARGE_EFFECT = 0.10
BROAD_EFFECT = 0.07
#: The every-test scenario runs on every 4th CI run: it costs another full gate.
BROAD_EVERY = 4
SCREEN_ROUNDS = 5
NAIVE_LIMIT = 1.05
TARGET_FALSE_ALARMS = 0.01
TARGET_POWER = 0.90
TARGET_POWER_CV = 0.03
BASELINE_CHOICES = (5, 10, 15, 20)


@dataclass
class Tally:
    """Counts for one noise level, summed over runs."""

    runs: int = 0
    clean_fail: int = 0  # no regression injected, the build failed anyway
    naive_clean_fail: int = 0
    hit_small: int = 0  # the +5 % test was found to be a regression
    naive_hit_small: int = 0
    hit_large: int = 0  # the +10 % test was found to be a regression
    naive_hit_large: int = 0
    rounds_clean: int = 0  # current rounds of all tests in the clean run
    rounds_large: int = 0  # current rounds of the +10 % test
    broad_runs: int = 0  # runs that also simulated a regression of every test
    broad_fail: int = 0
    broad_suite: int = 0  # ... where the suite check itself said regression
    broad_tests_hit: int = 0  # ... tests individually found

    def add(self, other: Tally) -> Tally:
        return Tally(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


@dataclass(frozen=True)
class Job:
    cv: float
    runs: int
    tests: int
    baseline_rounds: int
    seed: int


def simulate(job: Job) -> Tally:
    """``job.runs`` CI runs at one noise level."""
    rng = random.Random(job.seed)
    sigma = math.sqrt(math.log(1.0 + job.cv**2))  # lognormal with this CV
    tally = Tally()
    for run in range(job.runs):
        tally = tally.add(_one_run(rng, sigma, job, broad=run % BROAD_EVERY == 0))
    return tally


def _one_run(rng: random.Random, sigma: float, job: Job, *, broad: bool) -> Tally:
    levels = [math.exp(rng.uniform(math.log(0.5), math.log(50.0))) for _ in range(job.tests)]
    baselines = [
        [level * math.exp(sigma * rng.gauss(0.0, 1.0)) for _ in range(job.baseline_rounds)]
        for level in levels
    ]
    # One stream of noise per test, reused for every scenario (common random numbers).
    noise = [[rng.gauss(0.0, 1.0) for _ in range(DEFAULT_MAX_ROUNDS)] for _ in levels]

    def gated(index: int, factor: float) -> GateInput:
        """Screen the test, run the confirmation rounds it asks for, as the plugin does."""
        current = [levels[index] * factor * math.exp(sigma * z) for z in noise[index]]
        first = GateInput(f"t{index}", baselines[index], current[:SCREEN_ROUNDS])
        extra = screen(first, family_size=job.tests).extra_rounds
        confirmation = current[SCREEN_ROUNDS : SCREEN_ROUNDS + extra]
        return GateInput(f"t{index}", baselines[index], first.current, confirmation=confirmation)

    def naive(test: GateInput) -> bool:
        return test.current[0] / test.baseline[0] > NAIVE_LIMIT

    clean = [gated(i, 1.0) for i in range(job.tests)]
    clean_outcome = evaluate(clean, alpha=DEFAULT_ALPHA, threshold=DEFAULT_THRESHOLD)
    small, large = gated(0, 1.0 + SMALL_EFFECT), gated(1, 1.0 + LARGE_EFFECT)
    regressed = evaluate(
        [small, large, *clean[2:]], alpha=DEFAULT_ALPHA, threshold=DEFAULT_THRESHOLD
    )
    tally = Tally(
        runs=1,
        clean_fail=int(clean_outcome.failed),
        naive_clean_fail=int(any(naive(t) for t in clean)),
        hit_small=int(regressed.verdicts[0].status == "regression"),
        naive_hit_small=int(naive(small)),
        hit_large=int(regressed.verdicts[1].status == "regression"),
        naive_hit_large=int(naive(large)),
        rounds_clean=sum(len(t.current) + len(t.confirmation) for t in clean),
        rounds_large=len(large.current) + len(large.confirmation),
    )
    if broad:
        everything = [gated(i, 1.0 + BROAD_EFFECT) for i in range(job.tests)]
        outcome = evaluate(everything, alpha=DEFAULT_ALPHA, threshold=DEFAULT_THRESHOLD)
        tally.broad_runs = 1
        tally.broad_fail = int(outcome.failed)
        tally.broad_suite = int(outcome.suite.status == "regression")
        tally.broad_tests_hit = sum(v.status == "regression" for v in outcome.verdicts)
    return tally


def simulate_worst_case(job: Job) -> int:
    """Runs with a false regression when every test sits exactly on ``1 + margin``.

    The threshold is set to the margin, so materiality adds no protection and
    only the certainty test (screen, fresh confirmation, Holm) stands between
    a test and the build failure: the family-wise guarantee at its boundary.
    """
    rng = random.Random(job.seed)
    sigma = math.sqrt(math.log(1.0 + job.cv**2))
    limit = DEFAULT_MARGIN
    failures = 0
    for _ in range(job.runs):
        tests = []
        for index in range(job.tests):
            baseline = [math.exp(sigma * rng.gauss(0.0, 1.0)) for _ in range(job.baseline_rounds)]
            current = [
                (1.0 + DEFAULT_MARGIN) * math.exp(sigma * rng.gauss(0.0, 1.0))
                for _ in range(DEFAULT_MAX_ROUNDS)
            ]
            first = GateInput(f"t{index}", baseline, current[:SCREEN_ROUNDS])
            extra = screen(first, family_size=job.tests, threshold=limit, margin=limit).extra_rounds
            confirmation = current[SCREEN_ROUNDS : SCREEN_ROUNDS + extra]
            tests.append(GateInput(f"t{index}", baseline, first.current, confirmation))
        verdicts = decide(tests, alpha=DEFAULT_ALPHA, threshold=limit, margin=limit)
        failures += any(v.status == "regression" for v in verdicts)
    return failures


def _jobs(args: argparse.Namespace, baseline_rounds: int) -> list[Job]:
    chunks = max(1, args.processes * 4)
    jobs = []
    for k, cv in enumerate(CVS):
        per_chunk = [
            args.runs // chunks + (1 if c < args.runs % chunks else 0) for c in range(chunks)
        ]
        for c, count in enumerate(per_chunk):
            seed = args.seed * 1_000_003 + baseline_rounds * 10_007 + k * 101 + c
            jobs.append(Job(cv, count, args.tests, baseline_rounds, seed))
    return jobs


def worst_case(args: argparse.Namespace, baseline_rounds: int) -> bool:
    jobs = _jobs(args, baseline_rounds)
    with ProcessPoolExecutor(max_workers=args.processes) as pool:
        failures = list(pool.map(simulate_worst_case, jobs))
    print(
        f"\n== worst case: all {args.tests} tests exactly at +{100 * DEFAULT_MARGIN:g}% "
        f"(threshold = margin), {args.runs} runs per CV, stored baseline of "
        f"{baseline_rounds} rounds =="
    )
    ok = True
    for cv in CVS:
        count = sum(f for job, f in zip(jobs, failures, strict=True) if job.cv == cv)
        rate = count / args.runs
        # Pass unless the rate is above alpha beyond Monte Carlo error (2 standard errors).
        error = 2.0 * math.sqrt(DEFAULT_ALPHA * (1.0 - DEFAULT_ALPHA) / args.runs)
        good = rate <= DEFAULT_ALPHA + error
        ok &= good
        print(
            f"{'PASS' if good else 'FAIL'}  CV {100 * cv:g}%: a false regression in "
            f"{100 * rate:.2f}% of runs (alpha {100 * DEFAULT_ALPHA:g}%, "
            f"+-{100 * error:.2f}% simulation error)"
        )
    return ok


def run_all(args: argparse.Namespace, baseline_rounds: int) -> dict[float, Tally]:
    jobs = _jobs(args, baseline_rounds)
    with ProcessPoolExecutor(max_workers=args.processes) as pool:
        results = list(pool.map(simulate, jobs))
    totals = {cv: Tally() for cv in CVS}
    for job, tally in zip(jobs, results, strict=True):
        totals[job.cv] = totals[job.cv].add(tally)
    return totals


# --- reporting ---------------------------------------------------------------------------------


def rows(totals: dict[float, Tally], tests: int) -> list[list[str]]:
    table = []
    for cv, t in totals.items():
        n = t.runs
        table.append(
            [
                f"{100 * cv:g}%",
                _pct(t.clean_fail, n),
                _pct(t.naive_clean_fail, n),
                _pct(t.hit_small, n),
                _pct(t.naive_hit_small, n),
                _pct(t.hit_large, n),
                _pct(t.naive_hit_large, n),
                f"{t.rounds_clean / (n * tests):.1f}",
                f"{t.rounds_large / n:.1f}",
                _pct(t.broad_fail, t.broad_runs),
                _pct(t.broad_suite, t.broad_runs),
                _pct(t.broad_tests_hit, t.broad_runs * tests),
            ]
        )
    return table


HEADERS = [
    "CV",
    "false alarms/run",
    "(naive)",
    f"power +{100 * SMALL_EFFECT:g}%",
    "(naive)",
    f"power +{100 * LARGE_EFFECT:g}%",
    "(naive)",
    "rounds/test, clean run",
    f"rounds, +{100 * LARGE_EFFECT:g}% test",
    f"all +{100 * BROAD_EFFECT:g}%: build fails",
    "suite finds",
    "tests found",
]


def _pct(count: int, total: int) -> str:
    return f"{100.0 * count / total:.1f}%"


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


def check_targets(totals: dict[float, Tally]) -> tuple[bool, list[str]]:
    lines, ok = [], True
    for cv, t in totals.items():
        rate = t.clean_fail / t.runs
        good = rate <= TARGET_FALSE_ALARMS
        ok &= good
        lines.append(
            f"{'PASS' if good else 'FAIL'}  false alarms at CV {100 * cv:g}%: "
            f"{100 * rate:.2f}% per run (target <= {100 * TARGET_FALSE_ALARMS:g}%)"
        )
    t = totals[TARGET_POWER_CV]
    power = t.hit_large / t.runs
    good = power >= TARGET_POWER
    ok &= good
    lines.append(
        f"{'PASS' if good else 'FAIL'}  power for +{100 * LARGE_EFFECT:g}% at CV "
        f"{100 * TARGET_POWER_CV:g}% within {DEFAULT_MAX_ROUNDS} rounds: {100 * power:.1f}% "
        f"(target >= {100 * TARGET_POWER:g}%)"
    )
    return ok, lines


def report(args: argparse.Namespace, baseline_rounds: int) -> bool:
    started = time.perf_counter()
    totals = run_all(args, baseline_rounds)
    elapsed = time.perf_counter() - started
    print(
        f"\n== stored baseline of {baseline_rounds} rounds; {args.runs} CI runs of {args.tests} "
        f"gated tests per CV; {elapsed:.0f} s =="
    )
    table = rows(totals, args.tests)
    print_table(table)
    ok, lines = check_targets(totals)
    print("\n".join(lines))
    print("\nMarkdown:\n")
    print_markdown(table)
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="CI runs per noise level")
    parser.add_argument("--tests", type=int, default=50, help="gated tests per CI run")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--baseline-rounds",
        type=int,
        default=None,
        help="rounds stored in the baseline (default: 5, then more if a target fails)",
    )
    parser.add_argument(
        "--worst-case",
        action="store_true",
        help="instead, check the false-alarm guarantee with every test on the margin",
    )
    args = parser.parse_args(argv)
    if args.worst_case:
        return 0 if worst_case(args, args.baseline_rounds or RECOMMENDED_BASELINE_ROUNDS) else 1
    print(
        f"gate: screen {SCREEN_ROUNDS} rounds, confirm up to {DEFAULT_MAX_ROUNDS} in all, "
        f"Holm at alpha {DEFAULT_ALPHA:g}, threshold {100 * DEFAULT_THRESHOLD:g}%; "
        f"naive: 1 value per side, fail above +{100 * (NAIVE_LIMIT - 1):g}%"
    )
    if args.baseline_rounds is not None:
        return 0 if report(args, args.baseline_rounds) else 1
    for baseline_rounds in BASELINE_CHOICES:
        if report(args, baseline_rounds):
            if baseline_rounds != BASELINE_CHOICES[0]:
                print(
                    f"\nThe targets need a stored baseline of {baseline_rounds} rounds; "
                    f"{BASELINE_CHOICES[0]} is not enough."
                )
            return 0
    print("\nNo stored baseline size tried meets every target.")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
