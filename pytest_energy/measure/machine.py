"""The machine fingerprint, and the hardware class that decides what may be compared.

Numbers from different CPUs, GPUs or meter methods are never compared: the
hardware class is a readable slug of exactly those, plus a short hash.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_energy.meters import MeterInfo
from pytest_energy.record import Machine

#: CPU flags that decide low-precision speed (int8 VNNI, bf16, AMX): a baseline
#: taken with them does not transfer to a CPU without them.
ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "fma",
)
#: Bytes read from /proc/cpuinfo at a time: one processor's block is 1-2 kB.
_BLOCK_READ = 4096


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> tuple[str, list[str]]:
    try:
        fields = _first_processor(path)
    except OSError:
        return platform.processor() or platform.machine() or "unknown CPU", []
    present = set(fields.get("flags", "").split())
    name = fields.get("model name") or platform.processor() or platform.machine()
    return name or "unknown CPU", [f for f in ISA_FLAGS if f in present]


def _first_processor(path: Path) -> dict[str, str]:
    """The ``key : value`` lines of the first processor's block of ``/proc/cpuinfo``.

    The kernel writes the file a processor at a time as it is read, so a many-core
    host's start-up does not pay for a few hundred blocks (hundreds of kB) that repeat
    the first. Where the first block has no model name (some ARM kernels print it
    once, after the processors), the whole file is read. A key's first value wins.
    """
    with path.open("rb") as handle:
        text = handle.read(_BLOCK_READ)
        while b"\n\n" not in text:
            more = handle.read(_BLOCK_READ)
            if not more:
                break
            text += more
        first = _fields(text.partition(b"\n\n")[0])
        if "model name" not in first:
            first = _fields(text + handle.read())
    return first


def _fields(text: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.decode("utf-8", errors="replace").splitlines():
        key, colon, value = line.partition(":")
        if colon and value.strip():
            fields.setdefault(key.strip(), value.strip())
    return fields


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "unknown"


def hardware_class(
    cpu_model: str, gpu_models: Sequence[str], method: str, meters: Sequence[str]
) -> str:
    """``modelled-amd-epyc-9r14-3f2a9c1b``: what a baseline is keyed by."""
    key = "|".join([cpu_model, ",".join(sorted(gpu_models)), method, ",".join(sorted(meters))])
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    parts = [method, _slug(cpu_model)]
    if gpu_models:
        parts.append(_slug(gpu_models[0]) + (f"-x{len(gpu_models)}" if len(gpu_models) > 1 else ""))
    return "-".join([*parts, digest])


def _gpus(infos: Sequence[MeterInfo]) -> list[dict[str, Any]]:
    gpus: list[dict[str, Any]] = []
    for info in infos:
        listed = info.details.get("gpus")
        if isinstance(listed, list):
            gpus.extend(dict(g) for g in listed if isinstance(g, Mapping))
    return gpus


def portable_class(infos: Sequence[MeterInfo]) -> str | None:
    """The hardware class a machine-independent meter declares (the ops meter's
    ``ops-<table version>``): its joules depend on the work, not on the CPU or GPU."""
    declared = {str(info.details.get("hardware_class") or "") for info in infos}
    return declared.pop() if len(infos) == 1 and declared and all(declared) else None


def fingerprint(
    infos: Sequence[MeterInfo], method: str, plugin_version: str, pytest_version: str
) -> Machine:
    """Describe this machine and the active meters."""
    cpu_model, flags = _cpuinfo()
    gpus = _gpus(infos)
    meters = [info.name for info in infos]
    gpu_models = [str(g.get("name", "GPU")) for g in gpus]
    portable = portable_class(infos)
    return Machine(
        cpu_model=cpu_model,
        cpu_count=os.cpu_count() or 1,
        cpu_flags=flags,
        gpus=gpus,
        kernel=platform.release(),
        os=platform.system(),
        python=platform.python_version(),
        plugin_version=plugin_version,
        pytest_version=pytest_version,
        method=method,
        meters=meters,
        hardware_class=portable or hardware_class(cpu_model, gpu_models, method, meters),
        extra={"machine": platform.machine(), "python_implementation": sys.implementation.name},
    )


def git_revision(cwd: Path) -> tuple[str | None, str | None]:
    """The commit and branch, from CI variables first, then git; never fails."""
    commit = os.environ.get("GITHUB_SHA") or os.environ.get("CI_COMMIT_SHA")
    branch = (
        os.environ.get("GITHUB_HEAD_REF")
        or os.environ.get("GITHUB_REF_NAME")
        or os.environ.get("CI_COMMIT_REF_NAME")
    )
    if commit and branch:
        return commit, branch

    found = _head_from_files(cwd)
    if found is not None:
        return commit or found[0], branch or found[1]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=2, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        out = done.stdout.strip()
        return out if done.returncode == 0 and out else None

    commit = commit or git("rev-parse", "HEAD")
    branch = branch or git("rev-parse", "--abbrev-ref", "HEAD")
    return commit, (None if branch == "HEAD" else branch)


_HEX_DIGITS = frozenset("0123456789abcdef")


def _is_object_name(text: str) -> bool:
    """A full SHA-1 or SHA-256 object name as git writes it: 40 or 64 lowercase hex digits.

    Tested without a regular expression: compiling one cost every run's end ~0.1 ms.
    """
    return len(text) in (40, 64) and _HEX_DIGITS.issuperset(text)


def _head_from_files(cwd: Path) -> tuple[str | None, str | None] | None:
    """HEAD's commit and branch read from the repository's files, without starting git.

    Two ``git`` processes cost a run about 8 ms at its end (issue 16: the fixed cost of
    ``--energy``). Returns ``(None, None)`` outside a repository, and None for anything
    this does not read (``GIT_DIR`` set, a ref in another storage format): git decides.
    """
    if os.environ.get("GIT_DIR"):
        return None
    try:
        gitdir = _git_dir(cwd.resolve())
        if gitdir is None:
            return None, None
        head = (gitdir / "HEAD").read_text(encoding="utf-8").strip()
        if _is_object_name(head):
            return head, None  # detached
        if not head.startswith("ref: "):
            return None
        ref = head[len("ref: ") :]
        branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
        common = gitdir
        if (gitdir / "commondir").is_file():  # a linked worktree shares the main refs
            common = gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()
        return _resolve_ref(ref, gitdir, common.resolve()), branch
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _git_dir(start: Path) -> Path | None:
    """The git directory of the repository holding ``start``, as git finds it (no env)."""
    for folder in (start, *start.parents):
        dotgit = folder / ".git"
        if dotgit.is_dir():
            return dotgit
        if dotgit.is_file():
            text = dotgit.read_text(encoding="utf-8").strip()
            if not text.startswith("gitdir: "):
                raise ValueError(f"unexpected {dotgit}")
            return (folder / text[len("gitdir: ") :]).resolve()
    return None


def _resolve_ref(ref: str, gitdir: Path, common: Path) -> str | None:
    """The commit a branch points at: a loose ref file, else the packed refs; None if unborn."""
    for folder in (gitdir, common):
        loose = folder / ref
        if loose.is_file():
            value = loose.read_text(encoding="utf-8").strip()
            if _is_object_name(value):
                return value
            raise ValueError(f"unexpected {loose}")
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and _is_object_name(sha):
                return sha
    if (common / "reftable").exists():
        raise ValueError("reftable")  # another storage format: ask git
    return None  # a branch with no commit yet
