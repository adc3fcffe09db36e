"""The energy history as text: one row per test with its last figure, change and sparkline;
and as CSV, one row per test per run (``pytest-energy history --export``)."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Sequence

from pytest_energy.report.escape import terminal_text

# The results export's cell rule: numbers as numbers, text that a spreadsheet would
# run as a formula (a test id from the code under test) behind an apostrophe.
from pytest_energy.report.export import _cell as csv_cell
from pytest_energy.storage.history_base import TrendPoint

#: One column per field of a point, in its order: run, then test.
TREND_CSV_COLUMNS = [f.name for f in dataclasses.fields(TrendPoint)]

_SPARK = "▁▂▃▄▅▆▇█"


def format_trend(rows: Sequence[TrendPoint]) -> str:
    """A text table of the trend: test, runs, last J/unit, change vs previous, sparkline."""
    if not rows:
        return "no runs in the energy history yet"
    series: dict[tuple[str, str], list[TrendPoint]] = {}
    for row in rows:
        series.setdefault((row.nodeid, row.hardware_class), []).append(row)
    several_classes = len({hc for _, hc in series}) > 1
    header = [
        "test",
        *(["hardware class"] if several_classes else []),
        "runs",
        "last",
        "change",
        "trend",
    ]
    table = [header]
    for (nodeid, hardware_class), points in sorted(series.items()):
        values = [p.per_unit for p in points]
        usable = [(v, p.unit) for v, p in zip(values, points, strict=True) if v is not None]
        last = _format_energy(*usable[-1]) if usable else "-"
        change = "-"
        if len(usable) >= 2 and usable[-2][0] > 0:
            change = f"{(usable[-1][0] / usable[-2][0] - 1) * 100:+.1f}%"
        table.append(
            [
                # Both come from the code under test: escaped so a test id cannot
                # colour, link or retitle the terminal, or start a line of its own.
                terminal_text(nodeid),
                *([terminal_text(hardware_class)] if several_classes else []),
                str(len(points)),
                last,
                change,
                sparkline(values),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    # Text columns left, numbers right, so digits line up.
    right = {header.index(h) for h in ("runs", "last", "change")}
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in table
    ]
    return "\n".join(lines)


def sparkline(values: Sequence[float | None]) -> str:
    """Unicode bars for ``values``; a missing value is a space.

    The scale spans at least 10% of the largest value, so run-to-run noise of a
    percent or two stays a flat line instead of filling the full height.
    """
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return " " * len(values)
    lo, hi = min(finite), max(finite)
    span = max(hi - lo, 0.1 * max(abs(lo), abs(hi)))
    if span == 0:
        return "".join(" " if v is None else _SPARK[0] for v in values)
    bottom = (lo + hi) / 2 - span / 2
    top = len(_SPARK) - 1
    return "".join(
        " "
        if v is None or not math.isfinite(v)
        else _SPARK[min(top, max(0, round((v - bottom) / span * top)))]
        for v in values
    )


def _format_energy(joules: float, unit: str | None) -> str:
    prefixes = ((1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))
    factor, prefix = next(((f, p) for f, p in prefixes if abs(joules) >= f), prefixes[-1])
    return f"{joules / factor:.3g} {prefix}J/{terminal_text(unit or 'test')}"


def trend_csv(rows: Sequence[TrendPoint]) -> str:
    """One row per test per run, oldest run first within a test; RFC 4180, ``\\r\\n`` line ends.

    ``per_unit`` is the median J per ``unit`` (energies in joules, never rescaled);
    ``flags`` are space-separated.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(TREND_CSV_COLUMNS)
    for row in rows:
        values = [getattr(row, name) for name in TREND_CSV_COLUMNS]
        writer.writerow([csv_cell(" ".join(v) if isinstance(v, tuple) else v) for v in values])
    return buffer.getvalue()
