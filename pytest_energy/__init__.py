"""pytest-energy: measure the energy of tests and benchmarks, and gate on regressions.

Loading this package (which pytest does for every run once it is installed)
imports nothing heavy: the public names below are resolved on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "EnergyBenchmark",
    "Measurement",
    "MeterInfo",
    "Reading",
    "RunRecord",
    "TestResult",
    "Verdict",
    "__version__",
    "describe_model",
    "load_results",
]

_LAZY = {
    "EnergyBenchmark": ("pytest_energy.benchmark", "EnergyBenchmark"),
    "Measurement": ("pytest_energy.results", "Measurement"),
    "RunRecord": ("pytest_energy.results", "RunRecord"),
    "TestResult": ("pytest_energy.results", "TestResult"),
    "Verdict": ("pytest_energy.results", "Verdict"),
    "load_results": ("pytest_energy.results", "load"),
    "describe_model": ("pytest_energy.modelinfo", "describe_model"),
    "MeterInfo": ("pytest_energy.meters.base", "MeterInfo"),
    "Reading": ("pytest_energy.meters.base", "Reading"),
}

if TYPE_CHECKING:
    from .benchmark import EnergyBenchmark
    from .meters.base import MeterInfo, Reading
    from .modelinfo import describe_model
    from .results import Measurement, RunRecord, TestResult, Verdict
    from .results import load as load_results


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'pytest_energy' has no attribute {name!r}")
