"""Two-commit git repositories for the ``pytest-energy ab`` tests, and how to run the command.

A repository has a package under ``src/`` (found through ``pythonpath`` in its
``pytest.ini``) and ``energy_benchmark`` tests; ``base`` is the first commit,
the working tree's HEAD the second. The meter is the replay meter with a cyclic
trace, so every round reads a known energy, whatever the machine is doing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import traces

PACKAGE = "def work(n):\n    return sum(range(n))\n"
INI = "[pytest]\npythonpath = src\n"


def bench(name: str, calls: int, body: str = "") -> str:
    """A benchmark of ``calls`` calls per round; ``body`` runs after the rounds."""
    return (
        f"def {name}(energy_benchmark):\n"
        f"    energy_benchmark.pedantic(work, (100,), calls_per_round={calls}, rounds=3)\n"
        + "".join(f"    {line}\n" for line in body.splitlines())
    )


def bench_file(*benchmarks: str) -> str:
    return "import os\n\nfrom demo import work\n\n\n" + "\n\n".join(benchmarks)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def write(repo: Path, files: Mapping[str, str | None]) -> None:
    for name, text in files.items():
        path = repo / name
        if text is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def make_repo(where: Path, base: Mapping[str, str | None], head: Mapping[str, str | None]) -> Path:
    """A repository whose first commit (tag ``base``) has ``base`` and HEAD adds ``head``."""
    repo = where / "repo"
    repo.mkdir()
    write(repo, {"src/demo/__init__.py": PACKAGE, "pytest.ini": INI, **base})
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "test@example.invalid")
    git(repo, "config", "user.name", "test")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "tag", "base")
    write(repo, head)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", "head")
    return repo


def constant_trace(where: Path, joules: float = 10.0) -> Path:
    """Every window of every worker reads ``joules`` over one second of a CPU package."""
    document = traces.trace(
        [0.0, joules], meter="rapl", domain="package-0", scope="cpu-package", cycle=True
    )
    return traces.write(where / "trace.json", document)


def cyclic_trace(where: Path, steps: list[float]) -> Path:
    """Windows read the increments ``steps`` in turn (a known, varying energy)."""
    energies = [0.0]
    for step in steps:
        energies.append(energies[-1] + step)
    document = traces.trace(
        energies, meter="rapl", domain="package-0", scope="cpu-package", cycle=True
    )
    return traces.write(where / "trace.json", document)


def run_ab(
    pytester: pytest.Pytester, repo: Path, trace: Path, *args: str, timeout: float = 300
) -> pytest.RunResult:
    """``pytest-energy ab --repo REPO ARGS -- --energy-meter=replay:TRACE``."""
    return pytester.run(
        sys.executable,
        "-m",
        "pytest_energy",
        "ab",
        "--repo",
        str(repo),
        "--budget",
        "1",
        *args,
        "--",
        f"--energy-meter=replay:{trace}",
        timeout=timeout,
    )


def worktrees(repo: Path) -> list[str]:
    return [line for line in git(repo, "worktree", "list").splitlines() if line.strip()]


def private_tmp(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary folder of the command's own, to check that it leaves nothing behind."""
    folder = pytester.path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
