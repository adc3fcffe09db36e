"""A fake NVML binding: the ``pynvml`` module of nvidia-ml-py, without a GPU.

Function names, the versioned process listings, the ``NVML_ERROR_*`` codes and
the ``NVMLError`` class (``NVMLError(15)`` is an ``NVMLError_GpuIsLost``) match
nvidia-ml-py 13.x. Default figures are the H100 probe's
(``docs/measurements/h100-nvml-probe.json``): name, driver 580.159.04, NVML
13.580.159.04, a 700 W limit and an energy counter at 2417375 mJ.

In-process::

    fake = FakeNvml([FakeGpu(), FakeGpu(uuid="GPU-...")])
    meter = NvmlMeter.open(nvml=fake)
    fake.advance(1500)              # GPU 0 used 1.5 J
    fake.lose_gpu(0)                # the next call on GPU 0 raises GPU is lost

In a subprocess (``pytester.runpytest_subprocess``)::

    install_fake_pynvml(tmp_path / "nvml", [FakeGpu(step_mj=2000, compute_pids=["other"])])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "nvml"), REPO_ROOT]))
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path / "nvml"))

writes ``pynvml.py``, a copy of this file and ``fake_nvml_state.json`` into
the folder, so ``import pynvml`` there gives a fake driven by that JSON. In
this process (``pytester.runpytest``), ``import_fresh_from(monkeypatch, dir)``
makes the next ``import pynvml`` load it, and forgets it after the test.

The driver's library is part of the machine too: the meter imports the binding
only where ``libnvidia-ml.so.1`` loads. The folder gets a stand-in, a copy of
a real shared object of this Python that the loader opens like the driver's;
a subprocess finds it through ``LD_LIBRARY_PATH``, as the real one is found,
and this process (whose loader read that variable when it started) through
the meter's ``LIBRARY``, which ``import_fresh_from`` points at the folder.

This file is copied beside the fake ``pynvml.py``, so it imports nothing but
the standard library.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import sys
import types
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1

#: Messages as nvidia-ml-py's NVMLError._errcode_to_string gives them.
_ERROR_STRINGS = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_INSUFFICIENT_SIZE: "Insufficient Size",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}

STATE_FILE = "fake_nvml_state.json"
#: The driver's library, by the name the binding loads.
LIBRARY_FILE = "libnvidia-ml.so.1"
#: Extension modules of the standard library, one of which stands in for it.
_SHARED_OBJECTS = ("_json", "_struct", "_ctypes", "math")
_IMPL_MODULE = "_pytest_energy_fake_nvml"

#: The message of the deprecated ``pynvml`` distribution's import hook.
DEPRECATION_MESSAGE = (
    "The pynvml package is deprecated. Please install nvidia-ml-py instead. "
    "If you did not install pynvml directly, please report this to the maintainers "
    "of the package that installed pynvml for you."
)


class NVMLError(Exception):
    """nvidia-ml-py's error: ``NVMLError(code)`` builds the subclass for ``code``."""

    _valClassMapping: dict[int, type[NVMLError]] = {}  # noqa: RUF012 - the binding's name
    value: int

    def __new__(cls, value: int) -> NVMLError:
        target = NVMLError._valClassMapping.get(value, cls) if cls is NVMLError else cls
        obj = Exception.__new__(target)
        obj.value = value
        return obj

    def __str__(self) -> str:
        return _ERROR_STRINGS.get(self.value, f"NVML Error with code {self.value}")


class NVMLLibraryMismatchError(Exception):
    """Raised by unversioned functions when the driver lacks the binding's newest version."""


def _error_subclass(name: str, code: int) -> type[NVMLError]:
    def new(cls: type[NVMLError], *args: object) -> NVMLError:
        obj = Exception.__new__(cls)
        obj.value = code
        return obj

    # NVML_ERROR_GPU_IS_LOST -> NVMLError_GpuIsLost, as nvidia-ml-py names them.
    words = string.capwords(name.removeprefix("NVML_ERROR_"), "_").replace("_", "")
    return type(f"NVMLError_{words}", (NVMLError,), {"__new__": new})


ERROR_CLASSES: dict[str, type[NVMLError]] = {}
for _name, _code in list(globals().items()):
    if _name.startswith("NVML_ERROR_"):
        _cls = _error_subclass(_name, _code)
        NVMLError._valClassMapping[_code] = _cls
        ERROR_CLASSES[_cls.__name__] = _cls
globals().update(ERROR_CLASSES)


def error_code(code: int | str) -> int:
    """An NVML error code from its number or its name (``"NVML_ERROR_GPU_IS_LOST"``)."""
    if isinstance(code, int):
        return code
    value = globals().get(code)
    if not isinstance(value, int) or not code.startswith("NVML_ERROR_"):
        raise ValueError(f"unknown NVML error {code!r}")
    return value


