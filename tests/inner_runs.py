"""Helpers for tests that drive an inner pytest through pytester."""

from __future__ import annotations

from typing import Any

import pytest

#: Every integration test that matters under xdist runs serially, with -n 0 and with -n 2.
XDIST_MODES = [
    pytest.param([], id="serial"),
    pytest.param(["-n", "0"], id="n0"),
    pytest.param(["-n", "2"], id="n2"),
]


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Results keyed by the test function's name (the part after '::')."""
    return {t["nodeid"].split("::", 1)[1]: t for t in data["tests"]}
