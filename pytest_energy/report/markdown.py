"""Markdown for GitHub: the job summary and the pull-request comment.

Both lead with a one-line verdict, then how the numbers were obtained, the
totals, and tables of what changed (laid out like CodSpeed's comment). Both
have a hard size cap: GitHub rejects a step summary over 1 MiB and a comment
over 65,536 characters, so long tables are cut (with a note saying how many
rows are missing), never the verdict.

Every string that comes from the record (test ids, parametrize values, family
and variant names, machine names) is untrusted: it passes through
:func:`~pytest_energy.report.escape.markdown_text`, so it renders as inert text
and cannot split a table cell, open a tag, ping a user or become a link.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from pytest_energy.record import FamilyResult, RunRecord, TestResult, VariantResult
from pytest_energy.report import format as fmt
from pytest_energy.report.escape import markdown_text
from pytest_energy.report.overview import (
    Overview,
    ab_line,
    budget_breaches,
    carbon_sources,
    method_statement,
    overview,
    per_unit,
    variant_label,
    verdict_label,
)

__all__ = [
    "COMMENT_MARKER",
    "COMMENT_MAX_CHARS",
    "SUMMARY_MAX_BYTES",
    "comment_body",
    "summary_markdown",
]

#: GitHub allows 1 MiB per step summary; the margin leaves room for a line or
#: two that a workflow appends to the same step.
SUMMARY_MAX_BYTES = 1_000_000 - 16_384
#: GitHub rejects comment bodies over 65,536 characters.
COMMENT_MAX_CHARS = 65_536 - 536
COMMENT_MARKER = "<!-- pytest-energy -->"
#: Test ids longer than this are cut in the middle in tables.
ID_LIMIT = 200

_STATE_ICON = {"failed": "❌", "passed": "✅", "not_gated": "⚪"}


def _esc(text: object, limit: int | None = ID_LIMIT) -> str:
    shown = str(text) if limit is None else fmt.shorten(str(text), limit)
    return markdown_text(shown)


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cell or " " for cell in cells) + " |"


@dataclass
class _Table:
    """A table that may lose rows (from the end) to fit the size cap.

    Rows are rendered only when they fit: a 65,536-character comment on a
    5,000-test run renders a few hundred of them, not all.
    """

    heading: list[str]
    count: int
    rows: Iterable[str]
    closing: list[str] = field(default_factory=lambda: [""])
    kept: list[str] = field(default_factory=list)


def _fit(
    head: list[str], tables: list[_Table], foot: list[str], limit: int, size: Callable[[str], int]
) -> str:
    """Join the parts, keeping as many table rows as ``limit`` allows, in table order."""

    def note(missing: int) -> str:
        return f"_… {missing} more rows in the HTML report_"

    fixed = "\n".join(head + [line for t in tables for line in t.heading + t.closing] + foot)
    # Reserve room for the longest possible note under every table.
    room = limit - size(fixed) - len(tables) * (size(note(10**9)) + 2)
    for table in tables:
        for row in table.rows:
            cost = size(row) + 1
            if cost > room:
                break
            room -= cost
            table.kept.append(row)
        if len(table.kept) < table.count:
            room = -1  # keep later tables short too: their order is their priority
    lines = list(head)
    for table in tables:
        lines += table.heading + table.kept
        missing = table.count - len(table.kept)
        if missing:
            lines += ["", note(missing)]
        lines += table.closing
    lines += foot
    return "\n".join(lines) + "\n"


def _unit_value(test: TestResult, joules: float | None) -> str:
    if test.benchmark is not None:
        return fmt.energy_per_unit(joules, test.benchmark.unit)
    return fmt.energy(joules)


def _change_table(title: str, tests: Sequence[TestResult], ab: bool = False) -> _Table:
    def render(t: TestResult) -> str:
        v = t.verdict
        assert v is not None
        return _row(
            [
                _esc(t.nodeid),
                _esc(_unit_value(t, v.baseline)),
                _esc(_unit_value(t, v.current)),
                f"**{_esc(fmt.change(v.ratio))}**",
                _esc(fmt.ratio(v.ratio, v.ci_low, v.ci_high)),
            ]
        )

    heading = [
        f"#### {title}",
        "",
        "| Test | Base | Head | Change | Ratio \\[95% CI\\] |"
        if ab
        else "| Test | Baseline | Now | Change | Ratio \\[95% CI\\] |",
        "|---|---:|---:|---:|---|",
    ]
    return _Table(heading, len(tests), map(render, tests))


def _variant_cells(family: FamilyResult, variant: VariantResult) -> list[str]:
    quality = ", ".join(
        f"{name} {fmt.share(q.ratio)}" for name, q in sorted(variant.quality.items())
    )
    details = ", ".join(f"{k}={v}" for k, v in sorted(variant.metadata.items()))
    return [
        _esc(family.family),
        _esc(variant.variant),
        _esc(fmt.ratio(variant.energy_ratio, variant.ci_low, variant.ci_high)),
        _esc(quality or fmt.DASH),
        "◆ yes" if variant.on_frontier else "no",
        _esc(str(variant_label(variant.verdict))),
        _esc(details, 120),
    ]


def _families_table(families: Sequence[FamilyResult]) -> _Table | None:
    rows = [_row(_variant_cells(f, v)) for f in families for v in f.variants]
    if not rows:
        return None
    heading = [
        "#### Model families",
        "",
        "| Family | Variant | Energy ratio \\[95% CI\\] | Quality | Frontier | Verdict | Details |",
        "|---|---|---|---|---|---|---|",
    ]
    return _Table(heading, len(rows), rows)


def _test_cells(test: TestResult) -> list[str]:
    m = test.measurement
    v = test.verdict
    unit = per_unit(test)
    flags = list(test.flags) + ([test.outcome] if test.outcome in ("failed", "error") else [])
    flags += [f"over budget: {text}" for text in budget_breaches(test)]
    vs = (
        f"{fmt.change(v.ratio)} {fmt.ratio(v.ratio, v.ci_low, v.ci_high)}"
        if v and v.ratio is not None
        else ""
    )
    return [
        _esc(test.nodeid),
        _esc(test.outcome),
        _esc(fmt.energy(m.total_j if m else None)),
        _esc(fmt.energy_per_unit(*unit) if unit else ""),
        _esc(fmt.duration(m.seconds if m else None)),
        _esc(fmt.power(m.watts if m else None)),
        _esc(fmt.grams(test.carbon.grams if test.carbon else None)),
        _esc(vs),
        _esc(str(verdict_label(v.status if v else None))),
        _esc(", ".join(flags)),
    ]


def _all_tests_table(tests: Sequence[TestResult]) -> _Table:
    heading = [
        "<details>",
        f"<summary>All {len(tests)} tests</summary>",
        "",
        _row(
            [
                "Test",
                "Outcome",
                "Energy",
                "Per unit",
                "Time",
                "Power",
                "CO2e",
                "vs baseline",
                "Verdict",
                "Flags",
            ]
        ),
        "|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    rows = (_row(_test_cells(t)) for t in tests)
    return _Table(heading, len(tests), rows, closing=["", "</details>", ""])


def _machine(record: RunRecord) -> str:
    m = record.session.machine
    parts = [m.cpu_model, *m.gpu_names]
    return " · ".join(_esc(p, 120) for p in parts if p)


def _comparing(record: RunRecord) -> str:
    s = record.session
    gate = record.gate
    if gate is None:
        return ""
    if record.ab is not None:
        return (
            f"A/B: {_esc(ab_line(record), 300)}; threshold {100 * gate.threshold:g}%, margin "
            f"{100 * gate.margin:g}%, Holm α {gate.alpha:g}. {_esc(record.ab.drift, 300)}."
        )
    where = _esc(s.branch, 120) if s.branch else "this run"
    if s.commit:
        where += f" ({_esc(s.commit, 64)})"
    rule = (
        f"threshold {100 * gate.threshold:g}%, margin {100 * gate.margin:g}%, Holm α {gate.alpha:g}"
    )
    return f"Comparing {where} with baseline {_esc(gate.baseline, 200)}: {rule}."


def _totals(ov: Overview) -> list[str]:
    co2 = fmt.co2e(ov.total_grams)
    if ov.carbon_sources:
        co2 += f" ({'; '.join(ov.carbon_sources)})"
    counts = [
        f"{fmt.energy(ov.total_j)} ({fmt.watt_hours(ov.total_j)})",
        co2,
        f"{len(ov.measured)} of {ov.tests}",
        str(ov.gated),
        str(len(ov.regressions)),
        str(len(ov.improvements)),
        str(len(ov.inconclusive)),
    ]
    return [
        _row(
            [
                "Energy",
                "CO2e",
                "Tests measured",
                "Gated",
                "▲ Regressions",
                "▼ Improvements",
                "? Inconclusive",
            ]
        ),
        "|---:|---|---:|---:|---:|---:|---:|",
        _row(_esc(c, 400) for c in counts),
    ]


def _head(record: RunRecord, ov: Overview, marker: str | None) -> list[str]:
    lines = [marker] if marker else []
    lines += [f"### {_STATE_ICON[ov.state]} {_esc(ov.headline, 400)}", ""]
    statement = _esc(method_statement(record), 400)
    if record.session.method == "modelled":
        lines += ["> [!WARNING]", f"> {statement}", ""]
    else:
        lines += [statement, ""]
    lines += [f"Machine: {_machine(record)}.", ""]
    comparing = _comparing(record)
    if comparing:
        lines += [comparing, ""]
    lines += [*_totals(ov), ""]
    if ov.unstable:
        reason = ov.unstable_reason or "round-to-round variation exceeded the configured limit"
        lines += ["> [!CAUTION]", f"> **Unstable session:** {_esc(reason, 400)}", ""]
    if record.gate is not None and record.gate.decision:
        lines += [f"Gate: {_esc(record.gate.decision, 400)}.", ""]
    if record.gate is not None and ov.not_gated:
        shown = "; ".join(f"{n} × {_esc(reason, 200)}" for reason, n in ov.not_gated[:3])
        more = f"; {len(ov.not_gated) - 3} other reasons" if len(ov.not_gated) > 3 else ""
        lines += [f"Not gated: {shown}{more}.", ""]
    if record.session.interrupted:
        lines += ["> [!CAUTION]", "> **Interrupted run:** some tests are missing.", ""]
    for notice in record.session.notices[:5]:
        lines += [f"> {_esc(notice, 400)}", ""]
    return lines


def _foot(record: RunRecord) -> list[str]:
    s = record.session
    parts = [f"pytest-energy {_esc(s.machine.plugin_version, 40)}", _esc(s.method, 40)]
    carbon = carbon_sources(t.carbon for t in record.tests if t.carbon)
    if carbon:
        parts.append(f"carbon intensity: {_esc('; '.join(carbon), 300)}")
    parts.append("full details, charts and methodology in the HTML report")
    return [f"<sub>{' · '.join(parts)}</sub>"]


def _document(
    record: RunRecord, *, marker: str | None, limit: int, size: Callable[[str], int]
) -> str:
    ov = overview(record)
    tables: list[_Table] = []
    ab = record.ab is not None
    if ov.regressions:
        tables.append(_change_table("▲ Regressions", ov.regressions, ab))
    if ov.improvements:
        tables.append(_change_table("▼ Improvements", ov.improvements, ab))
    families = _families_table(record.families)
    if families is not None:
        tables.append(families)
    if ov.inconclusive:
        tables.append(_change_table("? Inconclusive", ov.inconclusive, ab))
    tables.append(_all_tests_table(record.tests))
    return _fit(_head(record, ov, marker), tables, _foot(record), limit, size)


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def summary_markdown(record: RunRecord, *, max_bytes: int = SUMMARY_MAX_BYTES) -> str:
    """The job summary for ``$GITHUB_STEP_SUMMARY``: at most ``max_bytes`` of UTF-8."""
    return _document(record, marker=None, limit=max_bytes, size=_utf8_size)


def comment_body(
    record: RunRecord, *, marker: str = COMMENT_MARKER, max_chars: int = COMMENT_MAX_CHARS
) -> str:
    """A pull-request comment, first line ``marker`` so it can be found and updated."""
    return _document(record, marker=marker, limit=max_chars, size=len)
