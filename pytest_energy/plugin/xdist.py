"""pytest-xdist: which role this process plays, and the controller's extra hook.

Each worker measures its own tests; the controller never measures (it opens the
named meter once, at configure time, only to refuse one that is not there), and
collects the results from the reports and each worker's final output.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from pytest_energy.config.settings import Settings
from pytest_energy.measure.recorder import Role
from pytest_energy.meters import MeterUnavailable, check_available

#: Where a worker's results ride to the controller: on each teardown report, and
#: in the worker's final output.
REPORT_KEY = "pytest_energy"


def role(config: pytest.Config) -> tuple[Role, int]:
    """This process's role and the number of workers (0 when serial)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        count = int(
            workerinput.get("workercount", os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        )
        return "worker", count
    processes = getattr(config.option, "numprocesses", None)
    if processes and getattr(config.option, "dist", "no") != "no":
        return "controller", int(processes)
    return "serial", 0


def check_meters_on_controller(settings: Settings) -> None:
    """Refuse, once and before any worker starts, a named meter that is not there.

    The controller never measures, so without this each worker fails to open the
    meter on its own, xdist restarts it, and the run ends in a crash loop (exit 5)
    instead of one usage error.
    """
    try:
        check_available(
            settings.meter, rapl_root=settings.rapl_root, model_watts=settings.model_watts
        )
    except (MeterUnavailable, ValueError) as exc:
        raise pytest.UsageError(f"--energy-meter={settings.meter}: {exc}") from None


class XdistController:
    """xdist hooks, registered only when xdist drives this session.

    ``collect`` takes each test's result as a worker sends it on its teardown
    report; ``merge`` takes what a worker sends as it ends.
    """

    def __init__(
        self,
        merge: Callable[[Mapping[str, Any]], None],
        collect: Callable[[Mapping[str, Any]], None],
    ) -> None:
        self._merge = merge
        self._collect = collect

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Here, not on the session's plugin: a serial run pays no call per report.
        if report.when != "teardown":
            return
        data = report.__dict__.get(REPORT_KEY)
        if isinstance(data, dict):
            self._collect(data)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", {}).get(REPORT_KEY)
        if isinstance(output, dict):
            self._merge(output)
