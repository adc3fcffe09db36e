"""What the plugin costs a test suite: off (installed, no ``--energy``) and on (the model meter).

Not a test: a script that prints figures measured in the same run, on the machine it runs on.
It generates a suite of 2,000 trivial tests (``def test_n(): assert n == n``, 20 files) in a
temporary folder and runs every pytest as its own ``python -m pytest -q -p no:cacheprovider``
process, with the environment cleaned of ``PYTEST_ADDOPTS``, ``PYTEST_PLUGINS`` and
``PYTEST_ENERGY_*``, and with a bytecode cache in the temporary folder
(``PYTHONPYCACHEPREFIX``; a ``PYTHONDONTWRITEBYTECODE`` in the environment is dropped, since a
user's installed plugin imports from cached bytecode).

(a) Startup, plugin installed but off, against ``-p no:energy``: the wall time of a pytest
    process on a one-test suite and of ``--collect-only -q`` on the 2,000-test suite, in
    pairs (see "Pairs" below). Prints the median paired difference in ms with the
    interquartile range of the differences, the difference of the fastest runs, and the child
    processes' CPU time (user + sys) difference.

    On a shared 2-core machine a ~0.3-s pytest process varies by tens of ms from run to run,
    so 15 pairs cannot resolve 10 ms. The script therefore also times, precisely, what the
    difference is made of: the imports (every module the plugin adds to a run where it is off,
    found by diffing ``sys.modules`` of an in-process ``pytest.main`` with and without ``-p
    no:energy``, imported in fresh processes that have already imported pytest; with each
    module's own ``-X importtime`` and the ``-X importtime`` of ``import pytest_energy.plugin``
    alone), and the hooks (alternating in-process ``pytest.main`` runs of the tiny suite, with
    and without ``-p no:energy``, once every import is done). Then the whole difference in one
    figure: one ``pytest.main`` per fresh process that has already imported pytest and,
    untimed, the modules outside the plugin both runs load, in pairs (the plugin
    loaded by pytest's entry points, first-use caches and garbage collection included,
    interpreter start-up noise excluded). Targets: that fresh-process difference under 10 ms,
    and the whole-process differences (both rows) under 10 ms too.

(b) The fixed cost of ``--energy`` (issue 16): the one-test suite with ``--energy
    --energy-meter=model`` against the plugin off, in whole-process pairs, and what
    that difference is made of, timed precisely: the imports ``--energy`` adds (every module
    an ``--energy`` run loads that a run with the plugin off does not, imported in fresh
    processes that have imported pytest) and the session's own work once every import is done
    (alternating in-process ``pytest.main`` runs: meters opened, idle bracket, the energy
    section, the history append), and the whole of it as one fresh-process figure, as in (a),
    also timed from ``pytest.main``'s start (the child's ``time.perf_counter``) to the
    process's end (the parent's, one clock on Linux): the interpreter's exit, which tears
    down every module the run imported, included; its start-up, identical on both sides
    but tens of ms of noise in each whole-process pair, left out. Target: that difference
    under 30 ms, and ``pytest.main``'s alone; for ``--energy --energy-meter=model`` and for
    ``--energy`` alone (the default meter).

(c) Side by side, per suite: plain (``-p no:energy``), plugin installed but off, ``--energy
    --energy-meter=model`` (history on, the default), ``+ --energy-json``, and ``+
    --energy-html``; on generated suites of 2,000 and 20,000 trivial tests and on two real
    third-party suites installed from their sdists into a scratch folder (``toolz`` and
    ``python-dateutil``, pinned below, with their test dependencies; skipped with a line
    when the package index cannot be reached). Each variant runs ``--reps`` times in a rotated
    order, every ``--energy`` run without ``.energy/`` from an earlier one; with concurrent
    pairs each variant beside a plain run of its own, plus plain beside plain, the pairing's
    own error (an A/A row); with alternating pairs, in an alternately reversed order, each
    against the repetition's one plain run. Prints the median wall time, the added ms per
    test against plain (paired differences / tests, with their IQR), the wall ratio, and the
    median peak resident memory of the pytest process (``ru_maxrss`` from ``wait4``) and its
    difference from plain, and the paired difference of the child's CPU time (user + system)
    per test, which a host's load moves less than wall time; and how far apart the plain
    runs were, so a noisy machine shows. Targets: ``--energy --energy-json`` (history on)
    under 0.1 ms per test on both generated suites, and under 50 MB extra peak memory at
    20,000 tests. A third-party suite may have failing tests of its own: every variant must
    end with the same outcome counts as plain.

(d) Profile: an in-process ``cProfile`` run of the 2,000-test suite with ``--energy
    --energy-json``, the plugin's functions by cumulative time and all functions by own time:
    where the next regression will show. Then garbage collection by phase (start and
    collection, test loop, end), plain and with ``--energy --energy-json``: collections
    counted by ``gc.get_stats()`` at the phase edges and each phase's CPU time. A full
    collection comes every eleventh of the middle ones, so a suite can end just before or
    just after one, and one more is tens of ms (hundreds at 20,000 tests).
    Printed when a target is missed or with ``--profile``.

(e) The ops meter: the example suite (torch models) without ``--energy``, with the model
    meter and with the ops meter (``ops_meter_check.py``'s measurement), ``--ops-reps`` times
    each in alternating order.

The fixture's own cost per call is ``benchmarks/fixture_overhead.py``.

Run from the repository's virtual environment, where the plugin is installed::

    python benchmarks/overhead.py [--startup-pairs 15] [--reps 3] [--big-reps 2]
        [--tests 2000] [--big-tests 20000] [--no-third-party] [--profile]
        [--ops-reps 3] [--sections abce] [--pairing concurrent|alternating]

Pairs: every whole-process comparison is a series of pairs, one run of each side. With two
usable CPUs the default is ``--pairing concurrent``: a pair's two runs start at once, each
pinned to its own CPU, and within every two pairs each side has each CPU once and starts
first once, so both runs see the same phase of the host. On the project's 2-vCPU VM, whose
speed drifts by a third within minutes, plain beside plain (A/A) had medians within 0.01
ms a test this way in every run (at 2,000 and 20,000 tests; intervals at most 0.05 ms
wide), where runs one after the other (``--pairing alternating``: A B, B A, ...; the
only way with one CPU) spread by an interquartile range of 0.03 ms with an outlier of
-0.78 ms. The A/A row of (c) prints the pairing's own error in every run.

About 20 minutes on 2 cores, most of it python-dateutil's 5,000 tests (``--no-third-party``
skips the third-party suites, ``--big-tests 0`` the 20,000-test suite, ``--sections c`` runs
only the side-by-side table and its profile). A target is judged on a distribution-free
95 % interval for the median of its paired differences (the sign test's; with 5
repetitions the smallest and largest, 93.8 %): PASS when the interval lies under the
target, FAIL when it lies at or above it, UNDECIDED when it holds the target, which more
repetitions (``--reps``, ``--startup-pairs``) resolve. On a host whose speed drifts, the
median alone passed and failed the same package in two runs. Exits 1 unless every target
passed. For context it prints, without running it, the reference figure from the issue:
pytest-codecarbon made the same third-party suites take 1.5-2.0x the wall time of a plain run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import select
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

STARTUP_TARGET_MS = 10.0
FIXED_TARGET_MS = 30.0
PER_TEST_TARGET_MS = 0.1
PEAK_TARGET_MB = 50.0
FILES = 20
CODECARBON_REFERENCE = (
    "reference (from the issue, not run here): pytest-codecarbon made toolz, attrs and "
    "python-dateutil take 1.5-2.0x the wall time of a plain run"
)
#: The third-party suites, pinned: their sdists carry their tests.
THIRD_PARTY = {
    "toolz": ("toolz==1.2.0", ()),
    "python-dateutil": ("python-dateutil==4.0.0", ("tests",)),
}
#: What their test suites import besides the package itself.
THIRD_PARTY_TEST_DEPS = ("freezegun", "hypothesis", "pytest-cov")
BASE_ARGS = ("-q", "-p", "no:cacheprovider")
ENERGY_ARGS = ("--energy", "--energy-meter=model")
#: What a user types: the meters this machine has, the model where it has none.
DEFAULT_ARGS = ("--energy",)
OFF_ARGS = ("-p", "no:energy")
OUTCOMES = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?|deselected)")
ENERGY_SECTION = re.compile(r"^=+ energy =+$", re.MULTILINE)

# Printed by a child: the modules loaded by an in-process pytest.main(argv).
_MODULES_PROBE = """
import json, sys
import pytest
before = set(sys.modules)
code = pytest.main(sys.argv[1:])
print("MODULES=" + json.dumps([m for m in sys.modules if m not in before]))
raise SystemExit(int(code))
"""

# Printed by a child that has imported pytest and, untimed, every module the run compared
# with loads (argv[1], JSON): the wall time of importing the modules given after it.
_IMPORT_PROBE = """
import importlib, json, sys, time
import pytest
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception:
        pass
