"""Extension points of pytest-energy: implement these in a ``conftest.py`` or a plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_energy.record import RunRecord, TestResult


def pytest_energy_update_machine_info(config: pytest.Config, machine: dict[str, Any]) -> None:
    """Add facts to the machine fingerprint's ``extra`` mapping (not the hardware class).

    For example, record the runner type so reports show it::

        def pytest_energy_update_machine_info(config, machine):
            machine["runner"] = os.environ.get("RUNNER_NAME", "local")
    """


@pytest.hookspec(firstresult=True)
def pytest_energy_intensity_provider(config: pytest.Config) -> Any | None:
    """Return a live grid-intensity provider, or None for ``--energy-intensity-provider``.

    A provider has a ``name`` and ``intensity(region) -> LiveIntensity | None``
    (see :class:`pytest_energy.carbon.IntensityProvider`). It is asked once per
    session, only with ``--energy``; keep it fast, the run waits for it. For
    example, a fixed figure from your own grid contract::

        from pytest_energy.carbon import LiveIntensity

        class Contract:
            name = "our-contract"

            def intensity(self, region):
                return LiveIntensity(g_per_kwh=120.0, zone=region, datetime="2026-01-01",
                                     basis="operational", estimated=False,
                                     source="our grid contract", attribution="ACME Power")

        def pytest_energy_intensity_provider(config):
            return Contract()
    """


def pytest_energy_test_result(config: pytest.Config, result: TestResult) -> None:
    """Called on the controller for every test result as it arrives.

    For example, stream results to a dashboard::

        def pytest_energy_test_result(config, result):
            if result.measurement is not None:
                print(result.nodeid, result.measurement.total_j)
    """


def pytest_energy_run_record(config: pytest.Config, record: RunRecord) -> None:
    """Called once with the final run record, before any file is written.

    For example, fail a nightly job when the session used more than 1 kJ::

        def pytest_energy_run_record(config, record):
            if record.session.totals["joules"] > 1000:
                config.stash[...] = ...  # or write your own file
    """
