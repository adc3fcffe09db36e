"""Whether NVIDIA's driver library loads here, asked before the NVML binding is imported.

The binding (``pynvml`` of nvidia-ml-py 13.615) is 8,000 lines: 214 classes,
440 functions, ~8,500 objects. On every machine without an NVIDIA driver (most
CI runners) its import, 7-9 ms, plus its teardown at exit, was paid only for
``nvmlInit`` to report the library missing: ``--energy`` alone cost a one-test
run +41.5 ms, and +27-30 ms once the library was looked for first (one
``pytest.main`` per fresh process, ``benchmarks/overhead.py`` on a 2-vCPU VM).
"""

from __future__ import annotations

import sys

#: What the binding loads on Linux (its ``_LoadNvmlLibrary``); NVIDIA's driver installs it.
LIBRARY = "libnvidia-ml.so.1"


def binding_would_fail() -> str | None:
    """Why importing the binding would lead nowhere here; ``None`` where it may lead somewhere.

    A binding already imported (by the user's code, or torch) costs nothing
    more. Otherwise the same ``dlopen`` the binding makes at ``nvmlInit`` (so the
    library is found the same way, and stays loaded for it), made before the
    binding is imported. Not on Linux, ``None``: the binding's own search
    decides there.
    """
    if "pynvml" in sys.modules or not sys.platform.startswith("linux"):
        return None
    # _ctypes rather than ctypes: the loader call without ctypes' ~1-ms import.
    import _ctypes

    try:
        _ctypes.dlopen(LIBRARY)
    except OSError as exc:
        return " ".join(str(exc).split()) or f"{LIBRARY} does not load"
    return None