@dataclass
class FakeProcess:
    """What the process listings return (nvidia-ml-py's nvmlFriendlyObject fields)."""

    pid: int
    # camelCase: the binding's field names. Memory as in the probe's compute_procs.
    usedGpuMemory: int | None = 1_151_336_448
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


@dataclass
class FakeGpu:
    """One fake GPU. Pids are ints, or "self" (this process) or "other" (not this one)."""

    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-5e5b1d7c-0f6a-4c1e-9a57-8d1b2f3c4d5e"
    #: The total-energy counter, in millijoules.
    energy_mj: int = 2_417_375
    #: How much the counter advances after each energy read (file-based fakes).
    step_mj: int = 0
    #: Enforced power limit in mW; None answers NOT_SUPPORTED.
    power_limit_mw: int | None = 700_000
    #: nvmlDeviceGetPowerUsage, mW (the probe's idle 72.4 W); meters must not use it.
    power_mw: int = 72_371
    #: False: the energy counter answers NOT_SUPPORTED, as before Volta.
    energy_supported: bool = True
    #: After this many successful energy reads, the GPU is lost.
    lost_after_reads: int | None = None
    #: A lost GPU answers every call with NVML_ERROR_GPU_IS_LOST.
    lost: bool = False
    #: UUIDs of MIG devices; non-empty means MIG mode is on.
    mig_uuids: list[str] = field(default_factory=list)
    compute_pids: list[int | str] = field(default_factory=list)
    graphics_pids: list[int | str] = field(default_factory=list)
    energy_reads: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FakeGpu:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fake GPU keys {sorted(unknown)}; expected {sorted(known)}")
        return cls(**data)


@dataclass(frozen=True)
class FakeHandle:
    """A device handle: a GPU, or one of its MIG devices."""

    gpu: int
    mig: int | None = None


