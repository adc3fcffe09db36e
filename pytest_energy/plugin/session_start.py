"""What an energy session checks and prepares before its first test."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

import pytest

from pytest_energy.carbon.accounting import SessionCarbon
from pytest_energy.config.settings import SettingError, Settings
from pytest_energy.measure.recorder import Role, SessionRecorder
from pytest_energy.meters import MeterUnavailable
from pytest_energy.storage.history import History, HistoryError, HistoryLocked

if TYPE_CHECKING:
    from pytest_energy.gate.run_gate import RunGate


def open_session(
    settings: Settings, config: pytest.Config, process_role: Role, workers: int
) -> tuple[SessionCarbon, SessionRecorder, RunGate | None]:
    """The session's carbon accounting, its recorder (meters open) and its gate, if it
    compares; a UsageError, with the meters closed, for what the session refuses."""
    try:
        # Workers only need the carbon settings for CO2e budgets: the live
        # provider, if any, is asked once, by the process that reports.
        carbon = SessionCarbon.resolve(settings, config, live=process_role != "worker")
    except SettingError as exc:
        raise pytest.UsageError(str(exc)) from None
    try:
        recorder = SessionRecorder(settings, process_role, workers=workers)
    except (MeterUnavailable, SettingError, ValueError) as exc:
        raise pytest.UsageError(f"--energy-meter={settings.meter}: {exc}") from None
    recorder.notices.extend(carbon.notices)
    try:
        if process_role != "worker":
            check_history(settings)
        baseline = None
        if settings.compare is not None or settings.history_baseline is not None:
            from pytest_energy.gate.baseline import open_baseline

            baseline = open_baseline(settings, recorder.machine)
    except SettingError as exc:
        recorder.close()
        raise pytest.UsageError(str(exc)) from None
    if process_role != "serial" and (settings.save_baseline or settings.update_baseline):
        recorder.close()
        raise pytest.UsageError(
            "--energy-save-baseline / --energy-update-baseline: refused under pytest-xdist "
            "(tests measured in parallel share machine-wide counters); run the energy job "
            "serially, with -n 0 or -p no:xdist"
        )
    if process_role != "worker":
        prepare_energy_dir(settings)
    if baseline is None:
        return carbon, recorder, None
    from pytest_energy.gate.run_gate import RunGate

    return carbon, recorder, RunGate(settings, baseline)


def prepare_energy_dir(settings: Settings) -> None:
    """Create the energy folder with its ``.gitignore`` when an output goes into it.

    Otherwise ``--energy-json=.energy/results.json`` on a fresh checkout makes the
    folder with a plain ``mkdir`` and the history written there later is not ignored.
    """
    outputs = (settings.json, settings.html, settings.markdown)
    energy_dir = os.path.abspath(settings.dir)
    if os.path.exists(energy_dir) or not any(
        path is not None and os.path.abspath(path).startswith(energy_dir + os.sep)
        for path in outputs
    ):
        return
    from pytest_energy.storage.energy_dir import prepare_directory

    # On failure the writer that needs the folder says what is wrong, on one line.
    with contextlib.suppress(OSError):
        prepare_directory(settings.dir)


def check_history(settings: Settings) -> None:
    """Refuse, before any test runs, a history path that holds someone else's file."""
    if settings.history is None or not settings.history.exists():
        return
    try:
        History(settings.history).check()
    except HistoryLocked:
        return  # another run is writing: this run is queued at the end if it still is
    except HistoryError as exc:
        raise SettingError(f"--energy-history: {exc}") from None
