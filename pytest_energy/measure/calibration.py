"""The calibration workloads: fixed work whose energy should not change within a session.

Two uses. Interleaved with a benchmark's calls, the CPU workload's energy
normalizes the benchmark's (the model meter on a shared VM, where CPU speed moves
by half within seconds). Measured at the start and the end of a gated session, a
workload in the meter's own domain says whether the machine drifted: a CPU loop
for RAPL and the model, a GPU matmul for NVML. A CPU loop read through a GPU's
counter measures the board's idle power, not the loop, and that idle power is
higher after heavy work than before it (an H200 read ~225 W for 0.5 s after 10 s
of matmuls, against ~124 W before: docs/measurements/h200-idle-after-load.json).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


def calibration_work() -> int:
    """A fixed, deterministic CPU workload: the same instructions every time.

    About 1 ms here. Much smaller calls normalize worse (measured: 2 % round-to-round
    CV at 0.1 ms against 0.6 % at 1 ms), as call overhead starts to dominate them.
    """
    total = 0
    for i in range(20_000):
        total += i * i % 7
    return total


#: The GPU workload: a square bf16 matmul, big enough to keep the board busy
#: (about 0.3 ms on an H200) and small enough to fit beside any test's tensors (32 MiB each).
GPU_MATMUL_SIZE = 4096


class Workload:
    """A fixed workload: ``run(calls)`` does it ``calls`` times and waits until it is done."""

    def __init__(self, name: str, domain: str, run: Callable[[int], None]) -> None:
        self.name = name
        self.domain = domain
        self.run = run

    def seconds_per_call(self, target_s: float) -> float:
        """Wall time of one call, from doubling batches until a batch lasts ``target_s / 10``."""
        calls = 1
        while True:
            start = time.perf_counter()
            self.run(calls)
            elapsed = time.perf_counter() - start
            if elapsed >= target_s / 10 or calls >= 1 << 24:
                return elapsed / calls
            calls *= 2


def cpu_workload() -> Workload:
    def run(calls: int) -> None:
        for _ in range(calls):
            calibration_work()

    return Workload("a fixed CPU loop", "cpu", run)


def gpu_workload() -> Workload | str:
    """The GPU workload on the current CUDA device, or why there is none.

    Only when this process already uses CUDA: creating a context would raise the
    board's idle power for every test that follows (~79 W -> ~124 W on an H200),
    and a session that never used CUDA has no GPU work to drift.
    """
    torch: Any = sys.modules.get("torch")
    cuda: Any = getattr(torch, "cuda", None) if torch is not None else None
    if cuda is None or not cuda.is_initialized():
        return (
            "the GPU meter's drift check runs a CUDA workload, and this session had not "
            "used CUDA when its first benchmark started"
        )
    size = GPU_MATMUL_SIZE
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    out = torch.empty(size, size, device="cuda", dtype=torch.bfloat16)

    def run(calls: int) -> None:
        for _ in range(calls):
            torch.mm(a, b, out=out)
        cuda.synchronize()

    return Workload(f"a {size}x{size} bf16 matmul on the GPU", "gpu", run)
