"""The pytest entry point of pytest-energy: options, the marker, the fixture.

Everything else lives in :class:`pytest_energy.plugin.energy_run.EnergyRun`,
registered only when ``--energy`` is on. With it off, loading this module
imports no meter, no pynvml, no torch and no jinja2, and touches no hardware.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, cast

import pytest

if TYPE_CHECKING:
    from pytest_energy.measure.benchmark import EnergyBenchmark

RUN_PLUGIN_NAME = "energy-run"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_energy import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    from pytest_energy.config.options import OPTIONS

    group = parser.getgroup("energy", "energy measurement (pytest-energy)")
    for option in OPTIONS:
        # argparse %-formats help strings: "5%" must be written "5%%".
        help_text = f"{option.help}. Also ini {option.ini} and env {option.env}".replace("%", "%%")
        if option.kind == "flag":
            group.addoption(
                option.flag, action="store_true", default=None, dest=option.dest, help=help_text
            )
        elif option.kind == "optional":
            group.addoption(
                option.flag,
                nargs="?",
                const=option.const,
                default=None,
                dest=option.dest,
                metavar=option.metavar,
                help=help_text,
            )
        else:
            group.addoption(
                option.flag, default=None, dest=option.dest, metavar=option.metavar, help=help_text
            )
        parser.addini(option.ini, option.help, type="string", default=None)


def _switched_on(config: pytest.Config) -> bool:
    """``--energy`` > ``PYTEST_ENERGY`` > ini ``energy``, read without loading the settings.

    This runs on every pytest start, so it stays cheap. Any non-empty value but an
    explicit "off" switches on; the settings then validate it properly.
    """
    if config.getoption("energy_enabled", default=None):
        return True
    raw = os.environ.get("PYTEST_ENERGY", "").strip()
    if not raw:
        ini = config.getini("energy")
        raw = ini.strip() if isinstance(ini, str) else ""
    return raw.lower() not in ("", "0", "false", "no", "off")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    from pytest_energy.config.options import MARKER_SIGNATURE

    config.addinivalue_line("markers", MARKER_SIGNATURE)
    if getattr(config.option, "help", False) or not _switched_on(config):
        return
    from pytest_energy.config.settings import SettingError, Settings

    try:
        settings = Settings.from_config(config)
    except SettingError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not settings.enabled:
        return
    from pytest_energy.plugin.energy_run import EnergyRun

    config.pluginmanager.register(EnergyRun.start(config, settings), RUN_PLUGIN_NAME)


@pytest.fixture
def energy_benchmark(request: pytest.FixtureRequest) -> EnergyBenchmark:
    """Measure a function's energy per call and per unit of work in calibrated rounds.

    Without ``--energy`` (or with ``--energy-benchmark-disable``) the function is
    called once and nothing is measured.
    """
    from pytest_energy.measure.benchmark import EnergyBenchmark

    # The run plugin is registered only with --energy; without it, nothing of the
    # measuring machinery is imported.
    run = request.config.pluginmanager.get_plugin(RUN_PLUGIN_NAME)
    if run is not None and not run.settings.benchmark_disable:
        return cast("EnergyBenchmark", run.benchmark_for(request))
    return EnergyBenchmark(request, None)
