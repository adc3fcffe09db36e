"""What an energy session checks and prepares before its first test."""

from __future__ import annotations

import contextlib
import os

from pytest_energy.config.settings import SettingError, Settings
from pytest_energy.storage.history import History, HistoryError, HistoryLocked


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