start, cpu = time.perf_counter(), time.process_time()
for name in sys.argv[2:]:
    importlib.import_module(name)
print("SECONDS=%r %r" % (time.perf_counter() - start, time.process_time() - cpu))
"""

# One pytest.main in a fresh process that has imported pytest and, untimed, the modules
# outside the plugin that the plugin-off run loads (argv[1], JSON), so that both sides
# start alike: everything a run adds is timed, the plugin's imports through pytest's own
# entry-point loading, first-use caches and the extra garbage collection included. It
# also prints when pytest.main started (time.perf_counter: CLOCK_MONOTONIC on Linux, one
# clock for every process), for the parent to time the process to its end: the
# interpreter's exit, which tears down every module the run imported, included.
_FRESH_PROBE = """
import contextlib, importlib, io, json, sys, time
import pytest
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception:
        pass
with contextlib.redirect_stdout(io.StringIO()):
    started = wall = time.perf_counter()
    cpu = time.process_time()
    code = pytest.main(sys.argv[2:])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
if code != 0:
    raise SystemExit("pytest.main exited %s" % code)
print("SECONDS=%r %r" % (wall, cpu))
print("STARTED=%r" % started)
"""

# Alternating in-process pytest.main runs of a tiny suite with two sets of extra arguments,
# after a warm-up of each: with every import done, the difference is what the first set's
# hooks (and, for --energy, its meters, idle bracket and session end) cost a session.
_PAIRS_PROBE = """
import contextlib, io, json, shutil, sys, time
import pytest
pairs, first, second = int(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
argv = sys.argv[4:]
def once(extra):
    shutil.rmtree(".energy", ignore_errors=True)
    with contextlib.redirect_stdout(io.StringIO()):
        wall, cpu = time.perf_counter(), time.process_time()
        code = pytest.main([*argv, *extra])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if code != 0:
        raise SystemExit("pytest.main exited %s" % code)
    return wall, cpu
once(first), once(second)
diffs = []
for index in range(pairs):
    if index % 2:
        b = once(second); a = once(first)
    else:
        a = once(first); b = once(second)
    diffs.append([a[0] - b[0], a[1] - b[1]])
print("DIFFS=" + json.dumps(diffs))
"""

# An in-process profile of one pytest run; prints the plugin's functions by cumulative time.
_PROFILE_PROBE = """
import cProfile, io, pstats, sys
import pytest
profile = cProfile.Profile()
code = profile.runcall(pytest.main, sys.argv[1:])
for key, where, title in (
    ("cumulative", "pytest_energy", "pytest_energy functions by cumulative time"),
    ("tottime", "", "all functions by own time"),
):
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).sort_stats(key)
    stats.print_stats(where, 22)
    text = out.getvalue()
    print("PROFILE " + title)
    print(text[text.find("   ncalls"):])
"""

#: Full garbage collections by phase (a gc.callbacks timer): a suite of a given size can end
#: just before or just after one, and one more full collection is tens of milliseconds.
_GC_PROBE = """
import gc, sys, time
import pytest
# Counted with gc.get_stats() at the phase edges, not with a gc.callbacks timer: a callback
# makes CPython build an info dict per collection, and those allocations move when the
# next collection comes (a timer showed a full collection in the test loop that a run
# without it does not make).
marks = []
def mark(name):
    marks.append((name, [g["collections"] for g in gc.get_stats()], time.process_time()))
class Phases:
    def pytest_collection_finish(self):
        mark("test loop")
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self):
        mark("end")
mark("start and collection")
pytest.main(sys.argv[1:], plugins=[Phases()])
mark("")
parts = []
for (where, before, t0), (_, after, t1) in zip(marks, marks[1:]):
    young, middle, full = (b - a for a, b in zip(before, after))
    parts.append(f"{where} {full} full, {young + middle} younger ({t1 - t0:.2f} s CPU)")
