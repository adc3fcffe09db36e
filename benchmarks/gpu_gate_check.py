"""The gate on a real NVIDIA GPU, end to end, as a user runs it (issue: the gate on real hardware).

Writes a small test project with one ``energy_benchmark`` of bf16 matmuls on the GPU,
then runs ``pytest --energy --energy-meter=nvml`` on it:

1. saves a baseline (the session and two fresh processes);
2. compares three times with the same work (expect exit 0, a stable session, no regression);
3. compares with +10 % and +25 % matmuls per call (expect exit 1, a regression).

Prints one row per run (exit status, verdict, ratio and interval, session stability and
the drift check's workload and drift, idle power before and after, wall time) and writes
them as JSON to ``--out``. Needs torch with CUDA and nvidia-ml-py; meant to run in under
5 minutes on one GPU. Usage::

    python benchmarks/gpu_gate_check.py --out gpu_gate_check.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

TEST_FILE = """
import os

import torch

#: Matmuls per call; GPU_GATE_WORK scales them (1.1 = +10 % work).
MATMULS = 20
SIZE = 4096


def test_matmul(energy_benchmark):
    a = torch.randn(SIZE, SIZE, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(SIZE, SIZE, device="cuda", dtype=torch.bfloat16)
    out = torch.empty(SIZE, SIZE, device="cuda", dtype=torch.bfloat16)
    count = round(MATMULS * float(os.environ.get("GPU_GATE_WORK", "1.0")))

    def step():
        for _ in range(count):
            torch.mm(a, b, out=out)

    energy_benchmark(step, units=1, unit="step")
"""

RUNS = (
    ("save baseline", 1.0, "--energy-save-baseline", 0),
    ("unchanged 1", 1.0, "--energy-compare", 0),
    ("unchanged 2", 1.0, "--energy-compare", 0),
    ("unchanged 3", 1.0, "--energy-compare", 0),
    ("+10 % work", 1.10, "--energy-compare", 1),
    ("+25 % work", 1.25, "--energy-compare", 1),
)


def run(project: Path, label: str, work: float, flag: str, rounds: int) -> dict[str, Any]:
    results = project / f"{label.replace(' ', '_').replace('%', 'pct')}.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "--energy",
        "--energy-meter=nvml",
        f"--energy-rounds={rounds}",
        flag,
        f"--energy-json={results}",
    ]
    env = {**os.environ, "GPU_GATE_WORK": str(work)}
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, check=False
    )
    wall = time.monotonic() - started
    row: dict[str, Any] = {"run": label, "work": work, "exit": done.returncode, "wall_s": wall}
    if not results.exists():
        row["error"] = (done.stdout + done.stderr)[-3000:]
        return row
    data = json.loads(results.read_text())
    test = data["tests"][0]
    session, gate = data["session"], data.get("gate") or {}
    verdict = test.get("verdict") or {}
    bench = test.get("benchmark") or {}
    row.update(
        verdict=verdict.get("status"),
        ratio=verdict.get("ratio"),
        ci=[verdict.get("ci_low"), verdict.get("ci_high")],
        reason=verdict.get("reason"),
        j_per_step=bench.get("per_unit", {}).get("median"),
        cv=bench.get("per_unit", {}).get("cv"),
        processes=sorted({r.get("process", 0) for r in bench.get("rounds", [])}),
        unstable=session.get("unstable"),
        unstable_reason=gate.get("unstable_reason"),
        decision=gate.get("decision"),
        calibration=session.get("calibration"),
        idle_w=(session.get("idle") or {}).get("total_watts"),
        idle_phase=(session.get("idle") or {}).get("phase"),
        idle_after_w=(session.get("idle_after") or {}).get("total_watts"),
        idle_note=session.get("idle_note"),
        gpu=[g.get("name") for g in session["machine"]["gpus"]],
        notices=session.get("notices"),
        tail=done.stdout[-1500:],
    )
    return row


def show(row: dict[str, Any]) -> str:
    ratio = row.get("ratio")
    ci = row.get("ci") or [None, None]
    shown = f"{ratio:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ratio and ci[0] else "-"
    drift = row.get("calibration") or {}
    start, end = drift.get("start") or [], drift.get("end") or []
    moved = (
        f"{(sum(end) / len(end)) / (sum(start) / len(start)) - 1:+.1%}" if start and end else "-"
    )
    return (
        f"{row['run']:14s} exit {row['exit']}  {row.get('verdict')!s:12s} {shown:24s} "
        f"J/step {row.get('j_per_step') or 0:.3f}  cv {row.get('cv') or 0:.2%}  "
        f"unstable {row.get('unstable')}  drift {moved}  idle {row.get('idle_w') or 0:.0f} W "
        f"({row.get('idle_phase')}) after {row.get('idle_after_w') or 0:.0f} W  "
        f"{row['wall_s']:.0f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_gate_check.json"))
    parser.add_argument("--rounds", type=int, default=3, help="rounds per process (default 3)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu-gate-") as folder:
        project = Path(folder)
        (project / "test_matmul.py").write_text(TEST_FILE)
        (project / "pytest.ini").write_text("[pytest]\n")
        for label, work, flag, expected in RUNS:
            row = run(project, label, work, flag, args.rounds)
            row["expected_exit"] = expected
            rows.append(row)
            print(show(row), flush=True)
            if "error" in row:
                print(row["error"], flush=True)
    args.out.write_text(json.dumps(rows, indent=1))
    ok = all(r["exit"] == r["expected_exit"] for r in rows)
    print("all exit statuses as expected" if ok else "some exit statuses were NOT as expected")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
