"""The NVIDIA GPU meter: NVML's total-energy counter, read at window edges.

``nvmlDeviceGetTotalEnergyConsumption`` is a 64-bit millijoule counter of the
whole board (Volta and newer). On an H100 with driver 580 it advanced every
~100 ms and one read cost ~3 ms (``docs/measurements/h100-nvml-probe.json``:
``idle_gap_ms_median`` 100.0, ``load_gap_ms_median`` 98.5, ``energy_read_us``
3140), so the meter reads it once per GPU at each window edge and nowhere
else. It never integrates ``nvmlDeviceGetPowerUsage``: that is a 1-s average on
Ampere and newer, and integrating it under-read a 3-s burst by 17 % on the same
H100 (1748 J against the counter's 2099 J).

Which GPUs: those this process can see, in CUDA's order, after
``CUDA_VISIBLE_DEVICES`` (indices, ``GPU-`` UUIDs or unique prefixes of them,
``MIG-`` UUIDs). Domain ``gpu:K`` is the GPU CUDA calls device ``K``. A MIG
slice is measured as its whole physical GPU, because NVML has no per-slice
energy.

``pynvml`` (the module of the ``nvidia-ml-py`` distribution) is imported only
by :meth:`NvmlMeter.open`, so loading the plugin touches no GPU, and on Linux
only once NVIDIA's driver library loads (:mod:`pytest_energy.meters.nvml_library`
says why).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from pytest_energy.meters import nvml_library
from pytest_energy.meters.base import (
    DomainInfo,
    MeterError,
    MeterInfo,
    MeterUnavailable,
    Reading,
    clock,
    counter_delta,
)
from pytest_energy.meters.nvml_devices import PhysicalGpu, enumerate_gpus, text_of, visible_gpus

__all__ = ["NOTE_GPU_SHARED", "NvmlMeter"]

#: Reading note: a process other than this one had a context on a measured GPU.
NOTE_GPU_SHARED = "gpu_shared"

#: The counter advanced every ~100 ms on an H100, driver 580.159.04, idle and
#: under load (h100-nvml-probe.json: 10 changes per second, median gaps 100.0
#: and 98.5 ms); ml.energy reports the same period for other GPUs.
UPDATE_PERIOD_S = 0.1
#: The counter counts millijoules.
RESOLUTION_J = 0.001

INSTALL_HINT = "nvidia-ml-py is not installed (pip install pytest-energy[nvidia])"
MIG_NOTE = (
    "MIG slices are reported as the whole GPU: NVML has no per-slice energy, so "
    "other slices' work on the same GPU is counted too"
)
ORDER_NOTE = (
    "GPUs of different models and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA numbers "
    "the fastest GPU first while NVML numbers by PCI bus, so gpu:K labels may not match "
    "torch's cuda:K (totals are unaffected); set CUDA_DEVICE_ORDER=PCI_BUS_ID"
)

# Numeric codes from nvml.h; the binding's own constants are preferred when present.
_NVML_ERROR_NOT_SUPPORTED = 3
_NVML_ERROR_NO_PERMISSION = 4
_NVML_ERROR_FUNCTION_NOT_FOUND = 13
#: Process listings, newest binding name first. The unversioned name calls the
#: binding's newest struct version and raises NVMLLibraryMismatchError on an
#: older driver; the versioned ones then raise FunctionNotFound until one fits.
_PROCESS_LISTERS = (
    (
        "nvmlDeviceGetComputeRunningProcesses",
        "nvmlDeviceGetComputeRunningProcesses_v3",
        "nvmlDeviceGetComputeRunningProcesses_v2",
    ),
    (
        "nvmlDeviceGetGraphicsRunningProcesses",
        "nvmlDeviceGetGraphicsRunningProcesses_v3",
        "nvmlDeviceGetGraphicsRunningProcesses_v2",
    ),
)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _describe(exc: BaseException, nvml: Any) -> str:
    """NVML's own message for its errors; the exception type for anything else."""
    error_class = getattr(nvml, "NVMLError", None)
    if isinstance(error_class, type) and isinstance(exc, error_class):
        return _one_line(str(exc)) or f"NVML error {getattr(exc, 'value', '?')}"
    return _one_line(f"{type(exc).__name__}: {exc}")


