"""View models of the HTML report: every row, card and fact as finished strings.

The templates only lay these out, so all formatting, ordering and capping is
here, where it is typed and tested. Nothing in a view is marked safe: the page
escapes every string, whatever it holds.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_energy.frozen import frozen
from pytest_energy.record import FLAGS, FamilyResult, RunRecord, TestResult
from pytest_energy.report import format as fmt
from pytest_energy.report.escape import html_text
from pytest_energy.report.html_charts import (
    Scatter,
    Sparkline,
    StripPlot,
    pareto_scatter,
    sparkline,
    strip_plot,
)
from pytest_energy.report.overview import (
    Label,
    Overview,
    ab_line,
    budget_breaches,
    carbon_sources,
    overview,
    per_unit,
    variant_label,
    verdict_label,
)

__all__ = [
    "ID_DISPLAY_LIMIT",
    "MAX_BENCHMARK_PLOTS",
    "BenchmarkCard",
    "Card",
    "ChangeRow",
    "FamilyView",
    "TestRow",
    "benchmark_cards",
    "break_points",
    "change_row",
    "display_id",
    "family_view",
    "gate_line",
    "json_number",
    "machine_facts",
    "percent",
    "plain_text",
    "summary_cards",
    "test_row",
]

#: Benchmarks that get a round-distribution card (regressions first).
MAX_BENCHMARK_PLOTS = 200
#: A test id longer than this is shown cut in the middle; the full id stays in
#: the embedded JSON and the cell's title.
ID_DISPLAY_LIMIT = 240


def display_id(text: str) -> str:
    """A test id (or any untrusted name) as the page shows it: cut in the middle
    when very long, bidi and control characters made visible so the text cannot
    reorder itself."""
    return html_text(fmt.shorten(text, ID_DISPLAY_LIMIT))


_BREAKS = re.compile(r"(?<=/)|(?<=::)|(?<=\[)|(?<=-)")


def break_points(text: str) -> list[str]:
    """``text`` cut after ``/``, ``::``, ``[`` and ``-``: the template puts a <wbr>
    between the parts so a long test id wraps where a reader expects it."""
    return [part for part in _BREAKS.split(text) if part]


def json_number(value: float | None) -> float | None:
    """A figure for the page's data block: None when unknown, 6 significant digits."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.6g}")  # the table shows 3 digits; 6 sort exactly enough


def plain_text(value: Any) -> str:
    """A metadata or settings value as the page shows it: floats to 6 significant digits."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def percent(value: float) -> str:
    """A fraction as a percentage (``0.05`` -> ``5%``); unknown reads ``?``."""
    return f"{value * 100:g}%" if math.isfinite(value) else "?"


# -- the test table ---------------------------------------------------------------


@frozen
class Flag:
    name: str
    description: str


@frozen
class TestRow:
    index: int
    nodeid: list[str]
    full_id: str
    shortened: bool
    outcome: str
    energy: str
    per_unit: str
    seconds: str
    watts: str
    co2e: str
    ratio: str
    change: str
    verdict: Label
    verdict_text: str
    reason: str
    flags: list[Flag]
    bench_anchor: str
    spark: Sparkline | None


def _flags(test: TestResult) -> list[Flag]:
    flags = [Flag(name, FLAGS.get(name, "")) for name in test.flags]
    if test.outcome in ("failed", "error"):
        flags.append(Flag(test.outcome, test.error or ""))
    elif test.error:
        flags.append(Flag("note", test.error))
    flags += [Flag("over budget", text) for text in budget_breaches(test)]
    return flags


def test_row(
    index: int, test: TestResult, anchors: Mapping[str, str], history: Mapping[str, Any]
) -> tuple[TestRow, list[Any]]:
    """A row of the test table, and the same row as numbers for the sorting script."""
    m = test.measurement
    unit = per_unit(test)
    v = test.verdict
    series = history.get(test.nodeid)
    label = verdict_label(v.status if v else None)
    row = TestRow(
        index=index,
        nodeid=break_points(display_id(test.nodeid)),
        full_id=html_text(test.nodeid),
        shortened=len(test.nodeid) > ID_DISPLAY_LIMIT,
        outcome=test.outcome,
        energy=fmt.energy(m.total_j if m else None),
        per_unit=fmt.energy_per_unit(*unit) if unit else "",
        seconds=fmt.duration(m.seconds if m else None),
        watts=fmt.power(m.watts if m else None),
        co2e=fmt.grams(test.carbon.grams if test.carbon else None),
        ratio=fmt.ratio(v.ratio, v.ci_low, v.ci_high) if v and v.ratio is not None else "",
        change=fmt.change(v.ratio) if v and v.ratio is not None else "",
        verdict=label,
        verdict_text=str(label),
        reason=v.reason if v else "",
        flags=_flags(test),
        bench_anchor=anchors.get(test.nodeid, ""),
        spark=sparkline(series, f"J/{unit[1]}" if unit else "J") if series else None,
    )
    # The script sorts and filters on these numbers; the table shows the text.
    data = [
        test.nodeid,
        test.outcome,
        json_number(m.total_j if m else None),
        json_number(unit[0] if unit else None),
        json_number(m.seconds if m else None),
        json_number(m.watts if m else None),
        json_number(test.carbon.grams if test.carbon else None),
        json_number(v.ratio if v else None),
        v.status if v else "",
        " ".join(f.name for f in row.flags),
    ]
    return row, data


# -- benchmarks and changes ---------------------------------------------------------


@frozen
class BenchmarkCard:
    anchor: str
    nodeid: str
    median: str
    interval: str
    cv: str
    rounds: str
    window: str
    verdict: Label
    ratio: str
    plot: StripPlot | None
    quality: list[str]
    metadata: list[str]
    unstable: bool
    spark: Sparkline | None


def _benchmark_card(anchor: str, test: TestResult, history: Mapping[str, Any]) -> BenchmarkCard:
    bench = test.benchmark
    assert bench is not None
    s = bench.per_unit
    v = test.verdict
    series = history.get(test.nodeid)
    confirmation = f" (+{bench.confirmation_rounds} confirmation)"
    return BenchmarkCard(
        anchor=anchor,
        nodeid=display_id(test.nodeid),
        median=fmt.energy_per_unit(s.median, bench.unit),
        interval=fmt.energy_interval(s),
        cv=fmt.cv(s),
        rounds=(
            f"{len(bench.rounds_of('candidate'))} rounds of {bench.calls_per_round} calls, "
            f"{plain_text(bench.units_per_call)} {bench.unit} per call"
            + (confirmation if bench.confirmation_rounds else "")
        ),
        window=(
            f"target window {fmt.duration(bench.target_window_s)}, "
            f"{bench.warmup_calls} warm-up calls" + (", pedantic" if bench.pedantic else "")
        ),
        verdict=verdict_label(v.status if v else None),
        ratio=fmt.ratio(v.ratio, v.ci_low, v.ci_high) if v and v.ratio is not None else "",
        plot=strip_plot(bench),
        quality=[f"{q.name} {fmt.sig(q.value, 4)}" for q in bench.quality],
        metadata=[f"{k}={plain_text(val)}" for k, val in sorted(bench.metadata.items())],
        unstable=bench.unstable,
        spark=sparkline(series, f"J/{bench.unit}") if series else None,
    )


def benchmark_cards(
    tests: Sequence[TestResult], history: Mapping[str, Any]
) -> tuple[list[BenchmarkCard], dict[str, str], int]:
    """Cards for at most :data:`MAX_BENCHMARK_PLOTS` benchmarks, in test order.

    Returns the cards, each shown test's anchor (the table links to it) and how
    many benchmarks got no card.
    """
    benches = [(i, t) for i, t in enumerate(tests) if t.benchmark is not None]
    # Regressions and unstable benchmarks are the ones a reviewer opens first.
    priority = {"regression": 0, "inconclusive": 1, "improvement": 2}
    benches.sort(
        key=lambda it: (
            priority.get(it[1].verdict.status if it[1].verdict else "", 3),
            not (it[1].benchmark and it[1].benchmark.unstable),
            it[0],
        )
    )
    shown = sorted(benches[:MAX_BENCHMARK_PLOTS], key=lambda it: it[0])
    anchors = {t.nodeid: f"bench-{i}" for i, t in shown}
    cards = [_benchmark_card(anchors[t.nodeid], t, history) for _, t in shown]
    return cards, anchors, len(benches) - len(shown)


@frozen
class ChangeRow:
    nodeid: str
    baseline: str
    current: str
    change: str
    ratio: str
    verdict: Label
    p_value: str


def change_row(test: TestResult) -> ChangeRow:
    """A test the gate compared, as a row of "Changes against the baseline"."""
    v = test.verdict
    assert v is not None
    unit = test.benchmark.unit if test.benchmark else None
    show = functools.partial(fmt.energy_per_unit, unit=unit) if unit else fmt.energy
    return ChangeRow(
        nodeid=display_id(test.nodeid),
        baseline=show(v.baseline),
        current=show(v.current),
        change=fmt.change(v.ratio),
        ratio=fmt.ratio(v.ratio, v.ci_low, v.ci_high),
        verdict=verdict_label(v.status),
        p_value=f"{v.p_value:.2g}" if v.p_value is not None else "",
    )


# -- model families -----------------------------------------------------------------


@frozen
class VariantRow:
    name: str
    energy: str
    ratio: str
    quality: list[str]
    frontier: bool
    verdict: Label
    metadata: list[str]
    line: str


@frozen
class FamilyView:
    name: str
    reference: str
    unit: str
    method: str
    hardware_class: str
    rows: list[VariantRow]
    chart: Scatter | None


def family_view(family: FamilyResult) -> FamilyView:
    """A family's table of variants and its energy-quality chart."""
    unit = family.unit or "unit"
    rows = []
    for v in family.variants:
        quality = [
            f"{name} {fmt.share(q.ratio)}"
            + (f" ({fmt.sig(q.value, 4)})" if math.isfinite(q.value) else "")
            for name, q in sorted(v.quality.items())
        ]
        rows.append(
            VariantRow(
                name=display_id(v.variant),
                energy=(
                    fmt.energy_per_unit(v.energy_per_unit, unit)
                    if math.isfinite(v.energy_per_unit)
                    else ""
                ),
                ratio=fmt.ratio(v.energy_ratio, v.ci_low, v.ci_high),
                quality=quality,
                frontier=v.on_frontier,
                verdict=variant_label(v.verdict),
                metadata=[f"{k}={plain_text(val)}" for k, val in sorted(v.metadata.items())],
                line=v.line,
            )
        )
    return FamilyView(
        name=display_id(family.family),
        reference=family.reference,
        unit=unit,
        method=family.method,
        hardware_class=family.hardware_class,
        rows=rows,
        chart=pareto_scatter(family),
    )


# -- the page header and summary ----------------------------------------------------


@frozen
class Card:
    title: str
    value: str
    detail: str
    css: str = ""


def summary_cards(record: RunRecord) -> tuple[list[Card], Overview]:
    """The summary cards, and the overview they were drawn from."""
    ov = overview(record)
    verb = "modelled" if record.session.method == "modelled" else "measured"
    gate_css = {"failed": "bad", "passed": "good", "not_gated": "muted"}[ov.state]
    gate_word = {"failed": "✗ failed", "passed": "✓ passed", "not_gated": "– not gated"}[ov.state]
    source = "; ".join(ov.carbon_sources) if ov.carbon_sources else "no intensity recorded"
    cards = [
        Card("Gate", gate_word, _gate_detail(record, ov.state), gate_css),
        Card("Total energy", fmt.energy(ov.total_j), fmt.watt_hours(ov.total_j)),
        Card("CO2e", fmt.grams(ov.total_grams), source),
        Card(f"Tests {verb}", str(len(ov.measured)), f"of {ov.tests} recorded"),
    ]
    if record.gate is not None:  # without a baseline these would all read 0
        cards += [
            Card("Gated", str(ov.gated), "compared with a baseline"),
            Card("Regressions", f"▲ {len(ov.regressions)}", "", "bad" if ov.regressions else ""),
            Card(
                "Improvements", f"▼ {len(ov.improvements)}", "", "good" if ov.improvements else ""
            ),
            Card(
                "Inconclusive", f"? {len(ov.inconclusive)}", "", "warn" if ov.inconclusive else ""
            ),
        ]
    if ov.variant_failures:
        cards.append(Card("Variants over limits", f"✗ {len(ov.variant_failures)}", "", "bad"))
    if ov.embodied_grams is not None:
        cards.append(Card("Embodied CO2e", fmt.co2e(ov.embodied_grams), "not in the total"))
    return cards, ov


def _gate_detail(record: RunRecord, state: str) -> str:
    if record.gate is None:
        return "no baseline given"
    baseline = f"against {record.gate.baseline}"
    return baseline if state != "not_gated" else f"{baseline}: nothing comparable"


def machine_facts(record: RunRecord) -> list[tuple[str, str]]:
    """The header's facts: the machine, the meters, the commit, when, against what."""
    s = record.session
    m = s.machine
    facts = [
        ("CPU", f"{m.cpu_model} ({m.cpu_count} logical CPUs)"),
        ("GPUs", ", ".join(m.gpu_names) or "none"),
        ("Kernel", f"{m.os} {m.kernel}".strip()),
        ("Python / pytest", f"{m.python} / {m.pytest_version}"),
        ("Meters", ", ".join(meter.summary or meter.name for meter in s.meters) or "none"),
        ("Hardware class", m.hardware_class),
        ("Plugin", f"pytest-energy {m.plugin_version}"),
    ]
    carbon = carbon_sources(t.carbon for t in record.tests if t.carbon is not None)
    if carbon:
        facts.append(("Carbon intensity", "; ".join(carbon)))
    if s.commit or s.branch:
        facts.append(("Commit", " on ".join(x for x in (s.commit, s.branch) if x)))
    facts.append(("Started", s.started))
    facts.append(("Finished", s.finished or "not finished"))
    if record.gate is not None:
        facts.append(("Baseline", record.gate.baseline))
    if s.workers:
        facts.append(("Workers", f"{s.workers} (pytest-xdist)"))
    return facts


def gate_line(record: RunRecord) -> str:
    """The gate's configuration in one line, and the suite total when it was compared."""
    g = record.gate
    if g is None:
        return ""
    parts = [
        f"A/B: {ab_line(record)}" if record.ab is not None else f"baseline {g.baseline}",
        f"threshold {percent(g.threshold)}",
        f"margin {percent(g.margin)}",
        f"Holm alpha {g.alpha}",
        f"method {g.method}",
        *([g.decision] if g.decision else []),
    ]
    suite = g.suite
    if suite.ratio is not None:
        ratio = fmt.ratio(suite.ratio, suite.ci_low, suite.ci_high)
        parts.append(f"suite total {ratio} ({verdict_label(suite.status).word})")
    if record.ab is not None:
        parts.append(record.ab.drift)
    return "; ".join(parts)