print("GC " + "; ".join(parts))
"""


@dataclass(frozen=True)
class Sample:
    """One child process: wall seconds, CPU seconds (user + sys of it and its children), and
    its peak resident memory in MB."""

    wall: float
    cpu: float
    peak_mb: float = 0.0
    #: When the parent saw it end (time.perf_counter).
    ended: float = 0.0


def machine_line() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    logical = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    import pytest

    from pytest_energy import __version__

    return (
        f"machine: {model}, {logical} logical CPUs ({usable} usable), "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"pytest {pytest.__version__}, pytest-energy {__version__}"
    )


def load_line() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average: unknown"
    return f"load average (1/5/15 min): {one:.2f} {five:.2f} {fifteen:.2f}"


def child_env(cache: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYTEST_ENERGY_")
        and key
        not in (
            "PYTEST_ADDOPTS",
            "PYTEST_PLUGINS",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
            "PYTHONDONTWRITEBYTECODE",
        )
    }
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def write_suite(folder: Path, tests: int, files: int) -> None:
    folder.mkdir(parents=True)
    # An ini file makes the folder the rootdir: no parent configuration is picked up.
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    per_file = -(-tests // files)
    for index in range(files):
        numbers = range(index * per_file, min(tests, (index + 1) * per_file))
        body = "".join(f"def test_{n}():\n    assert {n} == {n}\n\n\n" for n in numbers)
        (folder / f"test_trivial_{index:02d}.py").write_text(body, encoding="utf-8")


#: How the two runs of a pair are timed (``--pairing``). "concurrent": both at once, each
#: pinned to its own CPU (which side gets which CPU and starts first is balanced by
#: :func:`concurrent_plan`), so both see the same phase of a host whose speed drifts; on
#: the project's 2-vCPU VM, plain beside plain (12 pairs of 2,000 trivial tests) differed
#: by an interquartile range of 0.001 ms a test this way, and by 0.03 ms, with a -0.78-ms
#: outlier, one after the other. "alternating": one after the other (A B, B A, ...), for a
#: machine with one usable CPU. Set by :func:`main`.
PAIRING = "alternating"
#: The two CPUs a concurrent pair is pinned to.
PAIR_CPUS = (0, 0)


@dataclass(frozen=True)
class Command:
    """A child to run: ``python argv`` in ``cwd``, and what its run must show."""

    argv: tuple[str, ...]
    cwd: Path
    env: dict[str, str]
    expect: str | None = None
    accept: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class Running:
    command: Command
    proc: subprocess.Popen[bytes]
    started: float
    output: IO[bytes]


def start_child(command: Command, cpu: int | None = None) -> Running:
    """Start ``command``, pinned to ``cpu`` if given; its output goes to a temporary file."""
    output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by reap()
    pin = None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu}))
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *command.argv],
        cwd=command.cwd,
        env=command.env,
        stdout=output,
        stderr=subprocess.STDOUT,
        preexec_fn=pin,  # noqa: PLW1509 - the script starts no threads
    )
    return Running(command, proc, started, output)


def reap(children: Sequence[Running]) -> list[tuple[Sample, str]]:
    """Wait for every child, each timed to its own end (whichever ends first is reaped first);
    their wall and CPU time, peak memory and output, in the order given."""
    by_pid = {child.proc.pid: child for child in children}
    done: dict[int, tuple[Sample, str]] = {}
    while len(done) < len(children):
        pid = next_ended([p for p in by_pid if p not in done])
        # wait4, not wait: this child's own resource usage, with its peak resident memory
        # (RUSAGE_CHILDREN gives the largest of all children so far, not this one's). It
        # blocks for the last child, so the end is read after it, not before.
        _, status, usage = os.wait4(pid, 0)
        ended = time.perf_counter()
        child = by_pid[pid]
        child.proc.returncode = returncode = os.waitstatus_to_exitcode(status)
        child.output.seek(0)
        text = child.output.read().decode("utf-8", errors="replace")
        child.output.close()
        command = child.command
        if returncode not in command.accept or (
            command.expect is not None and command.expect not in text
        ):
            raise SystemExit(
                f"child failed (exit {returncode}): {' '.join(command.argv)}\n{text[-3000:]}"
            )
        cpu = usage.ru_utime + usage.ru_stime
        peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
        done[pid] = Sample(ended - child.started, cpu, peak_mb, ended), text
    return [done[child.proc.pid] for child in children]


def next_ended(pids: Sequence[int]) -> int:
    """The first of ``pids`` (children) to end, not yet reaped: waited on through their
    pidfds (Linux), so no other child of this process is reaped by mistake."""
    if len(pids) == 1 or not hasattr(os, "pidfd_open"):
        # wait4 on it blocks until it ends (concurrent pairs, which need this to time the
        # second child, pin CPUs with sched_setaffinity: Linux, where pidfds exist).
        return pids[0]
    fds = {os.pidfd_open(pid): pid for pid in pids}
    try:
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        ready, _ = poller.poll()[0]
        return fds[ready]
    finally:
        for fd in fds:
            os.close(fd)


def run_child(
    argv: Sequence[str],
    cwd: Path,
    env: dict[str, str],
    expect: str | None = None,
    accept: Sequence[int] = (0,),
) -> tuple[Sample, str]:
    """Run ``python argv`` to completion; its wall and CPU time, peak memory, and output."""
    return run_command(Command(tuple(argv), cwd, env, expect, tuple(accept)))


def run_command(command: Command) -> tuple[Sample, str]:
    return reap([start_child(command)])[0]


def concurrent_plan(index: int) -> tuple[bool, bool]:
    """For the ``index``-th concurrent pair: whether the CPUs are swapped, and whether the
    second command starts first.

    Two things favour a side: its CPU, and starting first (the parent starting the second
    child competes with the first; a few ms). Both swap within each two pairs (0 and 1, 2
    and 3, ...), so each such two give each side each CPU once and each start position once,
    and four give every combination. Unbalanced (one side started first in all five pairs,
    and had the same CPU in four), an A/A check measured a bias of 1.5 % at 20,000 tests.
    """
    return index % 2 == 1, index % 4 in (1, 2)


def run_pair(
    index: int, first: Command, second: Command
) -> tuple[tuple[Sample, str], tuple[Sample, str]]:
    """The ``index``-th pair of ``first`` and ``second`` (counted per comparison, from 0), as
    :data:`PAIRING` says: at once on two CPUs, or one after the other, the order swapped
    every other pair."""
    if PAIRING == "concurrent":
        swap_cpus, second_first = concurrent_plan(index)
        one, two = PAIR_CPUS[::-1] if swap_cpus else PAIR_CPUS
        if second_first:
            b, a = reap([start_child(second, two), start_child(first, one)])
        else:
            a, b = reap([start_child(first, one), start_child(second, two)])
        return a, b
    if index % 2 == 0:
        a = run_command(first)
        b = run_command(second)
    else:
        b = run_command(second)
        a = run_command(first)
    return a, b


def pairing_line() -> str:
    if PAIRING == "concurrent":
        return (
            f"pairing: concurrent (each pair's two runs at once, on CPUs {PAIR_CPUS[0]} and "
            f"{PAIR_CPUS[1]}; within every two pairs each side has each CPU and starts first "
            "once)"
        )
    return "pairing: alternating (each pair's runs one after the other, A B, B A, ...)"


def pytest_child(
    args: Sequence[str],
    cwd: Path,
    env: dict[str, str],
    expect: str | None,
    energy: bool,
    accept: Sequence[int] = (0,),
) -> Sample:
    sample, output = run_child(["-m", "pytest", *BASE_ARGS, *args], cwd, env, expect, accept)
    return checked_energy(sample, output, pytest_label(args), energy)


def pytest_command(
    args: Sequence[str], cwd: Path, env: dict[str, str], expect: str | None
) -> Command:
    return Command(("-m", "pytest", *BASE_ARGS, *args), cwd, env, expect)


def pytest_label(args: Sequence[str]) -> str:
    return f"pytest {' '.join(args)}"


def checked_energy(sample: Sample, output: str, label: str, energy: bool) -> Sample:
    # The energy section is the proof that the plugin measured (or stayed silent).
    if energy != bool(ENERGY_SECTION.search(output)):
        raise SystemExit(f"unexpected output for {label}:\n{output[-2000:]}")
    return sample


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


#: The confidence of the interval a target is judged on (:func:`median_interval`).
CONFIDENCE = 0.95


def median_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """A distribution-free interval for the median of paired differences, the sign test's:
    the k-th smallest and the k-th largest value, with k the largest rank whose coverage
    ``1 - 2 P(Binomial(n, 1/2) < k)`` reaches :data:`CONFIDENCE`; with too few values for
    that (5 give 93.8 %, 3 give 75 %), the smallest and the largest. Unlike the spread of
    the differences, it narrows as repetitions are added. Returns (low, high, coverage)."""
    ordered = sorted(values)
    n = len(ordered)

    def coverage(k: int) -> float:
        return float(1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n)

    k = 1
    while 2 * (k + 1) <= n + 1 and coverage(k + 1) >= CONFIDENCE:
        k += 1
    return ordered[k - 1], ordered[n - k], coverage(k)


def judged(values: Sequence[float], target: float) -> tuple[bool, str]:
    """Whether a cost is under ``target``, and the words for it, from its paired
    differences: PASS when the median's interval (:func:`median_interval`) lies under the
    target, FAIL when it lies at or above it, UNDECIDED when it holds the target. On a host
    whose speed drifts, the median alone passed and failed the same package in two runs."""
    low, high, coverage = median_interval(values)
    median = statistics.median(values)
    interval = f"median {median:+.3g}, {coverage:.1%} interval [{low:+.3g}, {high:+.3g}]"
    if high < target:
        return True, f"PASS ({interval})"
    if low >= target:
        return False, f"FAIL ({interval})"
    return False, f"UNDECIDED ({interval} holds {target:g}: more repetitions narrow it)"


# -- (a) startup ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Paired:
    label: str
    on: list[Sample]
    off: list[Sample]

    def diffs(self, attr: str) -> list[float]:
        return [getattr(a, attr) - getattr(b, attr) for a, b in zip(self.on, self.off, strict=True)]

    def wall_ms(self) -> list[float]:
        """The pairs' wall-time differences in ms, as the targets are judged."""
        return [d * 1e3 for d in self.diffs("wall")]


