"""The modelled meter: process CPU time times a cited per-core power figure.

Used where no energy counter is readable (VMs, GitHub-hosted runners). Its
numbers are labelled ``modelled`` everywhere. Absolute joules are estimates;
ratios between runs on the same runner type track CPU work, which is what a
regression gate on hosted CI can honestly show.
"""

from __future__ import annotations

import os
import sys
import time

from pytest_energy.meters.base import DomainInfo, MeterInfo, Reading, clock

#: Watts per busy vCPU at 100 % utilisation: Cloud Carbon Footprint's average
#: "max watts" coefficient for AWS, derived from SPECpower results
#: (cloud-carbon-footprint/cloud-carbon-footprint,
#: packages/aws/src/domain/AwsFootprintEstimationConstants.ts, MAX_WATTS_AVG = 3.5;
#: the matching minimum is 0.74 W). Override with --energy-model-watts.
DEFAULT_WATTS_PER_CORE = 3.5
WATTS_SOURCE = (
    "Cloud Carbon Footprint, AWS average max watts per vCPU (SPECpower-derived), "
    "packages/aws/src/domain/AwsFootprintEstimationConstants.ts"
)

#: Children's CPU time is accounted in clock ticks (USER_HZ, 100 on Linux),
#: so the model resolves about 10 ms of CPU time.
UPDATE_PERIOD_S = 0.01
#: The model's one domain.
DOMAIN = "cpu"


if sys.platform == "win32":

    def _children_seconds() -> float:
        """User + system CPU time of the waited-for child processes."""
        times = os.times()
        return times.children_user + times.children_system

else:
    import resource

    def _children_seconds() -> float:
        """User + system CPU time of the waited-for child processes."""
        # getrusage: microsecond accounting, and a third of the cost of os.times(),
        # which this read paid on both window edges of every test (issue 16).
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime


def process_cpu_seconds() -> float:
    """CPU time of this process (all threads) plus its waited-for children."""
    # process_time() reads CLOCK_PROCESS_CPUTIME_ID: nanosecond accounting of
    # every thread, unlike the tick-based os.times() fields for the process itself.
    return time.process_time() + _children_seconds()


class ModelMeter:
    """CPU time x watts per core; never 0 for a window in which the process used CPU."""

    def __init__(self, watts_per_core: float = DEFAULT_WATTS_PER_CORE) -> None:
        self._watts = watts_per_core
        self._origin = process_cpu_seconds()
        self._info = MeterInfo(
            name="model",
            method="modelled",
            update_period_s=UPDATE_PERIOD_S,
            resolution_j=watts_per_core * UPDATE_PERIOD_S,
            domains=(DomainInfo(DOMAIN, "process-cpu"),),
            details={"watts_per_core": watts_per_core, "watts_source": WATTS_SOURCE},
            summary=f"model (modelled: process CPU time x {watts_per_core:g} W per core)",
        )

    @property
    def info(self) -> MeterInfo:
        return self._info

    def read(self) -> Reading:
        t, joules = self.edge()
        return Reading(t=t, joules={DOMAIN: joules})

    def edge(self) -> tuple[float, float]:
        """The time and the joules so far, the numbers of :meth:`read` without its record:
        what a plain test's window reads at each edge (issue 16)."""
        cpu_seconds = process_cpu_seconds() - self._origin
        return clock(), cpu_seconds * self._watts

    def close(self) -> None:
        """Nothing to release."""
