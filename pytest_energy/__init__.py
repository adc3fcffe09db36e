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
    "EnergyBenchmark": ("pytest_energy.measure.benchmark", "EnergyBenchmark"),
    "Measurement": ("pytest_energy.record", "Measurement"),
    "RunRecord": ("pytest_energy.record", "RunRecord"),
    "TestResult": ("pytest_energy.record", "TestResult"),
    "Verdict": ("pytest_energy.record", "Verdict"),
    "load_results": ("pytest_energy.record", "load"),
    "describe_model": ("pytest_energy.measure.model_info", "describe_model"),
    "MeterInfo": ("pytest_energy.meters.base", "MeterInfo"),
    "Reading": ("pytest_energy.meters.base", "Reading"),
}

if TYPE_CHECKING:
    from pytest_energy.measure.benchmark import EnergyBenchmark
    from pytest_energy.measure.model_info import describe_model
    from pytest_energy.meters.base import MeterInfo, Reading
    from pytest_energy.record import Measurement, RunRecord, TestResult, Verdict
    from pytest_energy.record import load as load_results


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'pytest_energy' has no attribute {name!r}")
