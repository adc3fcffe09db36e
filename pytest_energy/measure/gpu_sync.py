"""Wait for queued GPU work before a window's end is read.

CUDA kernels run asynchronously: a test can return while its kernels are still
queued, and their energy would land in the next window. The H100 probe showed
it: "50 ms" windows that launched matmuls for 50 ms and then synchronised held
~0.9 s of GPU work and ~630 J (reference/h100-nvml-probe.json, short_50ms_J).
So the window closes only after every device has finished.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["synchronize_cuda"]


def synchronize_cuda() -> bool:
    """Synchronise every CUDA device this process uses, if torch already uses CUDA.

    Never imports torch and never initialises CUDA: a test that used no GPU
    pays one dictionary lookup. Returns whether it synchronised. An
    asynchronous CUDA error raised by the test's own kernels surfaces here, as
    it would at the test's next synchronisation.
    """
    torch: Any = sys.modules.get("torch")
    if torch is None:
        return False
    cuda: Any = getattr(torch, "cuda", None)
    # A partially imported torch (an import in progress or failed) has no cuda yet.
    if cuda is None or not cuda.is_initialized():
        return False
    # torch.cuda.synchronize(k) makes k current, which creates a CUDA context
    # (hundreds of MB) on a device the process never touched; skip those when
    # torch can tell us which devices have one.
    has_context: Any = getattr(getattr(torch, "_C", None), "_cuda_hasPrimaryContext", None)
    for device in range(cuda.device_count()):
        if has_context is not None and not has_context(device):
            continue
        cuda.synchronize(device)
    return True
