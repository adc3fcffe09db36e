"""A job-summary chart of one branch's energy over its last runs, from the SQLite history.

In CI the history is carried across default-branch runs through the Actions cache,
so each run can show where the branch has been heading: small regressions that each
stayed under the gate's threshold add up on this line. GitHub renders Mermaid in
Markdown, so the chart is a Mermaid ``xychart-beta``: no image, no script.

The suite's total changes with the tests selected, so the line sums only the tests
present (and passed) in every charted run, and says how many those are. Runs on
another hardware class are left out: their numbers are not comparable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pytest_energy.report import format as fmt
from pytest_energy.report.escape import markdown_text
from pytest_energy.storage.history import TrendPoint

__all__ = ["TREND_RUNS", "trend_chart"]

#: Runs charted by default: enough to see a drift, few enough to read the axis.
TREND_RUNS = 20
#: Labels reach the Mermaid source: only characters that cannot end a string or a fence.
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9._/+-]")
_SCALES = ((1e6, "MJ"), (1e3, "kJ"), (1.0, "J"), (1e-3, "mJ"))


def _label(text: str, limit: int = 40) -> str:
    return _LABEL_UNSAFE.sub("_", text)[:limit] or "_"


def _run_label(points: Sequence[TrendPoint]) -> str:
    commit = points[0].commit or ""
    if re.fullmatch(r"[0-9a-fA-F]{7,64}", commit):
        return commit[:7].lower()
    return f"run {points[0].run_id}"


def _scale(values: Sequence[float]) -> tuple[float, str]:
    largest = max(values)
    for factor, unit in _SCALES:
        if largest >= factor:
            return factor, unit
    return _SCALES[-1]


def trend_chart(points: Sequence[TrendPoint], *, branch: str, runs: int = TREND_RUNS) -> str:
    """Markdown with the chart of ``branch``'s last ``runs`` runs; "" with fewer than two."""
    by_run: dict[int, list[TrendPoint]] = {}
    for point in points:
        if point.branch == branch:
            by_run.setdefault(point.run_id, []).append(point)
    chosen = sorted(by_run)[-runs:]
    if len(chosen) < 2:
        return ""
    usable = [
        {p.nodeid: p.joules for p in by_run[run] if p.outcome == "passed" and p.joules is not None}
        for run in chosen
    ]
    common = set(usable[0]).intersection(*usable[1:])
    if not common:
        return ""
    totals = [sum(float(figures[nodeid] or 0.0) for nodeid in common) for figures in usable]
    factor, unit = _scale(totals)
    methods = {p.method for run in chosen for p in by_run[run]}
    method = methods.pop() if len(methods) == 1 else "mixed measured and modelled"
    labels = ", ".join(f'"{_run_label(by_run[run])}"' for run in chosen)
    values = ", ".join(f"{total / factor:.4g}" for total in totals)
    first, last = totals[0], totals[-1]
    change = fmt.change(last / first) if first > 0 else fmt.DASH
    name = _label(branch)
    tests = f"{len(common)} test{'s' if len(common) != 1 else ''}"
    return "\n".join(
        [
            f"#### Energy on {markdown_text(branch)}: last {len(chosen)} runs",
            "",
            f"Sum over the {tests} that passed in every run shown, "
            f"{method} (this run's hardware class only); {change} from the first to the "
            f"last run: {fmt.energy(first)} to {fmt.energy(last)}.",
            "",
            "```mermaid",
            "xychart-beta",
            f'    title "Energy on {name}, {tests} ({_label(method, 30)})"',
            f"    x-axis [{labels}]",
            f'    y-axis "Energy ({unit})"',
            f"    line [{values}]",
            "```",
            "",
        ]
    )
