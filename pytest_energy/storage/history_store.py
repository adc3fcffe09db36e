"""Which history a setting names: the local SQLite file, or a shared PostgreSQL database.

``--energy-history`` (and ``pytest-energy history --history``) takes a path, an
``sqlite:///PATH`` URL or a ``postgresql://`` URL
(:func:`pytest_energy.config.options.parse_history`). With a server, the local
file still matters: it keeps the runs the server could not take.
"""

from __future__ import annotations

from pathlib import Path

from pytest_energy.storage.history import DEFAULT_PATH, SERIES_POINTS, History, load_series
from pytest_energy.storage.history_base import RunHistory

__all__ = ["open_history", "trend_series"]


def open_history(path: Path | None, url: str | None = None) -> RunHistory | None:
    """The history at ``url`` (queueing in ``path``), or at ``path``; None when it is off."""
    if url is not None:
        # Imported here: every session opens its history, few of them on a server.
        from pytest_energy.storage.history_postgres import PostgresHistory

        return PostgresHistory(url, History(path or DEFAULT_PATH))
    return None if path is None else History(path)


def trend_series(
    path: Path | None, url: str | None, hardware_class: str
) -> dict[str, list[float]] | None:
    """The HTML report's sparklines per test id; None when there is no history to draw from.

    Raises :class:`~pytest_energy.storage.history_base.HistoryError` when the
    history cannot be read.
    """
    if url is not None:
        history = open_history(path, url)
        assert history is not None
        return history.last_runs(hardware_class, None, SERIES_POINTS)
    if path is None or not path.exists():
        return None
    return load_series(path, hardware_class)
