"""Shared fixtures: every plugin test drives a real inner pytest through pytester.

Helpers that tests import live in ordinary modules (``inner_runs``, ``records``,
``traces``, ``fake_nvml``, ``powercap_tree``), never in this file.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import traces

# postgres_server: the throwaway PostgreSQL server of the shared-history tests.
pytest_plugins = ["pytester", "postgres_server"]

#: A ``pynvml`` that cannot be imported, first on the path of inner subprocess runs.
NO_NVML = 'raise ImportError("the test suite hides this machine\'s NVML")\n'


@pytest.fixture(autouse=True)
def _clean_energy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner runs must not inherit the developer's PYTEST_ENERGY_* settings."""
    for name in list(os.environ):
        if name.startswith("PYTEST_ENERGY"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _no_real_counters(
    _clean_energy_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Inner runs see none of this machine's energy counters, only the fakes a test installs.

    The suite must give the same results on a laptop, a GPU server and a CI VM: an
    empty powercap tree stands in for ``/sys/class/powercap`` (a test's own
    ``--energy-rapl-root`` wins over it), and ``import pynvml`` fails unless a test
    puts a fake first on the path.
    """
    monkeypatch.setenv("PYTEST_ENERGY_RAPL_ROOT", str(tmp_path_factory.mktemp("no-powercap")))
    monkeypatch.setitem(sys.modules, "pynvml", None)
    stub = tmp_path_factory.getbasetemp() / "no-nvml"
    if not (stub / "pynvml.py").exists():
        stub.mkdir(exist_ok=True)
        (stub / "pynvml.py").write_text(NO_NVML, encoding="utf-8")
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(stub), *([path] if path else [])]))


@pytest.fixture
def replay(pytester: pytest.Pytester) -> Callable[..., Path]:
    """Write a replay trace into the inner test folder and return its path."""

    def make(document: dict[str, Any], name: str = "trace.json") -> Path:
        return traces.write(pytester.path / name, document)

    return make


@pytest.fixture
def results(pytester: pytest.Pytester) -> Callable[[str], dict[str, Any]]:
    """Load a results file written by the inner run."""

    def load(name: str = "results.json") -> dict[str, Any]:
        data: dict[str, Any] = json.loads((pytester.path / name).read_text(encoding="utf-8"))
        return data

    return load
