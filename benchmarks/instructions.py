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

Per test beyond the fixed cost is ``(big - plain_big - (one - plain_one)) / (tests - 1)``,
then split by where it runs (``callgrind_annotate``'s count of each shared object): the
interpreter (the plugin's Python, and pytest's for the hooks it adds), SQLite (the
history), zlib (the history's compressed copy, CRC-32 of the results file), OpenSSL (the
SHA-256 of the stored run), libc.

Instructions are not time (a system call or a cache miss costs more than its count says),
but a change that removes instructions from the plugin's path removes its time with them.
Two caveats, measured on the project's Intel VM (docs/overhead.md):

* valgrind runs a CPU without SHA extensions, so OpenSSL hashes in software: the SHA-256
  of a 2,000-test run's 1.3 MB counts ~36 M instructions (18 k a test) where the CPU's
  SHA-NI hashes it in under 1 ms;
* the counts of one tree move by about +-0.2 % between runs (+-3.5 k a test at 2,000
  tests): the measured floats differ, and with them the digits written for each.

Needs valgrind (``apt-get install valgrind``). Takes about 4 minutes per 2,000-test count.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

# The script's own folder is first on sys.path: the suites and the environment are
# overhead.py's, so that both scripts measure the same runs.
from overhead import BASE_ARGS, FILES, PER_TEST_TARGET_MS, child_env, machine_line, write_suite

#: What is counted: the plugin off (as plain pytest) and the variants with it on.
VARIANTS = {
    "plain": ("-p", "no:energy"),
    "--energy": ("--energy", "--energy-meter=model"),
    "--energy-json": ("--energy", "--energy-meter=model", "--energy-json=results.json"),
}
COLLECTED = re.compile(r"Collected : (\d+)")
#: A function's line in ``callgrind_annotate --inclusive=no``: count, file:function, object.
ANNOTATED = re.compile(r"\s*([\d,]+) \([^)]*\)\s+(\S.*?)(?: \[(?P<object>[^]]+)\])?$")
#: Where instructions run, by the shared object's name (the first that matches).
LIBRARIES = (
    ("sqlite", ("sqlite",)),
    ("zlib", ("libz.", "zlib.")),
    ("openssl", ("libcrypto", "_hashlib")),
    ("libc", ("libc.",)),
    ("python", ("python", "cpython")),
)


def library(shared_object: str | None, function: str) -> str:
    """The name of where a function runs; an inlined one has no object, only its file."""
    if shared_object is None:
        return "python" if "/Python-" in function or function.startswith("./") else "other"
    name = shared_object.rsplit("/", 1)[-1]
    return next((lib for lib, marks in LIBRARIES if any(m in name for m in marks)), "other")


def by_library(out: Path) -> Counter[str]:
    """Instructions of one count by library (:data:`LIBRARIES`)."""
    done = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", str(out)],
        check=False,
        capture_output=True,
        text=True,
    )
    totals: Counter[str] = Counter()
    for line in done.stdout.splitlines():
        match = ANNOTATED.fullmatch(line)
        if match and "PROGRAM TOTALS" not in line:
            totals[library(match["object"], match[2])] += int(match[1].replace(",", ""))
    return totals


def count(
    folder: Path, args: tuple[str, ...], env: dict[str, str], scratch: Path
) -> tuple[int, Counter[str]]:
    """Instructions of one pytest run of ``folder`` with ``args`` (after a warm-up run),
    in all and by library."""
    command = [sys.executable, "-m", "pytest", *BASE_ARGS, *args]
    for counted in (False, True):
        shutil.rmtree(folder / ".energy", ignore_errors=True)
        prefix: list[str] = []
        if counted:
            out = scratch / "callgrind.out"
            out.unlink(missing_ok=True)
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
    return int(match.group(1)), by_library(scratch / "callgrind.out")


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
    plain_one, plain_big = counts[("one", "plain")][0], counts[("big", "plain")][0]
    plain_test = (plain_big - plain_one) / (args.tests - 1)
    print(
        f"  {'variant':<14} {'one test':>14} {'fixed cost':>12} {'share':>6} "
        f"{'big suite':>16} {'a test':>10} {'share':>6}"
    )
    shares = {}
    for name in names:
        fixed = counts[("one", name)][0] - plain_one
        per_test = (counts[("big", name)][0] - plain_big - fixed) / (args.tests - 1)
        shares[name] = per_test / plain_test
        print(
            f"  {name:<14} {counts[('one', name)][0]:>14,} {fixed / 1e6:>+10.1f} M "
            f"{fixed / plain_one:>6.1%} {counts[('big', name)][0]:>16,} "
            f"{per_test / 1e3:>+8.1f} k {shares[name]:>6.1%}"
        )
    print(
        "  fixed cost: the one-test suite's count above plain's (share: of plain's one-test "
        "process); a test: the big suite's above plain's, less the fixed cost, per test "
        f"(share: of plain pytest's {plain_test / 1e6:.3f} M a trivial test)"
    )
    for name in names[1:]:
        if shares[name] > 0:
            # Instructions are not time, but at the same instructions per cycle the shares
            # carry over: the machine speed at which the per-test target is just met.
            print(
                f"  {name}: under the {PER_TEST_TARGET_MS:g}-ms per-test target wherever plain "
                f"pytest runs a trivial test in under {PER_TEST_TARGET_MS / shares[name]:.2f} ms "
                "(at equal instructions per cycle)"
            )
    print("  a test, by library (k instructions):")
    for name in names[1:]:
        parts = per_test_by_library(counts, name, args.tests)
        shown = ", ".join(f"{lib} {k / 1e3:+.1f}" for lib, k in parts.items() if abs(k) >= 50)
        print(f"    {name:<14} {shown}")
    print("  (openssl: SHA-256 in software under valgrind, ~10x its cost on a CPU with SHA-NI)")
    return 0


def per_test_by_library(
    counts: dict[tuple[str, str], tuple[int, Counter[str]]], name: str, tests: int
) -> dict[str, float]:
    """Instructions a test beyond the fixed cost, split as :func:`by_library` splits them."""
    one, big = counts[("one", name)][1], counts[("big", name)][1]
    plain_one, plain_big = counts[("one", "plain")][1], counts[("big", "plain")][1]
    libraries = sorted(set(one) | set(big) | set(plain_one) | set(plain_big))
    parts = {
        lib: (big[lib] - plain_big[lib] - (one[lib] - plain_one[lib])) / (tests - 1)
        for lib in libraries
    }
    return dict(sorted(parts.items(), key=lambda item: -abs(item[1])))


if __name__ == "__main__":
    raise SystemExit(main())