def paired_runs(
    pairs: int,
    first: Sequence[str],
    second: Sequence[str],
    cwd: Path,
    env: dict[str, str],
    expect: str,
) -> tuple[list[Sample], list[Sample]]:
    a_runs: list[Sample] = []
    b_runs: list[Sample] = []
    for index in range(pairs):
        (a, a_output), (b, b_output) = run_pair(
            index, pytest_command(first, cwd, env, expect), pytest_command(second, cwd, env, expect)
        )
        a_runs.append(checked_energy(a, a_output, pytest_label(first), energy=False))
        b_runs.append(checked_energy(b, b_output, pytest_label(second), energy=False))
    return a_runs, b_runs


def importtime_ms(env: dict[str, str], cwd: Path) -> float:
    """Cumulative ``-X importtime`` of ``pytest_energy.plugin`` in a process that has pytest."""
    _, output = run_child(
        ["-X", "importtime", "-c", "import pytest; import pytest_energy.plugin"], cwd, env
    )
    pattern = re.compile(r"^import time:\s*\d+\s*\|\s*(\d+)\s*\| (\S+)$")
    for line in output.splitlines():
        match = pattern.match(line)
        if match and match.group(2) == "pytest_energy.plugin":
            return int(match.group(1)) / 1000
    raise SystemExit(f"no pytest_energy.plugin line in -X importtime output:\n{output[-2000:]}")


def added_modules(
    env: dict[str, str], tiny: Path, first: Sequence[str] = (), second: Sequence[str] = OFF_ARGS
) -> tuple[list[str], list[str]]:
    """Modules an in-process pytest run with ``first`` loads that one with ``second`` does
    not, and the modules the run with ``second`` loads."""

    def loaded(extra: Sequence[str]) -> list[str]:
        shutil.rmtree(tiny / ".energy", ignore_errors=True)
        _, output = run_child(["-c", _MODULES_PROBE, *BASE_ARGS, *extra, str(tiny)], tiny, env)
        line = next(x for x in output.splitlines() if x.startswith("MODULES="))
        names: list[str] = json.loads(line[len("MODULES=") :])
        return names

    without = loaded(second)
    known = set(without)
    return [name for name in loaded(first) if name not in known], without


def import_seconds(
    env: dict[str, str], cwd: Path, modules: Sequence[str], preloaded: Sequence[str]
) -> tuple[float, float]:
    """Wall and CPU seconds of importing ``modules`` in a fresh process that has pytest and
    ``preloaded`` (what the run compared with loads: its imports are not the difference)."""
    _, output = run_child(["-c", _IMPORT_PROBE, json.dumps(list(preloaded)), *modules], cwd, env)
    line = next(x for x in output.splitlines() if x.startswith("SECONDS="))
    wall, cpu = line[len("SECONDS=") :].split()
    return float(wall), float(cpu)


def pair_diffs(
    env: dict[str, str], tiny: Path, pairs: int, first: Sequence[str], second: Sequence[str]
) -> list[list[float]]:
    """Paired in-process differences (wall, CPU seconds): ``first`` minus ``second``."""
    argv = ["-c", _PAIRS_PROBE, str(pairs), json.dumps(list(first)), json.dumps(list(second))]
    _, output = run_child([*argv, *BASE_ARGS, str(tiny)], tiny, env)
    line = next(x for x in output.splitlines() if x.startswith("DIFFS="))
    diffs: list[list[float]] = json.loads(line[len("DIFFS=") :])
    return diffs


def fresh_diffs(
    env: dict[str, str],
    tiny: Path,
    pairs: int,
    first: Sequence[str],
    second: Sequence[str],
    preloaded: Sequence[str],
) -> list[tuple[float, float, float]]:
    """Paired differences of one pytest.main in a fresh process each, ``first`` minus
    ``second`` (see ``_FRESH_PROBE``): its wall and CPU seconds, and the wall seconds from
    its start to the process's end (the interpreter's exit included)."""
    # Test modules and the plugin itself load inside pytest.main, as they do for a user.
    outside = [
        name
        for name in preloaded
        if name.split(".")[0] != "pytest_energy" and not name.startswith(("test_", "conftest"))
    ]

    def command(extra: Sequence[str]) -> Command:
        argv = ("-c", _FRESH_PROBE, json.dumps(outside), *BASE_ARGS, *extra, str(tiny))
        return Command(argv, tiny, env)

    def seconds(sample: Sample, output: str) -> tuple[float, float, float]:
        line = next(x for x in output.splitlines() if x.startswith("SECONDS="))
        wall, cpu = line[len("SECONDS=") :].split()
        started = next(x for x in output.splitlines() if x.startswith("STARTED="))
        return float(wall), float(cpu), sample.ended - float(started[len("STARTED=") :])

    diffs = []
    for index in range(pairs):
        # Here, not in the children: a concurrent pair's plain side must not remove the
        # history its --energy side is writing.
        shutil.rmtree(tiny / ".energy", ignore_errors=True)
        a_run, b_run = run_pair(index, command(first), command(second))
        a, b = seconds(*a_run), seconds(*b_run)
        diffs.append((a[0] - b[0], a[1] - b[1], a[2] - b[2]))
    return diffs


def module_self_ms(
    env: dict[str, str], cwd: Path, modules: Sequence[str], preloaded: Sequence[str]
) -> dict[str, float]:
    """Each module's own import time (-X importtime, self column) after ``import pytest``
    and ``preloaded``."""
    code = (
        "import importlib, pytest\n"
        f"for name in {list(preloaded)!r}:\n"
        "    try:\n        importlib.import_module(name)\n    except Exception:\n        pass\n"
        + "".join(f"import {name}\n" for name in modules)
    )
    _, output = run_child(["-X", "importtime", "-c", code], cwd, env)
    pattern = re.compile(r"^import time:\s*(\d+)\s*\|\s*\d+\s*\| *(\S+)$")
    found: dict[str, float] = {}
    for line in output.splitlines():
        match = pattern.match(line)
        if match and match.group(2) in modules:
            # A module imported as a parent's dependency has two lines: add them up.
            name = match.group(2)
            found[name] = found.get(name, 0.0) + int(match.group(1)) / 1000
    return found


