"""Shared fixtures: every plugin test drives a real inner pytest through pytester."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import traces

pytest_plugins = ["pytester"]

#: Every integration test that matters under xdist runs serially, with -n 0 and with -n 2.
XDIST_MODES = [
    pytest.param([], id="serial"),
    pytest.param(["-n", "0"], id="n0"),
    pytest.param(["-n", "2"], id="n2"),
]


@pytest.fixture(autouse=True)
def _clean_energy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner runs must not inherit the developer's PYTEST_ENERGY_* settings."""
    import os

    for name in list(os.environ):
        if name.startswith("PYTEST_ENERGY"):
            monkeypatch.delenv(name)


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


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Results keyed by the test function's name (the part after '::')."""
    return {t["nodeid"].split("::", 1)[1]: t for t in data["tests"]}
