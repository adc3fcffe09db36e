"""``--energy-scope=protocol``: windows around setup, call and teardown together."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from pytest_energy.measure.recorder import SessionRecorder
from pytest_energy.plugin.energy_run import MEASUREMENT, WINDOW


class ProtocolWindows:
    """``--energy-scope=protocol``: each window spans setup, call and teardown.

    A plugin of its own, registered only for that scope, so that the default scope
    pays for no hook wrappers around setup and teardown.
    """

    def __init__(self, recorder: SessionRecorder) -> None:
        self._recorder = recorder

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, object, object]:
        item.stash[WINDOW] = self._recorder.open_window()
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            window = item.stash.get(WINDOW, None)
            item.stash[MEASUREMENT] = self._recorder.close_window(window)
