"""Which GPUs this process sees: NVML's enumeration mapped through ``CUDA_VISIBLE_DEVICES``.

NVML numbers GPUs by PCI bus; CUDA numbers the ones ``CUDA_VISIBLE_DEVICES``
leaves visible, in its order. The meter measures exactly the GPUs CUDA shows
this process, so a test's energy is that of the devices it can use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_NVML_DEVICE_MIG_ENABLE = 1


def text_of(value: object) -> str:
    # Bindings older than nvidia-ml-py 11.515 return bytes.
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


@dataclass
class PhysicalGpu:
    """One physical GPU as NVML enumerates it (PCI bus order)."""

    index: int
    handle: Any
    name: str
    uuid: str
    mig_enabled: bool
    #: UUIDs of its MIG devices, when MIG mode is on.
    mig_uuids: tuple[str, ...] = ()


def _mig_uuids(nvml: Any, handle: Any) -> tuple[bool, tuple[str, ...]]:
    """Whether MIG mode is on, and the UUIDs of the GPU's MIG devices."""
    try:
        current = nvml.nvmlDeviceGetMigMode(handle)[0]
    except Exception:
        # NOT_SUPPORTED on GPUs without MIG, AttributeError on old bindings.
        return False, ()
    if current != getattr(nvml, "NVML_DEVICE_MIG_ENABLE", _NVML_DEVICE_MIG_ENABLE):
        return False, ()
    uuids: list[str] = []
    try:
        count = int(nvml.nvmlDeviceGetMaxMigDeviceCount(handle))
    except Exception:
        return True, ()
    for slot in range(count):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            uuids.append(text_of(nvml.nvmlDeviceGetUUID(mig)))
        except Exception:
            # Empty slots answer NOT_FOUND.
            continue
    return True, tuple(uuids)


def enumerate_gpus(nvml: Any) -> list[PhysicalGpu]:
    gpus = []
    for index in range(int(nvml.nvmlDeviceGetCount())):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        mig_enabled, mig_uuids = _mig_uuids(nvml, handle)
        gpus.append(
            PhysicalGpu(
                index=index,
                handle=handle,
                name=text_of(nvml.nvmlDeviceGetName(handle)),
                uuid=text_of(nvml.nvmlDeviceGetUUID(handle)),
                mig_enabled=mig_enabled,
                mig_uuids=mig_uuids,
            )
        )
    return gpus


def _leading_int(entry: str) -> int:
    """What strtoul reads from the start of ``entry``, as CUDA does; -1 if nothing."""
    digits = ""
    for position, char in enumerate(entry):
        if char.isdigit() or (position == 0 and char in "+-"):
            digits += char
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return -1


def _match_uuid(entry: str, gpus: Sequence[PhysicalGpu]) -> tuple[PhysicalGpu, bool] | None:
    """The GPU a ``GPU-``/``MIG-`` entry names (exactly or by a unique prefix)."""
    wanted = entry.lower()
    candidates: list[tuple[str, PhysicalGpu, bool]] = []
    if wanted.startswith("mig-gpu-"):
        # The pre-R470 form MIG-GPU-<parent uuid>/<gi>/<ci> names the parent.
        parent = wanted[len("mig-") :].split("/", 1)[0]
        candidates = [(gpu.uuid.lower(), gpu, True) for gpu in gpus]
        wanted = parent
    elif wanted.startswith("mig-"):
        candidates = [(uuid.lower(), gpu, True) for gpu in gpus for uuid in gpu.mig_uuids]
    else:
        candidates = [(gpu.uuid.lower(), gpu, False) for gpu in gpus]
    exact = [(gpu, mig) for uuid, gpu, mig in candidates if uuid == wanted]
    if exact:
        return exact[0]
    matches = [(gpu, mig) for uuid, gpu, mig in candidates if uuid.startswith(wanted)]
    # CUDA accepts a prefix only when it names one device.
    return matches[0] if len(matches) == 1 else None


def visible_gpus(
    gpus: Sequence[PhysicalGpu], cuda_visible_devices: str | None
) -> tuple[list[tuple[PhysicalGpu, bool]], list[str]]:
    """The GPUs CUDA shows this process, in CUDA's order, each with a MIG flag.

    Follows the CUDA documentation for ``CUDA_VISIBLE_DEVICES``: entries are
    indices or UUIDs (unique prefixes allowed); the first entry that names no
    device ends the list (``0,2,-1,1`` shows 0 and 2); a repeated device hides
    every device (as torch's parser notes); only one MIG device is enumerated.
    Also returns what was ignored, for the details.
    """
    if cuda_visible_devices is None:
        return [(gpu, gpu.mig_enabled) for gpu in gpus], []
    chosen: list[tuple[PhysicalGpu, bool]] = []
    seen: set[str] = set()
    entries = [entry.strip() for entry in cuda_visible_devices.split(",")]
    for position, entry in enumerate(entries):
        later = position + 1 < len(entries)
        if entry.upper().startswith(("GPU-", "MIG-")):
            found = _match_uuid(entry, gpus)
        else:
            index = _leading_int(entry)
            found = (gpus[index], gpus[index].mig_enabled) if 0 <= index < len(gpus) else None
        if found is None:
            if chosen or later:
                return chosen, [f"{entry!r} names no GPU here, so CUDA ignores it and what follows"]
            return chosen, []
        gpu, mig = found
        is_mig_entry = entry.upper().startswith("MIG-")
        key = entry.lower() if is_mig_entry else gpu.uuid.lower()
        if key in seen:
            return [], [f"{entry!r} repeats a device, so CUDA shows no GPU"]
        seen.add(key)
        chosen.append((gpu, mig))
        if is_mig_entry and later:
            return chosen, [f"CUDA enumerates one MIG device: entries after {entry!r} are ignored"]
    return chosen, []