@dataclass(frozen=True)
class Parts:
    """What a whole-process difference is made of, timed precisely (ms)."""

    ours: list[str]
    others: list[str]
    imports: tuple[float, float, float]  # wall: first quartile, median, third quartile
    imports_cpu: float
    self_ms: dict[str, float]
    work: tuple[float, float, float]  # in-process, imports done
    work_cpu: float
    pairs: int
    reps: int
    #: The whole difference: one pytest.main per fresh process (see _FRESH_PROBE), each
    #: pair's wall difference (the verdicts judge these) and CPU quartiles.
    fresh_ms: list[float]
    fresh_cpu: tuple[float, float, float]
    fresh_pairs: int
    #: The same pairs timed from pytest.main's start to the process's end: what the run
    #: adds to a process, the interpreter's exit included, its identical start-up left out.
    to_end_ms: list[float]
    #: The modules the run compared with loads (imported before the timed part).
    preloaded: list[str]

    @property
    def estimate(self) -> float:
        return self.imports[1] + self.work[1]

    @property
    def fresh(self) -> tuple[float, float, float]:
        return quartiles(self.fresh_ms)

    def fresh_line(self) -> str:
        w1, wmed, w3 = self.fresh
        c1, cmed, c3 = self.fresh_cpu
        return (
            f"{wmed:+.1f} ms wall [IQR {w1:+.1f}, {w3:+.1f}], {cmed:+.1f} ms CPU "
            f"[IQR {c1:+.1f}, {c3:+.1f}] ({self.fresh_pairs} {PAIRING} pairs)"
        )

    def to_end_line(self) -> str:
        e1, emed, e3 = quartiles(self.to_end_ms)
        exit_ms = emed - self.fresh[1]
        return (
            f"{emed:+.1f} ms wall [IQR {e1:+.1f}, {e3:+.1f}] (the same pairs; the exit "
            f"{exit_ms:+.1f} ms of it, by the medians)"
        )


def parts(
    env: dict[str, str], tiny: Path, pairs: int, first: Sequence[str], second: Sequence[str]
) -> Parts:
    """The modules ``first`` adds to a run with ``second`` (imported in fresh processes after
    ``import pytest``, each one's own time), and in-process pairs once every import is done."""
    reps = 9
    modules, preloaded = added_modules(env, tiny, first, second)
    ours = [m for m in modules if m.split(".")[0] == "pytest_energy"]
    timings = [import_seconds(env, tiny, modules, preloaded) for _ in range(reps)]
    selfs = [module_self_ms(env, tiny, ours, preloaded) for _ in range(5)]
    diffs = pair_diffs(env, tiny, 4 * pairs, first, second)
    fresh = fresh_diffs(env, tiny, 2 * pairs, first, second, preloaded)
    ms = 1e3
    return Parts(
        ours=ours,
        others=[m for m in modules if m.split(".")[0] != "pytest_energy"],
        imports=tuple(x * ms for x in quartiles([wall for wall, _ in timings])),  # type: ignore[arg-type]
        imports_cpu=statistics.median(cpu for _, cpu in timings) * ms,
        self_ms={m: statistics.median(run.get(m, 0.0) for run in selfs) for m in ours},
        work=tuple(x * ms for x in quartiles([wall for wall, _ in diffs])),  # type: ignore[arg-type]
        work_cpu=statistics.median(cpu for _, cpu in diffs) * ms,
        pairs=4 * pairs,
        reps=reps,
        fresh_ms=[wall * ms for wall, _, _ in fresh],
        fresh_cpu=tuple(x * ms for x in quartiles([cpu for _, cpu, _ in fresh])),  # type: ignore[arg-type]
        fresh_pairs=2 * pairs,
        to_end_ms=[to_end * ms for _, _, to_end in fresh],
        preloaded=preloaded,
    )


def startup(pairs: int, tiny: Path, suite: Path, env: dict[str, str], tests: int) -> bool:
    print(
        f"\n(a) startup: plugin installed but off vs -p no:energy; whole pytest processes, "
        f"{pairs} {PAIRING} pairs (wall ms; min = difference of the fastest runs; CPU = child "
        "user+sys)"
    )
    off = ("-p", "no:energy")
    rows: list[Paired] = []
    one = paired_runs(pairs, [str(tiny)], [*off, str(tiny)], tiny, env, "1 passed")
    rows.append(Paired("tiny suite (1 test)", *one))
    collect = ("--collect-only", str(suite))
    many = paired_runs(pairs, collect, [*off, *collect], suite, env, f"{tests} tests collected")
    rows.append(Paired(f"--collect-only, {tests:,} tests", *many))

    print(
        f"  {'run':<28} {'installed':>9} {'no:energy':>9} {'diff':>7} {'IQR of diffs':>16} "
        f"{'min':>7} {'CPU diff':>8} {'CPU IQR':>16}"
    )
    medians: list[float] = []
    for row in rows:
        on_ms = statistics.median(s.wall for s in row.on) * 1e3
        off_ms = statistics.median(s.wall for s in row.off) * 1e3
        best = (min(s.wall for s in row.on) - min(s.wall for s in row.off)) * 1e3
        q1, med, q3 = (x * 1e3 for x in quartiles(row.diffs("wall")))
        c1, cmed, c3 = (x * 1e3 for x in quartiles(row.diffs("cpu")))
        print(
            f"  {row.label:<28} {on_ms:>9.1f} {off_ms:>9.1f} {med:>+7.1f} "
            f"[{q1:>+6.1f},{q3:>+7.1f}] {best:>+7.1f} {cmed:>+8.1f} [{c1:>+6.1f},{c3:>+7.1f}]"
        )
        medians.append(med)

    reps = 9
    plugin_ms = statistics.median(importtime_ms(env, tiny) for _ in range(reps))
    part = parts(env, tiny, pairs, [], OFF_ARGS)
    ours, others, self_ms, cpu_ms = part.ours, part.others, part.self_ms, part.imports_cpu
    a1, amed, a3 = part.imports
    h1, hmed, h3 = part.work
    hcpu, hook_pairs, estimate = part.work_cpu, part.pairs, part.estimate
    print("  in-process parts (what the whole-process difference is made of, timed precisely):")
    print(
        f"    imports: every module the plugin adds to a run with it off, after import pytest: "
        f"{amed:.1f} ms wall [IQR {a1:.1f}, {a3:.1f}], {cpu_ms:.1f} ms CPU "
        f"(median of {reps} fresh processes)"
    )
    print(
        f"      {len(ours)} of ours, own time each (-X importtime self, median of 5): "
        + ", ".join(f"{m} {ms:.1f}" for m, ms in sorted(self_ms.items(), key=lambda x: -x[1]))
    )
    print(f"      {len(others)} others: {', '.join(others) if others else '-'}")
    print(f"      import pytest_energy.plugin alone (-X importtime cumulative): {plugin_ms:.1f} ms")
    print(
        f"    hooks: the plugin's hooks in a run with it off (in-process pytest.main of the tiny "
        f"suite, {hook_pairs} alternating pairs, imports done): {hmed:+.2f} ms wall "
        f"[IQR {h1:+.2f}, {h3:+.2f}], {hcpu:+.2f} ms CPU"
    )
    print(f"    estimated startup cost (imports + hooks): {estimate:.1f} ms")
    print(
        "  the whole difference, one pytest.main per fresh process after import pytest (the "
        f"plugin loaded by pytest, as for a user): {part.fresh_line()}"
    )
    print(f"  from pytest.main's start to the process's end: {part.to_end_line()}")
    ok, word = judged(part.fresh_ms, STARTUP_TARGET_MS)
    print(
        f"  target: under {STARTUP_TARGET_MS:g} ms, judged on the fresh-process differences "
        f"(ms): {word}"
    )
    # Whole processes add the interpreter's start-up noise, but also whatever the plugin's
    # installation costs before pytest.main (its entry point, its distribution's metadata).
    for row in rows:
        row_ok, word = judged(row.wall_ms(), STARTUP_TARGET_MS)
        print(f"  target: under {STARTUP_TARGET_MS:g} ms, whole processes, {row.label}: {word}")
        ok = ok and row_ok
    return ok


