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
    alternating pairs (A B, B A, ...). Prints the median paired difference in ms with the
    interquartile range of the differences, the difference of the fastest runs, and the child
    processes' CPU time (user + sys) difference.

    On a shared 2-core machine a ~0.3-s pytest process varies by tens of ms from run to run,
    so 15 pairs cannot resolve 10 ms. The script therefore also times, precisely, what the
    difference is made of: the imports (every module the plugin adds to a run where it is off,
    found by diffing ``sys.modules`` of an in-process ``pytest.main`` with and without ``-p
    no:energy``, imported in fresh processes that have already imported pytest; with each
    module's own ``-X importtime`` and the ``-X importtime`` of ``import pytest_energy.plugin``
    alone), and the hooks (alternating in-process ``pytest.main`` runs of the tiny suite, with
    and without ``-p no:energy``, once every import is done). Targets: the estimate (imports
    + hooks) under 10 ms, and the whole-process difference within noise (0 inside the IQR of
    the paired differences, both rows).

(b) The 2,000-test suite with ``--energy --energy-meter=model`` against the same run without
    ``--energy`` (plugin installed in both), plus ``--energy-history=off`` (what the default
    history append costs) and ``--energy-json`` (the results file is appended to every 2 s
    and written at the end). Every ``--energy`` run starts without ``.energy/`` so that each
    repetition does the same work. The variants run in a rotated, alternately reversed order
    within each repetition; prints the median added wall time per test (paired difference /
    number of tests) with its IQR, the CPU figure, and the wall-time ratio. Target: under
    0.2 ms per test with the model meter. When it is missed (or with ``--profile``) an
    in-process ``cProfile`` run of the suite with ``--energy-json`` prints the plugin's hot
    spots.

