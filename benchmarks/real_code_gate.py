"""The stored-baseline gate on real code, as a user runs it on a shared VM with the model meter.

Installs more-itertools from its sdist (into a throwaway virtual environment that also gets
this checkout), writes five ``energy_benchmark`` tests over its functions, saves a baseline
(the session and fresh processes), then runs ``pytest --energy --energy-compare``:

* ``--unchanged`` times (default 40) with the library as it is;
* ``--planted`` times each (default 10) with +10 % and with +25 % work planted in one
  library function (``more_itertools.windowed`` also walks a copy of the first 10 % or
  25 % of its input, like a change that started scanning data twice).

Prints per run the exit status and the verdicts, and at the end, per condition: runs that
failed the build, false regressions and false improvements on the unchanged benchmarks,
inconclusive verdicts, unstable sessions, runs that started fresh processes, and the wall
time per run. Targets (issue "the gate on real hardware"): at most 1 false failure in 40
unchanged runs, no systematic false improvements, +25 % caught in at least 9 of 10.

    python benchmarks/real_code_gate.py [--unchanged 40] [--planted 10] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import venv
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LIBRARY = "more-itertools"

TESTS = """
import os

import more_itertools as mi

#: +X % work planted in one library function: windowed() also walks a copy of the first
#: X of its input (ENERGY_PLANTED=0.25), as a change that started scanning data twice would.
PLANTED = float(os.environ.get("ENERGY_PLANTED", "0"))
if PLANTED:
    _windowed = mi.windowed

    def windowed(seq, n, fillvalue=None, step=1):
        data = list(seq)
        for _ in _windowed(data[: int(len(data) * PLANTED)], n, fillvalue, step):
            pass
        return _windowed(data, n, fillvalue, step)

    mi.windowed = windowed

DATA = list(range(2000))
WORDS = [f"w{i % 97}" for i in range(2000)]


def test_windowed(energy_benchmark):
    energy_benchmark(lambda: sum(1 for _ in mi.windowed(DATA, 5)), units=len(DATA), unit="item")


def test_chunked(energy_benchmark):
    energy_benchmark(lambda: sum(map(len, mi.chunked(DATA, 7))), units=len(DATA), unit="item")


def test_unique_everseen(energy_benchmark):
    energy_benchmark(lambda: list(mi.unique_everseen(WORDS)), units=len(WORDS), unit="item")


def test_distinct_permutations(energy_benchmark):
    energy_benchmark(
        lambda: sum(1 for _ in mi.distinct_permutations("aabbccd")), units=1, unit="call"
    )


def test_partition(energy_benchmark):
    energy_benchmark(
        lambda: [list(p) for p in mi.partition(lambda x: x % 3, DATA)],
        units=len(DATA),
        unit="item",
    )
"""


def make_environment(folder: Path) -> Path:
    """A virtual environment with this checkout and the library built from its sdist."""
    env_dir = folder / "venv"
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-binary", ":all:", LIBRARY], check=True)
    subprocess.run([*pip, str(REPO)], check=True)
    return python


def run(python: Path, project: Path, flag: str, planted: float, name: str) -> dict[str, Any]:
    results = project / f"{name}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_ENERGY")}
    env["ENERGY_PLANTED"] = str(planted)
    started = time.monotonic()
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--energy",
            "--energy-meter=model",
            flag,
            f"--energy-json={results}",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    row: dict[str, Any] = {
        "run": name,
        "planted": planted,
        "exit": done.returncode,
        "wall_s": time.monotonic() - started,
    }
    if not results.exists():
        row["error"] = (done.stdout + done.stderr)[-2000:]
        return row
    data = json.loads(results.read_text())
    verdicts = {}
    for test in data["tests"]:
        name_only = test["nodeid"].split("::")[-1]
        verdict = test.get("verdict") or {}
        verdicts[name_only] = [verdict.get("status"), verdict.get("ratio")]
    gate = data.get("gate") or {}
    processes = {
        r.get("process", 0)
        for t in data["tests"]
        for r in (t.get("benchmark") or {}).get("rounds", [])
    }
    row.update(
        verdicts=verdicts,
        unstable=data["session"]["unstable"],
        decision=gate.get("decision"),
        fresh_processes=len(processes - {0}),
    )
    return row


def summarize(rows: list[dict[str, Any]], planted: float) -> str:
    """One condition's counts: the build, the unchanged benchmarks' verdicts, the planted one."""
    runs = [r for r in rows if r["planted"] == planted and "verdicts" in r]

    def unchanged(row: dict[str, Any]) -> list[str]:
        return [
            status
            for test, (status, _) in row["verdicts"].items()
            if planted == 0 or test != "test_windowed"
        ]

    statuses = Counter(s for r in runs for s in unchanged(r))
    false_regressions = sum("regression" in unchanged(r) for r in runs)
    false_improvements = sum("improvement" in unchanged(r) for r in runs)
    line = (
        f"planted +{planted:.0%}: {len(runs)} runs, {sum(r['exit'] == 1 for r in runs)} failed "
        f"the build; unchanged benchmarks' verdicts {dict(statuses)}; runs with a false "
        f"regression {false_regressions}, with a false improvement {false_improvements}; "
        f"unstable sessions {sum(bool(r['unstable']) for r in runs)}; runs that started fresh "
        f"processes {sum(r['fresh_processes'] > 0 for r in runs)}; wall "
        f"{statistics.median(r['wall_s'] for r in runs):.1f} s median per run"
    )
    if planted:
        planted_verdicts = Counter(r["verdicts"].get("test_windowed", [None])[0] for r in runs)
        line += f"; the planted benchmark: {dict(planted_verdicts)}"
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unchanged", type=int, default=40)
    parser.add_argument("--planted", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("real_code_gate.json"))
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="real-code-gate-") as folder:
        root = Path(folder)
        python = make_environment(root)
        project = root / "project"
        project.mkdir()
        (project / "test_more_itertools.py").write_text(TESTS)
        (project / "pytest.ini").write_text("[pytest]\n")
        save = run(python, project, "--energy-save-baseline", 0.0, "save")
        print(f"save: exit {save['exit']} in {save['wall_s']:.0f} s", flush=True)
        if save["exit"] != 0:
            print(save.get("error", ""))
            return 2
        plan = [0.0] * args.unchanged + [0.10] * args.planted + [0.25] * args.planted
        for index, planted in enumerate(plan):
            row = run(python, project, "--energy-compare", planted, f"run{index}")
            rows.append(row)
            shown = {
                t: f"{v[0]} {v[1]:.3f}" if v[1] else str(v[0])
                for t, v in row.get("verdicts", {}).items()
            }
            print(
                f"{index:3d} +{planted:.0%} exit {row['exit']} {row['wall_s']:.0f} s {shown}",
                flush=True,
            )
    args.out.write_text(json.dumps(rows, indent=1))
    print()
    for planted in (0.0, 0.10, 0.25):
        print(summarize(rows, planted))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