# -- (b) the fixed cost of --energy ----------------------------------------------------------


def whole_process_pairs(
    pairs: int, tiny: Path, env: dict[str, str], energy_args: Sequence[str]
) -> Paired:
    """The one-test suite with ``energy_args`` beside the plugin off, whole processes."""
    on = [str(tiny), *energy_args]
    on_runs: list[Sample] = []
    off_runs: list[Sample] = []
    for index in range(pairs):
        shutil.rmtree(tiny / ".energy", ignore_errors=True)
        (a, a_output), (b, b_output) = run_pair(
            index,
            pytest_command(on, tiny, env, "1 passed"),
            pytest_command([str(tiny)], tiny, env, "1 passed"),
        )
        on_runs.append(checked_energy(a, a_output, pytest_label(on), energy=True))
        off_runs.append(checked_energy(b, b_output, pytest_label([str(tiny)]), energy=False))
    return Paired("one test", on_runs, off_runs)


def whole_line(row: Paired) -> str:
    q1, med, q3 = (x * 1e3 for x in quartiles(row.diffs("wall")))
    c1, cmed, c3 = (x * 1e3 for x in quartiles(row.diffs("cpu")))
    best = (min(s.wall for s in row.on) - min(s.wall for s in row.off)) * 1e3
    return (
        f"{med:+.1f} ms wall [IQR {q1:+.1f}, {q3:+.1f}], fastest runs {best:+.1f} ms, "
        f"CPU {cmed:+.1f} ms [IQR {c1:+.1f}, {c3:+.1f}]"
    )


def fixed_cost(pairs: int, tiny: Path, env: dict[str, str]) -> bool:
    print(
        f"\n(b) the fixed cost of --energy: the one-test suite with {' '.join(ENERGY_ARGS)} vs "
        f"the plugin off; whole pytest processes, {pairs} {PAIRING} pairs"
    )
    row = whole_process_pairs(pairs, tiny, env, ENERGY_ARGS)
    print(f"  whole process: {whole_line(row)}")

    part = parts(env, tiny, pairs, ENERGY_ARGS, ())
    ours, others, self_ms, reps = part.ours, part.others, part.self_ms, part.reps
    a1, amed, a3 = part.imports
    s1, smed, s3 = part.work
    scpu, session_pairs, estimate = part.work_cpu, part.pairs, part.estimate
    print("  what it is made of:")
    print(
        f"    imports --energy adds ({len(ours)} of ours, {len(others)} others), after import "
        f"pytest: {amed:.1f} ms wall [IQR {a1:.1f}, {a3:.1f}] (median of {reps} processes)"
    )
    heaviest = sorted(self_ms.items(), key=lambda x: -x[1])[:12]
    print("      heaviest (own ms): " + ", ".join(f"{m} {ms:.1f}" for m, ms in heaviest))
    print(f"      others: {', '.join(others) if others else '-'}")
    print(
        f"    the session's own work, imports done and caches warm (meters, idle bracket, "
        f"energy section, history append; {session_pairs} in-process pairs): {smed:+.2f} ms "
        f"wall [IQR {s1:+.2f}, {s3:+.2f}], {scpu:+.2f} ms CPU"
    )
    print(f"    imports + warm session: {estimate:.1f} ms")
    print(
        "  the whole fixed cost, one pytest.main per fresh process after import pytest "
        f"(imports through pytest's plugin loading, first-use caches, GC): {part.fresh_line()}"
    )
    print(
        "  the same, timed from pytest.main's start to the process's end (the interpreter's "
        f"exit, tearing down what the run imported, included): {part.to_end_line()}"
    )
    fresh_ok, fresh_word = judged(part.fresh_ms, FIXED_TARGET_MS)
    ok, word = judged(part.to_end_ms, FIXED_TARGET_MS)
    print(
        f"  target: the fixed cost under {FIXED_TARGET_MS:g} ms, judged on the differences "
        f"from pytest.main's start to the process's end (ms): {word}; on pytest.main alone: "
        f"{fresh_word}"
    )
    # The same quantity with the interpreter's start-up in it too (identical on both sides
    # but tens of ms of noise on each): an interval several times wider.
    _, whole = judged(row.wall_ms(), FIXED_TARGET_MS)
    print(f"  for comparison, the same judgement on the whole-process pairs (ms): {whole}")
    ok = ok and fresh_ok

    # What `pytest --energy` pays: the meters are looked for first (NVML's library, the
    # powercap zones), and only where none answers is the model used, as above.
    meter = default_meter(tiny, env)
    print(f"  the default meter, --energy alone (it chose: {meter}):")
    fresh = fresh_diffs(env, tiny, 2 * pairs, DEFAULT_ARGS, (), part.preloaded)
    fresh_ms = [wall * 1e3 for wall, _, _ in fresh]
    to_end_ms = [to_end * 1e3 for _, _, to_end in fresh]
    w1, wmed, w3 = quartiles(fresh_ms)
    e1, emed, e3 = quartiles(to_end_ms)
    print(
        f"    one pytest.main per fresh process: {wmed:+.1f} ms wall [IQR {w1:+.1f}, {w3:+.1f}] "
        f"({2 * pairs} {PAIRING} pairs); to the process's end {emed:+.1f} ms "
        f"[IQR {e1:+.1f}, {e3:+.1f}]"
    )
    default_row = whole_process_pairs(pairs, tiny, env, DEFAULT_ARGS)
    print(f"    whole process: {whole_line(default_row)}")
    default_fresh_ok, default_fresh = judged(fresh_ms, FIXED_TARGET_MS)
    default_ok, default_word = judged(to_end_ms, FIXED_TARGET_MS)
    _, default_whole = judged(default_row.wall_ms(), FIXED_TARGET_MS)
    print(
        f"    target, judged the same way: to the process's end {default_word}; pytest.main "
        f"alone {default_fresh}; whole processes (for comparison) {default_whole}"
    )
    return ok and default_ok and default_fresh_ok


def default_meter(tiny: Path, env: dict[str, str]) -> str:
    """The meter ``--energy`` alone chooses here, from the run's energy section."""
    shutil.rmtree(tiny / ".energy", ignore_errors=True)
    _, output = run_child(["-m", "pytest", *BASE_ARGS, *DEFAULT_ARGS, str(tiny)], tiny, env)
    found = re.search(r"\s(\w+) \((measured|modelled)\)\s", output)
    return f"{found[1]}, {found[2]}" if found else "not shown"


# -- (c) side by side -------------------------------------------------------------------------


@dataclass(frozen=True)
class Suite:
    """A suite to run: where, with which arguments, and how many tests it runs."""

    name: str
    folder: Path
    args: tuple[str, ...]
    env: dict[str, str]
    tests: int = 0
    #: The outcome counts of a plain run, which every variant must reproduce.
    outcomes: str = ""
    reps: int = 3
    #: Whether the targets apply (the generated suites).
    judged: bool = False