def _error_code(exc: BaseException) -> object:
    return getattr(exc, "value", None)


def import_pynvml() -> ModuleType:
    """Import the NVML binding, without the deprecated ``pynvml`` package's warning.

    The ``pynvml`` distribution (deprecated, now a shim over nvidia-ml-py)
    installs an import hook that emits ``FutureWarning: The pynvml package is
    deprecated`` on the first import of any ``pynvml*`` module, even the official
    one; under ``-W error`` that would end the session. Only that warning is
    silenced, and only around this import.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"The pynvml package is deprecated", category=FutureWarning
        )
        try:
            import pynvml
        except ImportError:
            raise MeterUnavailable(INSTALL_HINT) from None
    return pynvml  # type: ignore[no-any-return]


def _import_binding() -> ModuleType:
    missing = nvml_library.binding_would_fail()
    if missing is not None:
        raise MeterUnavailable(f"NVML did not start: NVML Shared Library Not Found ({missing})")
    return import_pynvml()


def _binding_version(nvml: ModuleType, imported: bool) -> str | None:
    version = getattr(nvml, "__version__", None)
    if version is not None:
        return str(version)
    if not imported:
        # An injected module (a test's fake) is not the installed distribution.
        return None
    from importlib import metadata

    try:
        return metadata.version("nvidia-ml-py")
    except metadata.PackageNotFoundError:
        return None


@dataclass
class _Gpu:
    """A measured GPU: its CUDA ordinals, domain and counter state."""

    physical: PhysicalGpu
    ordinals: list[int]
    mig_selected: bool
    origin_mj: int = 0
    last_mj: int = 0
    #: Per process-listing kind, the binding functions still worth trying.
    listers: list[list[str]] = field(default_factory=list)

    @property
    def domain(self) -> str:
        return f"gpu:{self.ordinals[0]}"

    @property
    def label(self) -> str:
        return f"GPU {self.ordinals[0]} ({self.physical.name})"


def _power_limit_w(nvml: Any, handle: Any) -> float | None:
    # The enforced limit is what caps the board (our H100: 700 W, and a 3-s
    # matmul burst ran at 694 W); the management limit is the fallback.
    for function in ("nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetPowerManagementLimit"):
        try:
            return float(getattr(nvml, function)(handle)) / 1000.0
        except Exception:
            continue
    return None


def _shutdown_quietly(nvml: Any) -> None:
    # Nothing useful to do on failure: the process is done with NVML either way.
    with contextlib.suppress(Exception):
        nvml.nvmlShutdown()


class NvmlMeter:
    """Cumulative joules of every GPU this process can see, from NVML's energy counter."""

    def __init__(self, nvml: Any, gpus: Sequence[_Gpu], info: MeterInfo) -> None:
        """Use :meth:`open`; this takes an initialised binding and opened GPUs."""
        self._nvml = nvml
        self._gpus = tuple(gpus)
        self._info = info
        self._error_class: type[BaseException] = getattr(nvml, "NVMLError", Exception)
        self._not_supported = getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", _NVML_ERROR_NOT_SUPPORTED)
        self._no_permission = getattr(nvml, "NVML_ERROR_NO_PERMISSION", _NVML_ERROR_NO_PERMISSION)
        self._function_not_found = getattr(
            nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", _NVML_ERROR_FUNCTION_NOT_FOUND
        )
        self._closed = False

    @classmethod
    def open(cls, nvml: ModuleType | None = None) -> NvmlMeter:
        """Start NVML and open every visible GPU's energy counter.

        ``nvml`` is the binding module; ``None`` imports ``pynvml`` where
        NVIDIA's driver library loads (tests pass a fake). Raises
        :class:`MeterUnavailable` with a one-line reason when the binding, the
        driver, a GPU or its energy counter is missing.
        """
        imported = nvml is None
        module: Any = _import_binding() if nvml is None else nvml
        try:
            module.nvmlInit()
        except Exception as exc:
            raise MeterUnavailable(f"NVML did not start: {_describe(exc, module)}") from None
        try:
            return cls._open_initialised(module, imported)
        except BaseException:
            _shutdown_quietly(module)
            raise

    @classmethod
    def _open_initialised(cls, nvml: Any, imported: bool) -> NvmlMeter:
        try:
            physical = enumerate_gpus(nvml)
        except Exception as exc:
            raise MeterUnavailable(f"NVML cannot list GPUs: {_describe(exc, nvml)}") from None
        if not physical:
            raise MeterUnavailable("NVML found no NVIDIA GPU")
        cuda_visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        visible, ignored = visible_gpus(physical, cuda_visible)
        if not visible:
            reason = f" ({ignored[0]})" if ignored else ""
            raise MeterUnavailable(
                f"CUDA_VISIBLE_DEVICES={cuda_visible!r} leaves no GPU visible to this process"
                f"{reason}"
            )

        # Several MIG slices of one GPU are one board: measure it once, under
        # the first CUDA ordinal that reaches it, so no joule is counted twice.
        by_index: dict[int, _Gpu] = {}
        for ordinal, (board, mig) in enumerate(visible):
            if board.index in by_index:
                by_index[board.index].ordinals.append(ordinal)
                by_index[board.index].mig_selected |= mig
            else:
                by_index[board.index] = _Gpu(board, [ordinal], mig)
        opened = list(by_index.values())

        not_supported = getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", _NVML_ERROR_NOT_SUPPORTED)
        for gpu in opened:
            try:
                value = int(nvml.nvmlDeviceGetTotalEnergyConsumption(gpu.physical.handle))
            except Exception as exc:
                if _error_code(exc) == not_supported:
                    raise MeterUnavailable(
                        f"{gpu.label} has no energy counter (nvmlDeviceGetTotalEnergyConsumption "
                        "is not supported; it needs a Volta or newer GPU)"
                    ) from None
                raise MeterUnavailable(
                    f"{gpu.label} energy counter is not readable: {_describe(exc, nvml)}"
                ) from None
            gpu.origin_mj = gpu.last_mj = value
            gpu.listers = [
                [name for name in names if hasattr(nvml, name)] for names in _PROCESS_LISTERS
            ]

        info = cls._describe_meter(nvml, imported, opened, cuda_visible, ignored)
        return cls(nvml, opened, info)

    @staticmethod
    def _describe_meter(
        nvml: Any,
        imported: bool,
        gpus: Sequence[_Gpu],
        cuda_visible: str | None,
        ignored: Sequence[str],
    ) -> MeterInfo:
        def system(function: str) -> str | None:
            try:
                return text_of(getattr(nvml, function)())
            except Exception:
                return None

        driver = system("nvmlSystemGetDriverVersion")
        nvml_version = system("nvmlSystemGetNVMLVersion")
        binding = _binding_version(nvml, imported)
        mig = any(gpu.mig_selected or gpu.physical.mig_enabled for gpu in gpus)
        per_gpu = [
            {
                "domain": gpu.domain,
                "cuda_ordinals": list(gpu.ordinals),
                "nvml_index": gpu.physical.index,
                "name": gpu.physical.name,
                "uuid": gpu.physical.uuid,
                "driver_version": driver,
                "nvml_version": nvml_version,
                "nvidia_ml_py_version": binding,
                "power_limit_w": _power_limit_w(nvml, gpu.physical.handle),
                "mig": gpu.mig_selected or gpu.physical.mig_enabled,
            }
            for gpu in gpus
        ]
        details: dict[str, object] = {
            "gpus": per_gpu,
            "driver_version": driver,
            "nvml_version": nvml_version,
            "nvidia_ml_py_version": binding,
            "cuda_visible_devices": cuda_visible,
            "energy_source": "nvmlDeviceGetTotalEnergyConsumption (mJ), read at window edges",
        }
        if ignored:
            details["cuda_visible_devices_note"] = "; ".join(ignored)
        if mig:
            details["mig_note"] = MIG_NOTE
        by_index_order = cuda_visible is None or not cuda_visible.strip().upper().startswith(
            ("GPU-", "MIG-")
        )
        if (
            by_index_order
            and len({gpu.physical.name for gpu in gpus}) > 1
            and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID"
        ):
            details["cuda_order_note"] = ORDER_NOTE

        counts: dict[str, int] = {}
        for gpu in gpus:
            counts[gpu.physical.name] = counts.get(gpu.physical.name, 0) + 1
        models = " + ".join(f"{count}x {name}" for name, count in counts.items())
        extras = f", driver {driver}" if driver else ""
        if mig:
            extras += ", MIG slices measured as whole GPUs"
        return MeterInfo(
            name="nvml",
            method="measured",
            update_period_s=UPDATE_PERIOD_S,
            resolution_j=RESOLUTION_J,
            # 64-bit millijoules: no wrap in practice (resets only on driver reload).
            domains=tuple(DomainInfo(gpu.domain, "gpu-board") for gpu in gpus),
            details=details,
            summary=f"nvml (measured: {models}{extras})",
        )

    @property
    def info(self) -> MeterInfo:
        return self._info

    def read(self) -> Reading:
        """Joules per GPU since :meth:`open`; :class:`MeterError` if a GPU stops answering."""
        if self._closed:
            raise MeterError("the nvml meter was read after it was closed")
        nvml = self._nvml
        values: list[int] = []
        before = clock()
        for gpu in self._gpus:
            try:
                values.append(int(nvml.nvmlDeviceGetTotalEnergyConsumption(gpu.physical.handle)))
            except Exception as exc:
                raise MeterError(f"{gpu.label} stopped answering: {_describe(exc, nvml)}") from exc
        # Each read costs ~3 ms (h100-nvml-probe.json energy_read_us 3140): with
        # several GPUs the midpoint is the fairest single time for the edge.
        t = (before + clock()) / 2
        joules: dict[str, float] = {}
        for gpu, value in zip(self._gpus, values, strict=True):
            try:
                # 64-bit, so a decrease is a reset (driver reload), never a wrap.
                counter_delta(gpu.last_mj / 1000.0, value / 1000.0, None)
            except MeterError as exc:
                raise MeterError(f"{gpu.label}: {exc}") from exc
            joules[gpu.domain] = (value - gpu.origin_mj) / 1000.0
        for gpu, value in zip(self._gpus, values, strict=True):
            gpu.last_mj = value
        notes = frozenset({NOTE_GPU_SHARED}) if self._foreign_process() else frozenset()
        return Reading(t=t, joules=joules, notes=notes)

    def _foreign_process(self) -> bool:
        """Whether another process has a context on a measured GPU (best effort).

        NVML lists only processes with a context on the GPU, not whether they
        ran work, so this errs towards flagging. Failures skip the check:
        attribution is a warning, the counter is the measurement.
        """
        me = os.getpid()  # at each read, not at open: a forked child is another process
        for gpu in self._gpus:
            for candidates in gpu.listers:
                pids = self._list_pids(gpu.physical.handle, candidates)
                if pids is not None and any(pid != me for pid in pids):
                    return True
        return False

    def _list_pids(self, handle: Any, candidates: list[str]) -> list[int] | None:
        while candidates:
            function = candidates[0]
            try:
                processes = getattr(self._nvml, function)(handle)
                return [int(process.pid) for process in processes]
            except self._error_class as exc:
                code = _error_code(exc)
                if code in (self._not_supported, self._no_permission):
                    # The GPU or this user will never answer this listing.
                    candidates.clear()
                    return None
                if code != self._function_not_found:
                    # Transient: skip the check this time, try again next read.
                    return None
                candidates.pop(0)
            except Exception:
                # NVMLLibraryMismatchError (driver older than the binding) or a
                # binding without this function: try the next version.
                candidates.pop(0)
        return None

    def close(self) -> None:
        """Shut NVML down (NVML counts inits, so other users in the process are unaffected)."""
        if self._closed:
            return
        self._closed = True
        _shutdown_quietly(self._nvml)