class FakeNvml(types.ModuleType):
    """A module object with nvidia-ml-py's names, over a list of :class:`FakeGpu`."""

    NVMLError = NVMLError
    NVMLLibraryMismatchError = NVMLLibraryMismatchError
    __version__ = "0+fake"

    def __init__(
        self,
        gpus: Sequence[FakeGpu] | None = None,
        *,
        driver_version: str = "580.159.04",
        nvml_version: str = "13.580.159.04",
        init_error: int | str | None = None,
        processes_error: int | str | None = None,
        old_driver: bool = False,
        name: str = "pynvml",
    ) -> None:
        super().__init__(name, "A fake NVML binding for pytest-energy's tests.")
        for key, value in globals().items():
            if key.startswith("NVML_") or key in ERROR_CLASSES:
                setattr(self, key, value)
        self.gpus = list(gpus) if gpus is not None else [FakeGpu()]
        self.driver_version = driver_version
        self.nvml_version = nvml_version
        #: nvmlInit raises this error (e.g. NVML_ERROR_LIBRARY_NOT_FOUND: no driver).
        self.init_error = None if init_error is None else error_code(init_error)
        #: Every process listing raises this error (e.g. NVML_ERROR_NOT_SUPPORTED).
        self.processes_error = None if processes_error is None else error_code(processes_error)
        #: A driver older than the binding: only the _v2 process listings exist.
        self.old_driver = old_driver
        self.init_count = 0
        #: How often each function was called.
        self.calls: Counter[str] = Counter()

    @classmethod
    def from_state(cls, state: dict[str, Any], name: str = "pynvml") -> FakeNvml:
        return cls(
            [FakeGpu.from_dict(gpu) for gpu in state.get("gpus", [{}])],
            driver_version=state.get("driver_version", "580.159.04"),
            nvml_version=state.get("nvml_version", "13.580.159.04"),
            init_error=state.get("init_error"),
            processes_error=state.get("processes_error"),
            old_driver=state.get("old_driver", False),
            name=name,
        )

    @classmethod
    def from_state_file(cls, path: Path, name: str = "pynvml") -> FakeNvml:
        return cls.from_state(json.loads(path.read_text(encoding="utf-8")), name)

    # Test controls.

    def advance(self, millijoules: int, gpu: int = 0) -> None:
        """Add energy to a GPU's counter."""
        self.gpus[gpu].energy_mj += millijoules

    def lose_gpu(self, gpu: int = 0) -> None:
        """From now on, every call on this GPU raises NVML_ERROR_GPU_IS_LOST."""
        self.gpus[gpu].lost = True

    # Helpers.

    def _call(self, function: str) -> None:
        self.calls[function] += 1
        if self.init_count <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: FakeHandle) -> FakeGpu:
        if not isinstance(handle, FakeHandle) or not 0 <= handle.gpu < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[handle.gpu]
        if gpu.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        return gpu

    # Library.

    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.init_count += 1

    def nvmlInitWithFlags(self, flags: int) -> None:
        self.nvmlInit()

    def nvmlShutdown(self) -> None:
        self._call("nvmlShutdown")
        self.init_count -= 1

    def nvmlErrorString(self, result: int) -> str:
        return _ERROR_STRINGS.get(result, "Unknown Error")

    def nvmlSystemGetDriverVersion(self) -> str:
        self._call("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetNVMLVersion(self) -> str:
        self._call("nvmlSystemGetNVMLVersion")
        return self.nvml_version

    # Devices.

    def nvmlDeviceGetCount(self) -> int:
        self._call("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._call("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> FakeHandle:
        self._call("nvmlDeviceGetHandleByUUID")
        text = uuid.decode() if isinstance(uuid, bytes) else uuid
        for index, gpu in enumerate(self.gpus):
            if gpu.uuid == text:
                return FakeHandle(index)
            if text in gpu.mig_uuids:
                return FakeHandle(index, gpu.mig_uuids.index(text))
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:
        self._call("nvmlDeviceGetName")
        gpu = self._gpu(handle)
        return gpu.name if handle.mig is None else f"{gpu.name} MIG {handle.mig}"

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:
        self._call("nvmlDeviceGetUUID")
        gpu = self._gpu(handle)
        return gpu.uuid if handle.mig is None else gpu.mig_uuids[handle.mig]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeHandle) -> int:
        self._call("nvmlDeviceGetTotalEnergyConsumption")
        gpu = self._gpu(handle)
        if handle.mig is not None or not gpu.energy_supported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        if gpu.lost_after_reads is not None and gpu.energy_reads >= gpu.lost_after_reads:
            gpu.lost = True
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        gpu.energy_reads += 1
        value = gpu.energy_mj
        gpu.energy_mj += gpu.step_mj
        return value

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        self._call("nvmlDeviceGetPowerUsage")
        return self._gpu(handle).power_mw

    def _power_limit(self, function: str, handle: FakeHandle) -> int:
        self._call(function)
        limit = self._gpu(handle).power_limit_mw
        if limit is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return limit

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeHandle) -> int:
        return self._power_limit("nvmlDeviceGetEnforcedPowerLimit", handle)

    def nvmlDeviceGetPowerManagementLimit(self, handle: FakeHandle) -> int:
        return self._power_limit("nvmlDeviceGetPowerManagementLimit", handle)

    # MIG.

    def nvmlDeviceGetMigMode(self, handle: FakeHandle) -> list[int]:
        self._call("nvmlDeviceGetMigMode")
        mode = NVML_DEVICE_MIG_ENABLE if self._gpu(handle).mig_uuids else NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeHandle) -> int:
        self._call("nvmlDeviceGetMaxMigDeviceCount")
        self._gpu(handle)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeHandle, index: int) -> FakeHandle:
        self._call("nvmlDeviceGetMigDeviceHandleByIndex")
        if not 0 <= index < len(self._gpu(handle).mig_uuids):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return FakeHandle(handle.gpu, index)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: FakeHandle) -> FakeHandle:
        self._call("nvmlDeviceGetDeviceHandleFromMigDeviceHandle")
        self._gpu(handle)
        return FakeHandle(handle.gpu)

    def nvmlDeviceIsMigDeviceHandle(self, handle: FakeHandle) -> int:
        self._call("nvmlDeviceIsMigDeviceHandle")
        self._gpu(handle)
        return int(handle.mig is not None)

    # Processes: unversioned, _v3 and _v2, as in nvidia-ml-py.

    def _processes(self, function: str, handle: FakeHandle, kind: str) -> list[FakeProcess]:
        self._call(function)
        gpu = self._gpu(handle)
        if self.old_driver and not function.endswith("_v2"):
            if function.endswith("_v3"):
                raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)
            raise NVMLLibraryMismatchError(
                "Unversioned function called and the pyNVML version does not match the "
                f"NVML lib version. Use a versioned function such as {function}_v2"
            )
        if self.processes_error is not None:
            raise NVMLError(self.processes_error)
        pids = gpu.compute_pids if kind == "compute" else gpu.graphics_pids
        return [FakeProcess(_resolve_pid(pid)) for pid in pids]

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list[FakeProcess]:
        return self._processes("nvmlDeviceGetComputeRunningProcesses", handle, "compute")

    def nvmlDeviceGetComputeRunningProcesses_v3(self, handle: FakeHandle) -> list[FakeProcess]:
        return self._processes("nvmlDeviceGetComputeRunningProcesses_v3", handle, "compute")

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle: FakeHandle) -> list[FakeProcess]:
        return self._processes("nvmlDeviceGetComputeRunningProcesses_v2", handle, "compute")

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: FakeHandle) -> list[FakeProcess]:
        return self._processes("nvmlDeviceGetGraphicsRunningProcesses", handle, "graphics")

    def nvmlDeviceGetGraphicsRunningProcesses_v3(self, handle: FakeHandle) -> list[FakeProcess]:
        return self._processes("nvmlDeviceGetGraphicsRunningProcesses_v3", handle, "graphics")

    def nvmlDeviceGetGraphicsRunningProcesses_v2(self, handle: FakeHandle) -> list[FakeProcess]:
        return self._processes("nvmlDeviceGetGraphicsRunningProcesses_v2", handle, "graphics")


