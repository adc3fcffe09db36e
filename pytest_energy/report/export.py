"""Machine-readable exports: github-action-benchmark JSON and CSV.

``github-action-benchmark`` reads its ``customSmallerIsBetter`` format: a JSON
list of ``{name, unit, value, range?, extra?}``. Values are always in joules
(or joules per unit of work), never rescaled, so a series keeps one unit
from run to run.

CSV is one row per test. Cells that a spreadsheet would read as a formula
(text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return)
get a leading apostrophe, as OWASP recommends against CSV injection: test ids
come from the code under test. Numbers are written as plain numbers (shortest
round-trip form) and never prefixed, so a negative net energy stays numeric.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from typing import Any

from pytest_energy.record import RunRecord, TestResult
from pytest_energy.report import format as fmt
from pytest_energy.report.overview import per_unit

__all__ = ["CSV_COLUMNS", "FORMATS", "csv_text", "export", "github_action_benchmark"]

CSV_COLUMNS = [
    "nodeid",
    "outcome",
    "joules",
    "seconds",
    "watts",
    "j_per_unit",
    "unit",
    "method",
    "meters",
    "flags",
    "gco2e",
    "verdict",
    "ratio",
    "ci_low",
    "ci_high",
]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _benchmark_entry(test: TestResult) -> dict[str, Any] | None:
    m = test.measurement
    if m is None:
        return None
    unit = per_unit(test)
    extra = [f"method: {m.method}", f"meters: {', '.join(m.meters) or 'none'}"]
    entry: dict[str, Any] = {"name": test.nodeid}
    if unit is not None and test.benchmark is not None:
        value, unit_name = unit
        entry["unit"] = f"J/{unit_name}"
        entry["value"] = value
        s = test.benchmark.per_unit
        if fmt.has_interval(s):
            entry["range"] = f"± {fmt.sig((s.ci_high - s.ci_low) / 2)}"
        candidate = len(test.benchmark.rounds_of("candidate"))
        extra.append(f"rounds: {candidate} x {test.benchmark.calls_per_round} calls")
    else:
        entry["unit"] = "J"
        entry["value"] = m.total_j
    if not math.isfinite(entry["value"]):
        return None
    if test.flags:
        extra.append(f"flags: {', '.join(test.flags)}")
    entry["extra"] = "\n".join(extra)
    return entry


def github_action_benchmark(record: RunRecord) -> str:
    """``customSmallerIsBetter`` JSON: one entry per measured test."""
    entries = [e for e in (_benchmark_entry(t) for t in record.tests) if e is not None]
    return json.dumps(entries, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _safe_text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, int):
        return str(value)
    return _safe_text(str(value))


def _csv_row(test: TestResult) -> list[Any]:
    m = test.measurement
    v = test.verdict
    unit = per_unit(test)
    return [
        test.nodeid,
        test.outcome,
        _number(m.total_j) if m else None,
        _number(m.seconds) if m else None,
        _number(m.watts) if m else None,
        unit[0] if unit else None,
        unit[1] if unit else None,
        m.method if m else None,
        " ".join(m.meters) if m else None,
        " ".join(test.flags),
        _number(test.carbon.grams) if test.carbon else None,
        v.status if v else None,
        _number(v.ratio) if v and v.ratio is not None else None,
        _number(v.ci_low) if v and v.ci_low is not None else None,
        _number(v.ci_high) if v and v.ci_high is not None else None,
    ]


def csv_text(record: RunRecord) -> str:
    """One row per test, with a header row; RFC 4180 quoting, ``\\r\\n`` line ends."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for test in record.tests:
        writer.writerow([_cell(value) for value in _csv_row(test)])
    return buffer.getvalue()


FORMATS: dict[str, Callable[[RunRecord], str]] = {
    "github-action-benchmark": github_action_benchmark,
    "csv": csv_text,
}


def export(record: RunRecord, kind: str) -> str:
    """``record`` in the format named ``kind``, one of :data:`FORMATS`."""
    try:
        render = FORMATS[kind]
    except KeyError:
        choices = ", ".join(FORMATS)
        raise ValueError(f"unknown export format {kind!r}; choose from {choices}") from None
    return render(record)
