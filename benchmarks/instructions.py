"""What ``--energy`` costs in instructions: callgrind counts, which a host's drift does not move.

``overhead.py`` measures time, and on a shared VM whose speed drifts by a third within
minutes a single run's per-test figure moves by more than the 0.1-ms target's margin. The
number of instructions a run executes does not drift: this script counts them with
valgrind's callgrind for plain pytest and for the plugin's variants, on a one-test suite (the
fixed cost) and on a suite of trivial tests (the cost a test), so that two trees can be
compared on any machine, and a regression found, without a quiet host.

Each count is one ``python -m pytest -q -p no:cacheprovider`` process under
``valgrind --tool=callgrind``, after an uncounted run that fills the bytecode cache, with:

* ``PYTHONHASHSEED=0``: string hashes decide dict and set layouts, and so some counts;
* ``PYTEST_ENERGY_CHECKPOINT_SECONDS=3600``: the results file is checkpointed by the clock
  (every 2 s), and under valgrind's ~50x slowdown a 2,000-test run that takes 1.5 s would
  write dozens of checkpoints it never writes for real (~1 M instructions each);
* a fresh ``.energy`` folder each time: the history is created, as on a fresh checkout.

Per test beyond the fixed cost is ``(big - plain_big - (one - plain_one)) / (tests - 1)``.
Instructions are not time (a system call or a cache miss costs more than its count says),
but a change that removes instructions from the plugin's path removes its time with them.
Reference points on the project's Intel VM are in docs/overhead.md.

Needs valgrind (``apt-get install valgrind``). Takes about 4 minutes per 2,000-test count.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The script's own folder is first on sys.path: the suites and the environment are
# overhead.py's, so that both scripts measure the same runs.
from overhead import BASE_ARGS, FILES, child_env, machine_line, write_suite

#: What is counted: the plugin off (as plain pytest) and the variants with it on.
VARIANTS = {
    "plain": ("-p", "no:energy"),
    "--energy": ("--energy", "--energy-meter=model"),
    "--energy-json": ("--energy", "--energy-meter=model", "--energy-json=results.json"),
}
COLLECTED = re.compile(r"Collected : (\d+)")


def count(folder: Path, args: tuple[str, ...], env: dict[str, str], scratch: Path) -> int:
    """Instructions of one pytest run of ``folder`` with ``args`` (after a warm-up run)."""
    command = [sys.executable, "-m", "pytest", *BASE_ARGS, *args]
    for counted in (False, True):
        shutil.rmtree(folder / ".energy", ignore_errors=True)
        prefix: list[str] = []
        if counted:
            out = scratch / "callgrind.out"
            prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        done = subprocess.run(
            [*prefix, *command], check=False, cwd=folder, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-2000:]
            raise SystemExit(f"pytest {' '.join(args)} exited {done.returncode}:\n{tail}")
    match = COLLECTED.search(done.stderr)
    if match is None:
        raise SystemExit(f"no instruction count in callgrind's output:\n{done.stderr[-2000:]}")
    return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000, help="trivial tests in the big suite")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, from {', '.join(VARIANTS)} (plain is always counted)",
    )
    args = parser.parse_args()
    chosen = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown or args.tests < 2:
        parser.error(f"unknown variants {unknown}" if unknown else "--tests: at least 2")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    names = ["plain", *(v for v in VARIANTS if v in chosen and v != "plain")]
    print(machine_line())
    print(f"callgrind instruction counts, PYTHONHASHSEED=0, one process each; {args.tests} tests")
    with tempfile.TemporaryDirectory(prefix="energy-instructions-") as scratch:
        root = Path(scratch)
        env = child_env(root / "pycache")
        env.update(PYTHONHASHSEED="0", PYTEST_ENERGY_CHECKPOINT_SECONDS="3600")
        one, big = root / "one", root / "big"
        write_suite(one, 1, 1)
        write_suite(big, args.tests, FILES)
        counts = {
            (suite.name, name): count(suite, VARIANTS[name], env, root)
            for name in names
            for suite in (one, big)
        }
    plain_one, plain_big = counts[("one", "plain")], counts[("big", "plain")]
    print(f"  {'variant':<14} {'one test':>14} {'fixed cost':>12} {'big suite':>16} {'a test':>10}")
    for name in names:
        fixed = counts[("one", name)] - plain_one
        per_test = (counts[("big", name)] - plain_big - fixed) / (args.tests - 1)
        print(
            f"  {name:<14} {counts[('one', name)]:>14,} {fixed / 1e6:>+10.1f} M "
            f"{counts[('big', name)]:>16,} {per_test / 1e3:>+8.1f} k"
        )
    print(
        "  fixed cost: the one-test suite's count above plain's; a test: the big suite's above "
        "plain's, less the fixed cost, per test"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
