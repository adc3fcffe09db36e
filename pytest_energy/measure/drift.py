"""The drift check: the calibration workload measured at the start and the end of a session.

If the same fixed work costs more than 2 % more energy at the end, the machine
changed during the session (thermal state, clocks, background load) and energy
alone must not fail the build (``docs/gate.md``).
"""

from __future__ import annotations

from pytest_energy.measure.calibration import calibration_work
from pytest_energy.measure.recorder import SessionRecorder
from pytest_energy.measure.sizing import calls_for_window, target_window, time_per_call


class DriftCheck:
    """The calibration workload in a few windows long enough for the meter."""

    def __init__(self, recorder: SessionRecorder, windows: int = 3) -> None:
        self._recorder = recorder
        self._windows = windows
        self._calls: int | None = None

    def measure(self) -> list[float]:
        """Joules per call of the workload, one value per window; [] when the meter failed."""
        recorder = self._recorder
        if recorder.meters is None or recorder.failure is not None:
            return []
        if self._calls is None:
            # Sized once: the end of the session repeats exactly the work of its start.
            target = target_window(recorder.meters.update_period_s, recorder.settings.window)
            self._calls = calls_for_window(time_per_call(calibration_work, target), target)
        energies: list[float] = []
        for _ in range(self._windows):
            window = recorder.open_window()
            if window is None:
                return []
            for _ in range(self._calls):
                calibration_work()
            measurement = recorder.close_window(window)
            if measurement is None:
                return []
            energies.append(measurement.total_j / self._calls)
        return energies