(c) ``--energy-json`` at scale (issue 12): 20,000 trivial tests with ``--energy
    --energy-meter=model --energy-history=off``, with and without ``--energy-json``, in
    alternating pairs (history off in both, so its own peak cannot hide the JSON's). Prints
    the median added wall time per test (paired difference / number of tests) with its IQR,
    the CPU figure, and the extra peak resident memory of the pytest process (``ru_maxrss``
    from ``wait4``, paired difference in MB). Targets: under 0.2 ms per test and under 50 MB
    extra peak memory; before checkpoints appended, rewriting the whole file at every
    checkpoint cost +0.35 ms per test and +140 MB.

Run from the repository's virtual environment, where the plugin is installed::

    python benchmarks/overhead.py [--startup-pairs 15] [--suite-reps 7] [--tests 2000]
        [--json-tests 20000] [--json-pairs 2] [--only-json] [--profile]

About five minutes on 2 cores, two of them for (c) (``--json-tests 0`` skips it,
``--only-json`` runs only it). Exits 1 when a target is missed. For context it prints, without
running it, the reference figure from the issue: pytest-codecarbon made 200 trivial tests take
2.2x the wall time of a plain run on this project's machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

STARTUP_TARGET_MS = 10.0
PER_TEST_TARGET_MS = 0.2
JSON_PER_TEST_TARGET_MS = 0.2
JSON_PEAK_TARGET_MB = 50.0
FILES = 20
CODECARBON_REFERENCE = (
    "reference (from the issue, not run here): pytest-codecarbon made 200 trivial tests take "
    "2.2x the wall time of a plain run on this project's machines"
)
BASE_ARGS = ("-q", "-p", "no:cacheprovider")
ENERGY_ARGS = ("--energy", "--energy-meter=model")
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

# Printed by a child that has imported pytest: the wall time of importing the modules given.
_IMPORT_PROBE = """
import importlib, sys, time
import pytest
start, cpu = time.perf_counter(), time.process_time()
for name in sys.argv[1:]:
    importlib.import_module(name)
print("SECONDS=%r %r" % (time.perf_counter() - start, time.process_time() - cpu))
"""

# Alternating in-process pytest.main runs of a tiny suite, plugin off vs -p no:energy, after a
# warm-up of each: with every import done, the difference is what the plugin's hooks cost.
_HOOKS_PROBE = """
import contextlib, io, json, sys, time
import pytest
pairs, argv = int(sys.argv[1]), sys.argv[2:]
def once(extra):
    with contextlib.redirect_stdout(io.StringIO()):
        wall, cpu = time.perf_counter(), time.process_time()
        code = pytest.main([*argv, *extra])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if code != 0:
        raise SystemExit("pytest.main exited %s" % code)
    return wall, cpu
off = ["-p", "no:energy"]
once([]), once(off)
diffs = []
for index in range(pairs):
    if index % 2:
        b = once(off); a = once([])
    else:
        a = once([]); b = once(off)
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


@dataclass(frozen=True)
class Sample:
    """One child process: wall seconds, CPU seconds (user + sys of it and its children), and
    its peak resident memory in MB."""

    wall: float
    cpu: float
    peak_mb: float = 0.0


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


def run_child(
    argv: Sequence[str], cwd: Path, env: dict[str, str], expect: str | None = None
) -> tuple[Sample, str]:
    """Run ``python argv`` to completion; its wall and CPU time, peak memory, and output."""
    with tempfile.TemporaryFile() as output:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, *argv], cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        # wait4, not wait: this child's own resource usage, with its peak resident memory
        # (RUSAGE_CHILDREN gives the largest of all children so far, not this one's).
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode("utf-8", errors="replace")
    cpu = usage.ru_utime + usage.ru_stime
    peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
    if returncode != 0 or (expect is not None and expect not in text):
        raise SystemExit(f"child failed (exit {returncode}): {' '.join(argv)}\n{text[-3000:]}")
    return Sample(wall, cpu, peak_mb), text


def pytest_child(
    args: Sequence[str], cwd: Path, env: dict[str, str], expect: str | None, energy: bool
) -> Sample:
    sample, output = run_child(["-m", "pytest", *BASE_ARGS, *args], cwd, env, expect)
    # The energy section is the proof that the plugin measured (or stayed silent).
    if energy != bool(ENERGY_SECTION.search(output)):
        raise SystemExit(f"unexpected output for pytest {' '.join(args)}:\n{output[-2000:]}")
    return sample


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# -- (a) startup ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Paired:
    label: str
    on: list[Sample]
    off: list[Sample]

    def diffs(self, attr: str) -> list[float]:
        return [getattr(a, attr) - getattr(b, attr) for a, b in zip(self.on, self.off, strict=True)]


def alternate(
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
        if index % 2 == 0:
            a_runs.append(pytest_child(first, cwd, env, expect, energy=False))
            b_runs.append(pytest_child(second, cwd, env, expect, energy=False))
        else:
            b_runs.append(pytest_child(second, cwd, env, expect, energy=False))
            a_runs.append(pytest_child(first, cwd, env, expect, energy=False))
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


def added_modules(env: dict[str, str], tiny: Path) -> list[str]:
    """Modules a plugin-off pytest run loads that a ``-p no:energy`` run does not."""

    def loaded(extra: Sequence[str]) -> list[str]:
        _, output = run_child(["-c", _MODULES_PROBE, *BASE_ARGS, *extra, str(tiny)], tiny, env)
        line = next(x for x in output.splitlines() if x.startswith("MODULES="))
        names: list[str] = json.loads(line[len("MODULES=") :])
        return names

    without = set(loaded(["-p", "no:energy"]))
    return [name for name in loaded([]) if name not in without]


def import_seconds(env: dict[str, str], cwd: Path, modules: Sequence[str]) -> tuple[float, float]:
    """Wall and CPU seconds of importing ``modules`` in a fresh process that has pytest."""
    _, output = run_child(["-c", _IMPORT_PROBE, *modules], cwd, env)
    line = next(x for x in output.splitlines() if x.startswith("SECONDS="))
    wall, cpu = line[len("SECONDS=") :].split()
    return float(wall), float(cpu)


def hook_diffs(env: dict[str, str], tiny: Path, pairs: int) -> list[list[float]]:
    """Paired in-process differences (wall, CPU seconds): plugin off minus -p no:energy."""
    _, output = run_child(["-c", _HOOKS_PROBE, str(pairs), *BASE_ARGS, str(tiny)], tiny, env)
    line = next(x for x in output.splitlines() if x.startswith("DIFFS="))
    diffs: list[list[float]] = json.loads(line[len("DIFFS=") :])
    return diffs


def module_self_ms(env: dict[str, str], cwd: Path, modules: Sequence[str]) -> dict[str, float]:
    """Each module's own import time (-X importtime, self column) after ``import pytest``."""
    code = "import pytest\n" + "".join(f"import {name}\n" for name in modules)
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


def startup(pairs: int, tiny: Path, suite: Path, env: dict[str, str], tests: int) -> bool:
    print(
        f"\n(a) startup: plugin installed but off vs -p no:energy; whole pytest processes, "
        f"{pairs} alternating pairs (wall ms; min = difference of the fastest runs; CPU = child "
        "user+sys)"
    )
    off = ("-p", "no:energy")
    rows: list[Paired] = []
    one = alternate(pairs, [str(tiny)], [*off, str(tiny)], tiny, env, "1 passed")
    rows.append(Paired("tiny suite (1 test)", *one))
    collect = ("--collect-only", str(suite))
    many = alternate(pairs, collect, [*off, *collect], suite, env, f"{tests} tests collected")
    rows.append(Paired(f"--collect-only, {tests:,} tests", *many))

    print(
        f"  {'run':<28} {'installed':>9} {'no:energy':>9} {'diff':>7} {'IQR of diffs':>16} "
        f"{'min':>7} {'CPU diff':>8} {'CPU IQR':>16}"
    )
    noise_ok = True
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
        noise_ok = noise_ok and q1 <= 0.0 <= q3

    reps = 9
    plugin_ms = statistics.median(importtime_ms(env, tiny) for _ in range(reps))
    modules = added_modules(env, tiny)
    ours = [m for m in modules if m.split(".")[0] == "pytest_energy"]
    others = [m for m in modules if m.split(".")[0] != "pytest_energy"]
    timings = [import_seconds(env, tiny, modules) for _ in range(reps)]
    a1, amed, a3 = (x * 1e3 for x in quartiles([wall for wall, _ in timings]))
    cpu_ms = statistics.median(cpu for _, cpu in timings) * 1e3
    selfs = [module_self_ms(env, tiny, ours) for _ in range(5)]
    self_ms = {m: statistics.median(run.get(m, 0.0) for run in selfs) for m in ours}
    hook_pairs = 4 * pairs
    hooks = hook_diffs(env, tiny, hook_pairs)
    h1, hmed, h3 = (x * 1e3 for x in quartiles([wall for wall, _ in hooks]))
    hcpu = statistics.median(cpu for _, cpu in hooks) * 1e3
    estimate = amed + hmed
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
    ok = estimate < STARTUP_TARGET_MS
    print(
        f"  target: under {STARTUP_TARGET_MS:g} ms, judged on the estimate (whole-process pairs "
        f"measured {medians[0]:+.1f} ms, too noisy here to judge 10 ms): {verdict(ok)}"
    )
    print(
        f"  target: within noise (0 inside the IQR of the whole-process paired differences, "
        f"both rows): {verdict(noise_ok)}"
    )
    return ok and noise_ok


# -- (b) the suite with --energy -----------------------------------------------------------


def suite_overhead(
    reps: int, suite: Path, env: dict[str, str], tests: int, json_path: Path
) -> bool:
    variants: dict[str, tuple[str, tuple[str, ...], bool]] = {
        "plain": ("no --energy", (), False),
        "energy": ("--energy --energy-meter=model", ENERGY_ARGS, True),
        "nohistory": ("  with --energy-history=off", (*ENERGY_ARGS, "--energy-history=off"), True),
        "json": ("  with --energy-json", (*ENERGY_ARGS, f"--energy-json={json_path}"), True),
    }
    names = list(variants)
    print(
        f"\n(b) {tests:,} trivial tests: --energy --energy-meter=model vs no --energy, plugin "
        f"installed in both ({reps} repetitions, the {len(names)} variants in a rotated and "
        "alternately reversed order; every --energy run starts without .energy/)"
    )
    runs: dict[str, list[Sample]] = {name: [] for name in variants}
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order if rep % 2 == 0 else reversed(order):
            _, args, energy = variants[name]
            # A fresh history database each time, so every repetition does the same work.
            shutil.rmtree(suite / ".energy", ignore_errors=True)
            runs[name].append(pytest_child(args, suite, env, f"{tests} passed", energy))
    if not json.loads(json_path.read_text(encoding="utf-8")).get("tests"):
        raise SystemExit(f"{json_path} holds no tests")

    def per_test(a: str, b: str, attr: str) -> tuple[float, float, float]:
        diffs = [
            (getattr(x, attr) - getattr(y, attr)) / tests * 1e3
            for x, y in zip(runs[a], runs[b], strict=True)
        ]
        return quartiles(diffs)

    print(
        f"  {'variant':<30} {'wall s':>7} {'ms/test vs plain':>17} {'IQR':>17} "
        f"{'CPU ms/test':>12} {'wall ratio':>10}"
    )
    for name, (label, _, _) in variants.items():
        wall = statistics.median(s.wall for s in runs[name])
        if name == "plain":
            print(f"  {label:<30} {wall:>7.2f} {'-':>17} {'':>17} {'-':>12} {'1.00x':>10}")
            continue
        q1, med, q3 = per_test(name, "plain", "wall")
        _, cmed, _ = per_test(name, "plain", "cpu")
        ratio = statistics.median(
            x.wall / y.wall for x, y in zip(runs[name], runs["plain"], strict=True)
        )
        print(
            f"  {label:<30} {wall:>7.2f} {med:>+17.3f} [{q1:>+6.3f}, {q3:>+6.3f}] "
            f"{cmed:>+12.3f} {ratio:>9.2f}x"
        )
    for name, what in (
        ("json", "JSON checkpoints + final write (json - energy)"),
        ("nohistory", "history append (energy - history off)"),
    ):
        first, second = ("json", "energy") if name == "json" else ("energy", "nohistory")
        q1, med, q3 = per_test(first, second, "wall")
        _, cmed, _ = per_test(first, second, "cpu")
        print(f"  {what:<47}: {med:+.3f} ms/test [IQR {q1:+.3f}, {q3:+.3f}], CPU {cmed:+.3f}")
    _, energy_ms, _ = per_test("energy", "plain", "wall")
    ok = energy_ms < PER_TEST_TARGET_MS
    print(
        f"  target: under {PER_TEST_TARGET_MS:g} ms added per test with the model meter: "
        f"{verdict(ok)} ({energy_ms:+.3f} ms)"
    )
    print(f"  {CODECARBON_REFERENCE}")
    return ok


# -- (c) --energy-json at scale ---------------------------------------------------------------


def json_at_scale(
    pairs: int, suite: Path, env: dict[str, str], tests: int, json_path: Path
) -> bool:
    base = (*ENERGY_ARGS, "--energy-history=off")
    variants = {
        "without": ("without --energy-json", base),
        "with": ("with --energy-json", (*base, f"--energy-json={json_path}")),
    }
    print(
        f"\n(c) {tests:,} trivial tests, --energy --energy-meter=model --energy-history=off, "
        f"with vs without --energy-json ({pairs} alternating pairs; every run starts without "
        "the results file)"
    )
    runs: dict[str, list[Sample]] = {name: [] for name in variants}
    for index in range(pairs):
        order = ["with", "without"] if index % 2 == 0 else ["without", "with"]
        for name in order:
            json_path.unlink(missing_ok=True)
            shutil.rmtree(suite / ".energy", ignore_errors=True)
            runs[name].append(pytest_child(variants[name][1], suite, env, f"{tests} passed", True))
            if name == "with":
                check_results(json_path, tests)

    def paired(attr: str, scale: float) -> tuple[float, float, float]:
        return quartiles(
            [
                (getattr(a, attr) - getattr(b, attr)) * scale
                for a, b in zip(runs["with"], runs["without"], strict=True)
            ]
        )

    print(f"  {'variant':<24} {'wall s':>7} {'CPU s':>7} {'peak MB':>8}")
    for name, (label, _) in variants.items():
        wall = statistics.median(s.wall for s in runs[name])
        cpu = statistics.median(s.cpu for s in runs[name])
        peak = statistics.median(s.peak_mb for s in runs[name])
        print(f"  {label:<24} {wall:>7.2f} {cpu:>7.2f} {peak:>8.1f}")
    q1, med, q3 = paired("wall", 1e3 / tests)
    _, cpu_ms, _ = paired("cpu", 1e3 / tests)
    m1, memory, m3 = paired("peak_mb", 1.0)
    print(
        f"  --energy-json adds {med:+.3f} ms/test [IQR {q1:+.3f}, {q3:+.3f}], CPU "
        f"{cpu_ms:+.3f} ms/test; peak memory {memory:+.1f} MB [IQR {m1:+.1f}, {m3:+.1f}]"
    )
    time_ok = med < JSON_PER_TEST_TARGET_MS
    memory_ok = memory < JSON_PEAK_TARGET_MB
    print(
        f"  target: under {JSON_PER_TEST_TARGET_MS:g} ms added per test: {verdict(time_ok)} "
        f"({med:+.3f} ms)"
    )
    print(
        f"  target: under {JSON_PEAK_TARGET_MB:g} MB extra peak memory: {verdict(memory_ok)} "
        f"({memory:+.1f} MB)"
    )
    return time_ok and memory_ok


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--startup-pairs", type=int, default=15)
    parser.add_argument("--suite-reps", type=int, default=7)
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument(
        "--json-tests", type=int, default=20000, help="size of the (c) suite; 0 skips (c)"
    )
    parser.add_argument("--json-pairs", type=int, default=2)
    parser.add_argument("--only-json", action="store_true", help="run (c) only")
    parser.add_argument(
        "--profile", action="store_true", help="profile the plugin even when the targets are met"
    )
    args = parser.parse_args()
    try:
        import pytest_energy.plugin  # noqa: F401
    except ImportError:
        print("pytest-energy is not importable: run from its virtual environment", file=sys.stderr)
        return 2

    print(machine_line())
    print(load_line())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="energy-overhead-") as scratch:
        root = Path(scratch)
        env = child_env(root / "pycache")
        tiny, suite = root / "tiny", root / "suite"
        write_suite(tiny, 1, 1)
        write_suite(suite, args.tests, FILES)
        json_path = root / "energy.json"
        startup_ok = suite_ok = json_ok = True
        if not args.only_json:
            # Warm-up, not counted: fills the bytecode cache (and the OS caches) for every
            # variant.
            for folder, expect in ((tiny, "1 passed"), (suite, f"{args.tests} passed")):
                pytest_child([], folder, env, expect, energy=False)
                pytest_child(["-p", "no:energy"], folder, env, expect, energy=False)
                pytest_child(
                    [*ENERGY_ARGS, f"--energy-json={json_path}"], folder, env, expect, energy=True
                )
            startup_ok = startup(args.startup_pairs, tiny, suite, env, args.tests)
            suite_ok = suite_overhead(args.suite_reps, suite, env, args.tests, json_path)
            if args.profile or not suite_ok:
                profile(suite, env, root / "profile.json")
        if args.json_tests > 0:
            big = root / "big"
            write_suite(big, args.json_tests, FILES)
            # Warm-up, not counted: compiles the test files into the bytecode cache.
            pytest_child(
                ["--collect-only", str(big)], big, env, f"{args.json_tests} tests", energy=False
            )
            json_ok = json_at_scale(args.json_pairs, big, env, args.json_tests, root / "big.json")
    ok = startup_ok and suite_ok and json_ok
    print(f"\n{load_line()}; took {time.perf_counter() - started:.0f} s")
    print(f"overall: {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
