"""The drift check: a fixed workload in the meter's own domain, at the start and the end.

If the same fixed work costs more than 2 % more energy at the end, the machine
changed during the session (thermal state, clocks, background load), and a
regression must clear the threshold by the drift too before it fails the build
(``docs/gate.md``). The start is measured just before the first benchmark's
rounds, so it runs in the same CUDA context state as the work it stands beside.
"""

from __future__ import annotations

from pytest_energy.measure.calibration import Workload, cpu_workload, gpu_workload
from pytest_energy.measure.recorder import SessionRecorder
from pytest_energy.measure.sizing import calls_for_window, target_window


class DriftCheck:
    """The calibration workload in a few windows long enough for the meter."""

    def __init__(self, recorder: SessionRecorder, windows: int = 5) -> None:
        self._recorder = recorder
        self._windows = windows
        self._workload: Workload | None = None
        self._calls: int | None = None
        #: Why the check did not run, when it did not.
        self.skipped: str | None = None

    def _choose(self) -> Workload | None:
        if self._workload is None and self.skipped is None:
            meters = self._recorder.meters
            if meters is not None and meters.deterministic:
                self.skipped = (
                    "the meter is deterministic (the same work is priced the same): "
                    "a session cannot drift"
                )
                return None
            gpu = meters is not None and any(d.scope == "gpu-board" for d in meters.domains)
            chosen = gpu_workload() if gpu else cpu_workload()
            if isinstance(chosen, str):
                self.skipped = chosen
            else:
                self._workload = chosen
        return self._workload

    @property
    def workload(self) -> str:
        return self._workload.name if self._workload is not None else ""

    def measure(self) -> list[float]:
        """Joules per call of the workload, one value per window; [] when it cannot run."""
        recorder = self._recorder
        if recorder.meters is None or recorder.failure is not None:
            return []
        workload = self._choose()
        if workload is None:
            return []
        if self._calls is None:
            # Sized once: the end of the session repeats exactly the work of its start.
            target = target_window(recorder.meters.update_period_s, recorder.settings.window)
            self._calls = calls_for_window(workload.seconds_per_call(target), target)
        energies: list[float] = []
        for _ in range(self._windows):
            window = recorder.open_window()
            if window is None:
                return []
            workload.run(self._calls)
            measurement = recorder.close_window(window)
            if measurement is None:
                return []
            energies.append(measurement.total_j / self._calls)
        return energies
