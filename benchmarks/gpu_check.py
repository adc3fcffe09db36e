"""Check the NVML meter on a real NVIDIA GPU (H100/H200) in about 30 s.

Run on a machine with an NVIDIA GPU, torch with CUDA and nvidia-ml-py::

    python3 benchmarks/gpu_check.py [--json PATH]

It opens :class:`~pytest_energy.meters.nvml.NvmlMeter` as the plugin does and
checks, printing readable lines and then a JSON summary:

* the energy counter advances while the GPU idles;
* idle power from the counter over ~2 s (our H100: 72.5 W);
* a ~2-s bf16 8192x8192 matmul window, synchronised (``synchronize_cuda``)
  before its end read, draws between idle power and the power limit (our H100:
  694 W at a 700 W limit, 1.18 J per matmul; docs/measurements/h100-nvml-probe.json);
* what one ``read()`` costs (our H100: ~3 ms per energy read);
* repeated 2-s windows of the same work agree (our H100: CV 0.7 %);
* no ``gpu_shared`` note while only this process uses the GPU.

Exit status: 0 when every check passes, 1 when one fails, 2 when the GPU
path cannot run at all (no torch, no CUDA, meter unavailable).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# Runs from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_energy.measure.window import synchronize_cuda
from pytest_energy.meters.base import MeterUnavailable, Reading
from pytest_energy.meters.nvml import NOTE_GPU_SHARED, NvmlMeter, import_pynvml

DOMAIN = "gpu:0"
SIZE = 8192
WINDOW_S = 2.0
REPEATS = 5
#: H100 probe: 8192^3 bf16 matmuls at 694 W used 1.18 J each (load_J_per_matmul).
REFERENCE_J_PER_MATMUL = 1.18
#: Probe CV was 0.5-0.7 %; anything under this is healthy.
MAX_CV = 0.03
#: One tick is ~100 ms: at 700 W that is up to 70 J at each edge of a 2-s window,
#: so a window's mean power can read a few percent over the limit.
CAP_SLACK = 1.10


class Checks:
    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}
        self.values: dict[str, Any] = {}

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.results[name] = {"ok": bool(ok), "detail": detail}
        print(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}", flush=True)

    def note(self, name: str, value: Any, text: str | None = None) -> None:
        self.values[name] = value
        print(f"       {name} = {text if text is not None else value}", flush=True)

    @property
    def ok(self) -> bool:
        return all(result["ok"] for result in self.results.values())


def window(meter: NvmlMeter, work: Any = None) -> tuple[float, float, Reading, Reading, bool]:
    """Joules and seconds of one window around ``work``, synchronised before the end read."""
    start = meter.read()
    if work is not None:
        work()
    synced = synchronize_cuda()
    end = meter.read()
    return end.joules[DOMAIN] - start.joules[DOMAIN], end.t - start.t, start, end, synced


def nvml_pids(uuid: str) -> list[int]:
    """Pids NVML lists on a GPU, to diagnose a gpu_shared note (e.g. a container's
    pid namespace, where NVML may report host pids)."""
    nvml: Any = import_pynvml()
    nvml.nvmlInit()
    pids: list[int] = []
    try:
        handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
        for function in (
            "nvmlDeviceGetComputeRunningProcesses",
            "nvmlDeviceGetGraphicsRunningProcesses",
        ):
            try:
                pids += [int(p.pid) for p in getattr(nvml, function)(handle)]
            except Exception as exc:
                print(f"       {function}: {type(exc).__name__}: {exc}")
    finally:
        nvml.nvmlShutdown()
    return pids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the JSON summary to this file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    checks = Checks()

    try:
        import torch
    except ImportError:
        print("torch is not installed: cannot run the GPU check")
        return 2
    if not torch.cuda.is_available():
        print("torch sees no CUDA device: cannot run the GPU check")
        return 2
    try:
        meter = NvmlMeter.open()
    except MeterUnavailable as exc:
        print(f"NVML meter unavailable: {exc}")
        return 2

    info = meter.info
    print(info.summary)
    checks.note("summary", info.summary)
    checks.note("details", dict(info.details), json.dumps(dict(info.details), default=str))
    checks.note("torch", torch.__version__)
    gpus = info.details["gpus"]
    assert isinstance(gpus, list)
    cap_w = gpus[0]["power_limit_w"]
    checks.note("power_limit_w", cap_w)
    checks.check(
        "domains",
        DOMAIN in {d.name for d in info.domains},
        f"{[d.name for d in info.domains]}",
    )
    readings: list[Reading] = []

    # 1. The counter advances, before this process touches CUDA.
    first = meter.read()
    time.sleep(0.5)
    second = meter.read()
    readings += [first, second]
    advanced = second.joules[DOMAIN] - first.joules[DOMAIN]
    checks.check("counter_advances", advanced > 0, f"{advanced:.3f} J in 0.5 s of idle")

    # 2. Idle power from the counter over ~2 s (the probe: 72.46 W from the
    #    counter against 72.37 W from nvmlDeviceGetPowerUsage).
    idle_j, idle_s, a, b, _ = window(meter, lambda: time.sleep(WINDOW_S))
    readings += [a, b]
    idle_w = idle_j / idle_s
    checks.note("idle_w", round(idle_w, 2), f"{idle_w:.1f} W ({idle_j:.2f} J / {idle_s:.3f} s)")
    upper = 0.6 * cap_w if cap_w else 400.0
    checks.check("idle_power_plausible", 10.0 <= idle_w <= upper, f"{idle_w:.1f} W")

    # 3. The cost of one read: ~3 ms per energy read on the H100, plus the
    #    process listing. Read often, it would also warm the GPU's driver path.
    costs_ms = []
    for _ in range(20):
        t0 = time.perf_counter()
        readings.append(meter.read())
        costs_ms.append((time.perf_counter() - t0) * 1000)
    cost_median = statistics.median(costs_ms)
    checks.note("read_cost_ms_median", round(cost_median, 3))
    checks.note("read_cost_ms_max", round(max(costs_ms), 3))
    checks.check("read_cost", cost_median < 50.0, f"median {cost_median:.2f} ms over 20 reads")

    # 4. Matmul windows. Random data: zeros can run faster than real work.
    device = torch.device("cuda", 0)
    x = torch.randn(SIZE, SIZE, device=device, dtype=torch.bfloat16)
    y = torch.randn(SIZE, SIZE, device=device, dtype=torch.bfloat16)
    out = torch.empty(SIZE, SIZE, device=device, dtype=torch.bfloat16)
    for _ in range(5):
        torch.matmul(x, y, out=out)
    torch.cuda.synchronize()
    probe_n = 50
    t0 = time.perf_counter()
    for _ in range(probe_n):
        torch.matmul(x, y, out=out)
    torch.cuda.synchronize()
    per_matmul_s = (time.perf_counter() - t0) / probe_n
    count = max(10, min(20_000, round(WINDOW_S / per_matmul_s)))
    tflops = 2 * SIZE**3 / per_matmul_s / 1e12
    checks.note("matmul_ms", round(per_matmul_s * 1000, 3), f"{per_matmul_s * 1000:.3f} ms")
    checks.note("matmul_tflops", round(tflops, 1))
    checks.note("matmuls_per_window", count)
    checks.note(
        "has_primary_context_guard", hasattr(getattr(torch, "_C", None), "_cuda_hasPrimaryContext")
    )

    def work() -> None:
        for _ in range(count):
            torch.matmul(x, y, out=out)

    load_j, load_s, a, b, synced = window(meter, work)
    readings += [a, b]
    checks.check("synchronize_cuda", synced, "synchronised before the end read")
    load_w = load_j / load_s
    j_per_matmul = load_j / count
    checks.note("load_w", round(load_w, 1), f"{load_w:.1f} W ({load_j:.1f} J / {load_s:.3f} s)")
    checks.note(
        "j_per_matmul",
        round(j_per_matmul, 4),
        f"{j_per_matmul:.4f} J (H100 probe: {REFERENCE_J_PER_MATMUL} J at 694 W; "
        f"ratio {j_per_matmul / REFERENCE_J_PER_MATMUL:.2f})",
    )
    top = cap_w * CAP_SLACK if cap_w else float("inf")
    checks.check(
        "load_power_between_idle_and_cap",
        idle_w < load_w <= top,
        f"idle {idle_w:.1f} W < {load_w:.1f} W <= {top:.0f} W",
    )

    # 5. Repeated windows of the same work. A random pause between them keeps
    #    the windows from locking onto the ~100-ms sensor cycle.
    energies = []
    for _ in range(REPEATS):
        time.sleep(random.uniform(0.0, 0.1))
        joules, seconds, a, b, _ = window(meter, work)
        readings += [a, b]
        energies.append(joules)
        print(f"       window: {joules:.1f} J in {seconds:.3f} s ({joules / seconds:.1f} W)")
    mean = statistics.fmean(energies)
    cv = statistics.stdev(energies) / mean
    checks.note("repeat_j", [round(e, 2) for e in energies])
    checks.note("repeat_cv", round(cv, 5), f"{cv:.2%}")
    checks.check("repeat_cv", cv < MAX_CV, f"CV {cv:.2%} over {REPEATS} windows of {count} matmuls")

    # 6. Only this process uses the GPU: no reading may carry gpu_shared.
    shared = sum(NOTE_GPU_SHARED in r.notes for r in readings)
    pids = nvml_pids(str(gpus[0]["uuid"]))
    checks.note("nvml_pids", pids, f"{pids} (this process: {os.getpid()})")
    checks.check(
        "no_gpu_shared",
        shared == 0,
        f"{shared} of {len(readings)} readings noted {NOTE_GPU_SHARED}",
    )
    times = [r.t for r in readings]
    checks.check("reading_times_increase", times == sorted(times), "Reading.t is monotonic")

    meter.close()
    checks.note("runtime_s", round(time.perf_counter() - started, 1))
    summary = {"ok": checks.ok, "checks": checks.results, "values": checks.values}
    text = json.dumps(summary, indent=2, default=str)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    print("GPU check", "PASSED" if checks.ok else "FAILED")
    return 0 if checks.ok else 1


if __name__ == "__main__":
    sys.exit(main())