def _resolve_pid(pid: int | str) -> int:
    if pid == "self":
        return os.getpid()
    if pid == "other":
        # Any pid but ours: the meter only compares with os.getpid().
        return os.getpid() + 1
    if isinstance(pid, int):
        return pid
    raise ValueError(f"a fake pid is an int, 'self' or 'other', not {pid!r}")


_SHIM = '''"""A fake NVML binding written by pytest-energy's tests/fake_nvml.py.

Its state is {state} beside this file.
"""

import sys
import warnings
from pathlib import Path

from {impl} import FakeNvml

if {warn!r}:
    # What the deprecated pynvml distribution's import hook does.
    warnings.warn({message!r}, FutureWarning, stacklevel=2)

sys.modules[__name__] = FakeNvml.from_state_file(Path(__file__).with_name({state!r}), __name__)
'''


def stand_in_library() -> Path:
    """A shared object that loads in this Python: an extension module's file."""
    import importlib

    for name in _SHARED_OBJECTS:
        origin = getattr(importlib.import_module(name), "__file__", None)
        if origin is not None and origin.endswith(".so"):
            return Path(origin)
    raise RuntimeError(f"none of {_SHARED_OBJECTS} is a shared object in this Python")


def import_fresh_from(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """Make the next ``import pynvml`` in this process load ``directory``'s fake.

    Whatever ``pynvml`` was imported before (the real binding, say) is put back
    when the test ends, and the fake is forgotten. The meter looks for the
    driver's library in ``directory`` (a stand-in is there once
    :func:`install_fake_pynvml` has written the fake).
    """
    for name in ("pynvml", _IMPL_MODULE):
        # setitem records what to restore; deleting then forces a fresh import.
        monkeypatch.setitem(sys.modules, name, None)
        del sys.modules[name]
    monkeypatch.syspath_prepend(str(directory))
    # A path, not a name: this process's loader read LD_LIBRARY_PATH when it started.
    monkeypatch.setattr("pytest_energy.meters.nvml_library.LIBRARY", str(directory / LIBRARY_FILE))


def install_fake_pynvml(
    directory: Path,
    gpus: Sequence[FakeGpu] | None = None,
    *,
    driver_version: str = "580.159.04",
    nvml_version: str = "13.580.159.04",
    init_error: int | str | None = None,
    processes_error: int | str | None = None,
    old_driver: bool = False,
    deprecation_warning: bool = False,
    driver_library: bool = True,
) -> Path:
    """Write a fake ``pynvml.py`` into ``directory``; return its JSON state file.

    Put ``directory`` first on ``sys.path`` (``PYTHONPATH`` for a subprocess)
    and ``import pynvml`` gives a :class:`FakeNvml` built from the state file,
    which the test may rewrite before the process starts. The counter state
    lives in that process: each energy read returns ``energy_mj`` and then adds
    ``step_mj``; after ``lost_after_reads`` reads the GPU is lost.
    ``deprecation_warning`` makes the import warn like the deprecated
    ``pynvml`` distribution. ``driver_library`` writes the stand-in for the
    driver's ``libnvidia-ml.so.1`` beside it; without it the folder is a
    machine with the binding installed and no NVIDIA driver.
    """
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__), directory / f"{_IMPL_MODULE}.py")
    state = {
        "driver_version": driver_version,
        "nvml_version": nvml_version,
        "init_error": init_error,
        "processes_error": processes_error,
        "old_driver": old_driver,
        "gpus": [asdict(gpu) for gpu in (gpus if gpus is not None else [FakeGpu()])],
    }
    state_path = directory / STATE_FILE
    state_path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    shim = _SHIM.format(
        state=STATE_FILE, impl=_IMPL_MODULE, warn=deprecation_warning, message=DEPRECATION_MESSAGE
    )
    (directory / "pynvml.py").write_text(shim, encoding="utf-8")
    if driver_library:
        shutil.copyfile(stand_in_library(), directory / LIBRARY_FILE)
    return state_path
