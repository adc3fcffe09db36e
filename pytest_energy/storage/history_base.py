"""What every run history answers, whichever database holds it.

The local SQLite file (:mod:`.history`) and a server shared by many runners
(:mod:`.history_postgres`) store the same tables (:mod:`.history_schema`), so the
questions asked of them are written once, here: how a test's energy moved over
the last runs, what the last K runs of each test on a branch measured (the
gate's history baseline), and one run's full record. A store supplies only its
connections, its schema checks and how it adds a session's run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import fields
from typing import Any

from pytest_energy.frozen import frozen
from pytest_energy.record import ResultsError, RunRecord
from pytest_energy.record_json import parse_json
from pytest_energy.storage.history_schema import POINTS, Database, insert_run, record_json_text

__all__ = [
    "HistoryError",
    "HistoryLocked",
    "HistoryUnreachable",
    "RunHistory",
    "TrendPoint",
]


class HistoryError(ValueError):
    """A history that cannot be used; the message is one line."""


class HistoryLocked(HistoryError):
    """Another process held the history's write lock for longer than the busy timeout."""


class HistoryUnreachable(HistoryError):
    """The history server did not answer, or the connection broke; the message says why."""


@frozen
class TrendPoint:
    """One test in one run, as ``pytest-energy history`` and the report show it."""

    run_id: int
    started: str
    commit: str | None
    branch: str | None
    hardware_class: str
    method: str
    nodeid: str
    outcome: str
    #: Median joules per ``unit``; None when the run gave no usable figure.
    per_unit: float | None
    unit: str | None
    joules: float | None
    seconds: float | None
    flags: tuple[str, ...]
    verdict: str | None
    ratio: float | None


class RunHistory(ABC):
    """A run history; each call opens and closes its own connection."""

    @property
    @abstractmethod
    def where(self) -> str:
        """The history as messages name it: a path, or a URL without its password."""

    @abstractmethod
    def _reading(self) -> AbstractContextManager[Database | None]:
        """A connection for queries, or None when there is no history yet (never creates one)."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Database]:
        """A connection inside one transaction, the schema created or upgraded first."""

    @abstractmethod
    def add_run(self, record: RunRecord) -> list[str]:
        """Store a session's run once, or keep it for the next run; the lines to show."""

    def append(
        self,
        record: RunRecord,
        *,
        commit: str | None = None,
        branch: str | None = None,
    ) -> int:
        """Store one run (its tests and rounds) in one transaction; returns the run id.

        ``commit`` and ``branch`` default to those recorded in the session. The run
        is stored even when an identical one is (a tool storing what it is handed);
        :meth:`add_run` stores a session's run once.
        """
        with self._transaction() as db:
            return insert_run(db, record, commit=commit, branch=branch, once=False)

    def trend(
        self,
        nodeid: str | None = None,
        *,
        limit: int = 20,
        hardware_class: str | None = None,
        branch: str | None = None,
    ) -> list[TrendPoint]:
        """The newest ``limit`` runs of one test (or of every test), oldest first."""
        where, params = _filters(nodeid=nodeid, hardware_class=hardware_class, branch=branch)
        with self._reading() as db:
            if db is None:
                return []
            rows = db.rows(POINTS.format(where=where, extra=""), (*params, limit))
        return [_point(row) for row in rows]

    def last_runs(
        self, hardware_class: str, branch: str | None, k: int, *, normalized: bool = False
    ) -> dict[str, list[float]]:
        """Per test, one value per each of its last ``k`` usable runs, oldest first.

        The value is the geometric mean of the run's own rounds, in J per unit (or
        over the calibration workload with ``normalized``): the statistic the gate
        takes of the current run. Only passed tests count, from runs that were not
        interrupted and not measured under pytest-xdist, on ``hardware_class`` and
        on ``branch`` (None: any branch). "Last" follows the order runs were
        stored, not their clocks.
        """
        column = "normalized_mean" if normalized else "process_mean"
        where, params = _filters(hardware_class=hardware_class, branch=branch)
        where += (
            f" AND t.{column} IS NOT NULL AND r.interrupted = 0"
            " AND t.outcome = 'passed' AND t.flags NOT LIKE '%concurrent%'"
        )
        with self._reading() as db:
            if db is None:
                return {}
            rows = db.rows(POINTS.format(where=where, extra=f", t.{column} AS value"), (*params, k))
        series: dict[str, list[float]] = {}
        for row in rows:
            series.setdefault(row["nodeid"], []).append(row["value"])
        return series

    def record(self, run_id: int) -> RunRecord:
        """The full run record stored for ``run_id``."""
        with self._reading() as db:
            found = [] if db is None else db.rows("SELECT record FROM runs WHERE id = ?", (run_id,))
        if not found:
            raise HistoryError(f"no run {run_id} in the history {self.where}")
        try:
            return RunRecord.from_dict(parse_json(record_json_text(found[0]["record"])))
        except (ResultsError, ValueError) as exc:
            raise HistoryError(f"run {run_id} in {self.where} cannot be read: {exc}") from None


def _filters(
    *, nodeid: str | None = None, hardware_class: str | None = None, branch: str | None = None
) -> tuple[str, list[Any]]:
    clauses, params = ["1 = 1"], []
    for column, value in (
        ("t.nodeid", nodeid),
        ("r.hardware_class", hardware_class),
        ("r.branch", branch),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return " AND ".join(clauses), params


#: A point's fields are its columns, but for these.
_COLUMN_OF = {"commit": "commit_id"}


def _point(row: Any) -> TrendPoint:
    values = {f.name: row[_COLUMN_OF.get(f.name, f.name)] for f in fields(TrendPoint)}
    values["flags"] = tuple(f for f in values["flags"].split(",") if f)
    return TrendPoint(**values)