def variants(scratch: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    json_path, html_path = scratch / "results.json", scratch / "report.html"
    energy_json = (*ENERGY_ARGS, f"--energy-json={json_path}")
    return {
        "plain": ("plain (-p no:energy)", OFF_ARGS),
        "off": ("installed, off", ()),
        "energy": ("--energy (model meter)", ENERGY_ARGS),
        "json": ("  + --energy-json", energy_json),
        "html": ("  + --energy-html", (*energy_json, f"--energy-html={html_path}")),
    }


def outcome_counts(output: str) -> str:
    """The run's outcome counts from pytest's last line, e.g. ``3 failed, 5059 passed``."""
    last = [line for line in output.splitlines() if " in " in line and OUTCOMES.search(line)]
    if not last:
        return ""
    return ", ".join(f"{n} {what}" for n, what in OUTCOMES.findall(last[-1]))


def measure_plain(suite: Suite) -> Suite:
    """A warm-up plain run (bytecode cache), which also counts the suite's tests."""
    _, output = run_child(
        ["-m", "pytest", *BASE_ARGS, *OFF_ARGS, *suite.args], suite.folder, suite.env, None, (0, 1)
    )
    counts = outcome_counts(output)
    ran = sum(int(n) for n, what in OUTCOMES.findall(counts) if what not in ("deselected",))
    if not ran:
        raise SystemExit(f"{suite.name}: no tests ran:\n{output[-2000:]}")
    return Suite(
        suite.name, suite.folder, suite.args, suite.env, ran, counts, suite.reps, suite.judged
    )


def side_by_side(suite: Suite, scratch: Path) -> bool:
    table = variants(scratch)
    print(f"\n  {suite.name}: {suite.tests:,} tests ({suite.outcomes}), {suite.reps} repetitions")
    reps = concurrent_reps if PAIRING == "concurrent" else alternating_reps
    pairs = reps(suite, table)
    if suite.judged:
        check_results(scratch / "results.json", suite.tests)

    print(
        f"    {'variant':<24} {'wall s':>7} {'ms/test vs plain':>16} {'IQR':>17} "
        f"{'ratio':>6} {'peak MB':>8} {'+MB':>6} {'CPU ms/test':>11}"
    )
    plains = [plain for runs in pairs.values() for _, plain in runs]
    plain_peak = statistics.median(s.peak_mb for s in plains)
    wall = statistics.median(s.wall for s in plains)
    label = table["plain"][0]
    print(f"    {label:<24} {wall:>7.2f} {'-':>16} {'':>17} {'1.00x':>6} {plain_peak:>8.1f}")
    added: dict[str, list[float]] = {}  # ms a test, each pair's
    extra_mb: dict[str, float] = {}
    for name, runs in pairs.items():
        label = table[name][0] if name != "plain" else "plain beside plain (A/A)"
        wall = statistics.median(x.wall for x, _ in runs)
        peak = statistics.median(x.peak_mb for x, _ in runs)
        extra_mb[name] = peak - plain_peak
        diffs = [(x.wall - y.wall) / suite.tests * 1e3 for x, y in runs]
        added[name] = diffs
        q1, med, q3 = quartiles(diffs)
        ratio = statistics.median(x.wall / y.wall for x, y in runs)
        cpu = statistics.median((x.cpu - y.cpu) / suite.tests * 1e3 for x, y in runs)
        print(
            f"    {label:<24} {wall:>7.2f} {med:>+16.3f} [{q1:>+7.3f},{q3:>+7.3f}] "
            f"{ratio:>5.2f}x {peak:>8.1f} {extra_mb[name]:>+6.1f} {cpu:>+11.3f}"
        )
    plain_walls = [s.wall for s in plains]
    print(
        f"    plain runs took {min(plain_walls):.2f} to {max(plain_walls):.2f} s "
        f"({max(plain_walls) / min(plain_walls) - 1:.0%} apart): the machine's own noise; "
        "CPU ms/test is the paired difference of the child's user + system time"
    )
    if "plain" in added:
        low, high, coverage = median_interval(added["plain"])
        print(
            f"    the pairing's own error (plain beside plain): median "
            f"{statistics.median(added['plain']):+.4f} ms/test, {coverage:.1%} interval "
            f"[{low:+.4f}, {high:+.4f}]"
        )
    if not suite.judged:
        return True
    ok, word = judged(added["json"], PER_TEST_TARGET_MS)
    print(
        f"    target: --energy --energy-json (history on) under {PER_TEST_TARGET_MS:g} ms added "
        f"per test (ms): {word}"
    )
    if suite.tests >= 20000:
        memory_ok = extra_mb["json"] < PEAK_TARGET_MB
        print(
            f"    target: under {PEAK_TARGET_MB:g} MB extra peak memory at {suite.tests:,} "
            f"tests: {verdict(memory_ok)} ({extra_mb['json']:+.1f} MB)"
        )
        ok = ok and memory_ok
    return ok


Variants = dict[str, tuple[str, tuple[str, ...]]]
#: Each variant's runs, each beside the plain run it is paired with.
Pairs = dict[str, list[tuple[Sample, Sample]]]


def suite_command(suite: Suite, args: Sequence[str]) -> Command:
    accept = (0,) if suite.outcomes.find("failed") < 0 else (0, 1)
    argv = ("-m", "pytest", *BASE_ARGS, *args, *suite.args)
    return Command(argv, suite.folder, suite.env, None, accept)


def checked_run(suite: Suite, name: str, sample: Sample, output: str) -> Sample:
    """``sample``, once its output shows the plugin's section (or none) and plain's outcomes."""
    checked_energy(sample, output, f"{suite.name}: {name}", energy=name not in ("plain", "off"))
    if outcome_counts(output) != suite.outcomes:
        raise SystemExit(
            f"{suite.name}: {name} ended with {outcome_counts(output)!r}, plain with "
            f"{suite.outcomes!r}:\n{output[-2000:]}"
        )
    return sample


def concurrent_reps(suite: Suite, table: Variants) -> Pairs:
    """Every variant run at once with a plain run of its own, and plain beside plain (the
    method's own error), in a rotated order each repetition."""
    names = list(table)
    pairs: Pairs = {name: [] for name in names[1:]}
    pairs["plain"] = []
    for rep in range(suite.reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            shutil.rmtree(suite.folder / ".energy", ignore_errors=True)
            (x, x_output), (y, y_output) = run_pair(
                rep, suite_command(suite, table[name][1]), suite_command(suite, OFF_ARGS)
            )
            pairs[name].append(
                (checked_run(suite, name, x, x_output), checked_run(suite, "plain", y, y_output))
            )
    return pairs


def alternating_reps(suite: Suite, table: Variants) -> Pairs:
    """Every variant once a repetition, one after the other, in a rotated, alternately
    reversed order; each paired with the repetition's plain run."""
    names = list(table)
    runs: dict[str, list[Sample]] = {name: [] for name in names}
    for rep in range(suite.reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order if rep % 2 == 0 else reversed(order):
            shutil.rmtree(suite.folder / ".energy", ignore_errors=True)
            sample, output = run_command(suite_command(suite, table[name][1]))
            runs[name].append(checked_run(suite, name, sample, output))
    return {name: list(zip(runs[name], runs["plain"], strict=True)) for name in names[1:]}


def third_party(root: Path, env: dict[str, str], reps: int) -> list[Suite]:
    """The third-party suites, unpacked from their sdists; none when pip cannot get them."""
    sdists, site = root / "sdists", root / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    pins = [pin for pin, _ in THIRD_PARTY.values()]
    try:
        subprocess.run(
            [*pip, "download", "--no-binary", ":all:", "--no-deps", "-d", str(sdists), *pins],
            check=True,
            capture_output=True,
        )
        # Into a scratch folder on PYTHONPATH: the environment itself is left as it was.
        subprocess.run(
            [
                *pip,
                "install",
                "--target",
                str(site),
                *sorted(sdists.glob("*.tar.gz")),
                *THIRD_PARTY_TEST_DEPS,
            ],
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        reason = (exc.stderr or b"").decode("utf-8", errors="replace").strip().splitlines()
        print(f"  third-party suites skipped: pip failed: {reason[-1] if reason else exc}")
        return []
    suite_env = {**env, "PYTHONPATH": str(site)}
    suites = []
    for archive in sorted(sdists.glob("*.tar.gz")):
        with tarfile.open(archive) as tar:
            tar.extractall(sdists, filter="data")
        folder = sdists / archive.name.removesuffix(".tar.gz")
        project = next(
            name
            for name, (pin, _) in THIRD_PARTY.items()
            if archive.name.lower().replace("_", "-").startswith(pin.split("==")[0])
        )
        args = THIRD_PARTY[project][1]
        suites.append(Suite(f"{project} ({archive.name})", folder, args, suite_env, reps=reps))
    return suites


def check_results(json_path: Path, tests: int) -> None:
    """The last run's results file is complete: every test, and the session finished."""
    data = json.loads(json_path.read_text(encoding="utf-8"))
    if len(data.get("tests", [])) != tests or not data.get("session", {}).get("finished"):
        raise SystemExit(f"{json_path} is not the complete results of {tests} tests")


def profile(suite: Path, env: dict[str, str], json_path: Path) -> None:
    print(
        "\nprofile: one in-process run of the suite with --energy --energy-meter=model "
        "--energy-json (cProfile, which inflates every time; read the shares)"
    )
    shutil.rmtree(suite / ".energy", ignore_errors=True)
    _, output = run_child(
        ["-c", _PROFILE_PROBE, *BASE_ARGS, *ENERGY_ARGS, f"--energy-json={json_path}", str(suite)],
        suite,
        env,
    )
    text = output[output.find("PROFILE") :].rstrip()
    for prefix in sorted(
        {str(Path(__file__).resolve().parents[1]), sys.prefix, sys.base_prefix},
        key=len,
        reverse=True,
    ):
        text = text.replace(prefix + "/", "")
    print(text)
    print("\ngarbage collection by phase, one run each (gc.get_stats(); full = generation 2):")
    for label, args in (
        ("plain", OFF_ARGS),
        ("--energy --energy-json", (*ENERGY_ARGS, f"--energy-json={json_path}")),
    ):
        shutil.rmtree(suite / ".energy", ignore_errors=True)
        _, output = run_child(["-c", _GC_PROBE, *BASE_ARGS, *args, str(suite)], suite, env)
        lines = [line for line in output.splitlines() if line.startswith("GC ")]
        print(f"  {label:<24} {lines[-1][3:] if lines else 'no figures'}")


def ops_overhead(reps: int) -> None:
    """(e) The ops meter's cost on the example suite (torch models), beside the model's.

    The ops meter adds a Python call to every torch operation dispatched, so its cost is per
    operation, not per test: it is measured on the examples, not on trivial tests. The
    measuring itself is ``ops_meter_check.py --overhead``'s.
    """
    print("\n(e) the ops meter on the example suite (torch models)")
    try:
        import sklearn  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        print("  skipped: the examples need torch and scikit-learn (pip install -e '.[examples]')")
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import ops_meter_check

    ops_meter_check.overhead(reps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--startup-pairs", type=int, default=15)
    parser.add_argument("--reps", type=int, default=3, help="repetitions per suite in (c)")
    parser.add_argument("--big-reps", type=int, default=2, help="repetitions at --big-tests")
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--big-tests", type=int, default=20000, help="0 skips that suite")
    parser.add_argument("--no-third-party", action="store_true")
    parser.add_argument(
        "--ops-reps", type=int, default=2, help="(e) repetitions of the example suite; 0 skips"
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile the plugin even when the targets are met"
    )
    parser.add_argument(
        "--sections",
        default="abce",
        help="which of (a) startup, (b) fixed cost, (c) side by side, (e) ops meter to run; "
        "(d) the profile follows (c). Default: abce",
    )
    parser.add_argument(
        "--pairing",
        choices=("concurrent", "alternating"),
        default=None,
        help="how a pair's two runs are timed: at once on two CPUs (the default where two "
        "are usable) or one after the other",
    )
    args = parser.parse_args()
    usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if args.pairing == "concurrent" and len(usable) < 2:
        parser.error("--pairing concurrent needs two usable CPUs")
    global PAIRING, PAIR_CPUS
    PAIRING = args.pairing or ("concurrent" if len(usable) >= 2 else "alternating")
    if PAIRING == "concurrent":
        PAIR_CPUS = (usable[0], usable[1])
    unknown = set(args.sections) - set("abce")
    if unknown or not args.sections:
        parser.error(f"--sections: letters from abce, got {args.sections!r}")
    try:
        import pytest_energy.plugin  # noqa: F401
    except ImportError:
        print("pytest-energy is not importable: run from its virtual environment", file=sys.stderr)
        return 2

    print(machine_line())
    print(load_line())
    print(pairing_line())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="energy-overhead-") as scratch:
        root = Path(scratch)
        env = child_env(root / "pycache")
        tiny, suite = root / "tiny", root / "suite"
        write_suite(tiny, 1, 1)
        write_suite(suite, args.tests, FILES)
        json_path = root / "energy.json"
        # Warm-up, not counted: fills the bytecode cache (and the OS caches) for every
        # variant.
        for folder, expect in ((tiny, "1 passed"), (suite, f"{args.tests} passed")):
            pytest_child([], folder, env, expect, energy=False)
            pytest_child(["-p", "no:energy"], folder, env, expect, energy=False)
            pytest_child(
                [*ENERGY_ARGS, f"--energy-json={json_path}"], folder, env, expect, energy=True
            )
        startup_ok = fixed_ok = side_ok = True
        if "a" in args.sections:
            startup_ok = startup(args.startup_pairs, tiny, suite, env, args.tests)
        if "b" in args.sections:
            fixed_ok = fixed_cost(args.startup_pairs, tiny, env)
        if "c" in args.sections:
            side_ok = side_by_side_all(args, root, suite, env)
            if args.profile or not (fixed_ok and side_ok):
                profile(suite, env, root / "profile.json")
    if "e" in args.sections and args.ops_reps > 0:
        ops_overhead(args.ops_reps)
    ok = startup_ok and fixed_ok and side_ok
    print(f"\n{load_line()}; took {time.perf_counter() - started:.0f} s")
    print(f"overall: {verdict(ok)}")
    return 0 if ok else 1


def side_by_side_all(
    args: argparse.Namespace, root: Path, suite: Path, env: dict[str, str]
) -> bool:
    """(c): the generated suites, then the third-party ones."""
    print(
        "\n(c) side by side: added ms per test against plain, paired by repetition; peak "
        "resident memory of the pytest process"
    )
    suites = [Suite(f"{args.tests:,} trivial tests", suite, (), env, reps=args.reps, judged=True)]
    if args.big_tests > 0:
        big = root / "big"
        write_suite(big, args.big_tests, FILES)
        suites.append(
            Suite(
                f"{args.big_tests:,} trivial tests",
                big,
                (),
                env,
                reps=args.big_reps,
                judged=True,
            )
        )
    if not args.no_third_party:
        suites.extend(third_party(root, env, args.reps))
    side_ok = True
    for each in suites:
        side_ok = side_by_side(measure_plain(each), root) and side_ok
    print(f"  {CODECARBON_REFERENCE}")
    return side_ok


if __name__ == "__main__":
    raise SystemExit(main())
