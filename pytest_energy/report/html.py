"""The self-contained HTML report: one file, no network, readable without JavaScript.

Everything the page shows is computed here into small view objects with
finished strings and chart coordinates; the Jinja templates only lay them out.
Every template is rendered with ``autoescape=True`` (not ``select_autoescape``,
which leaves ``.j2`` files unescaped), nothing from the record is ever marked
safe, and the only ``Markup`` values are this package's own CSS and script
files. A Content-Security-Policy meta tag allows exactly that one inline
script, by hash, so an injected script could not run even if escaping failed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_energy
from pytest_energy.record import (
    FLAGS,
    Benchmark,
    FamilyRecord,
    RunRecord,
    TestResult,
    VariantRecord,
)
from pytest_energy.report import format as fmt
from pytest_energy.report.overview import (
    Label,
    Overview,
    budget_breaches,
    carbon_sources,
    method_statement,
    overview,
    per_unit,
    variant_label,
    verdict_label,
)

__all__ = [
    "ID_DISPLAY_LIMIT",
    "MAX_BENCHMARK_PLOTS",
    "MAX_TABLE_ROWS",
    "content_security_policy",
    "render_html",
    "template_dir",
]

#: Rows in the per-test table; beyond this the page says how many were left out.
#: 20,000 rows of a few hundred bytes each stay well under the 5 MB budget.
MAX_TABLE_ROWS = 20_000
#: Benchmarks that get a round-distribution card (regressions first).
MAX_BENCHMARK_PLOTS = 200
#: Rows in each list of the "changes against the baseline" section.
MAX_CHANGES = 50
#: Newest history points drawn in a sparkline.
MAX_HISTORY_POINTS = 30
#: A test id longer than this is shown cut in the middle; the full id stays in
#: the embedded JSON and the cell's title.
ID_DISPLAY_LIMIT = 240


def template_dir() -> Path:
    """The templates: inside the package when installed from a wheel, else the repo's."""
    package = Path(pytest_energy.__file__).parent
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        autoescape=True,  # every template, whatever its file name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    # |tojson escapes < > & ' as \u00XX, so "</script>" in a test id stays inside
    # the data block; compact separators keep a 5,000-test page small.
    env.policies["json.dumps_kwargs"] = {
        "sort_keys": True,
        "separators": (",", ":"),
        "allow_nan": False,
        "ensure_ascii": False,
    }
    return env


@functools.lru_cache(maxsize=1)
def _assets() -> tuple[str, str, str]:
    """Our stylesheet and script, and the CSP hash of the script."""
    directory = template_dir()
    css = (directory / "report.css").read_text(encoding="utf-8")
    script = (directory / "report.js").read_text(encoding="utf-8")
    if "</" in script or "<!--" in script:  # would end or confuse the <script> element
        raise RuntimeError("report.js must not contain '</' or '<!--'")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return css, script, f"sha256-{digest}"


def content_security_policy(script_hash: str) -> str:
    """Nothing may load; only our inline styles and the one hashed script run."""
    return (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src '{script_hash}'; img-src data:; base-uri 'none'; form-action 'none'"
    )


# -- charts: geometry computed here, drawn by templates/_charts.html.j2 -------------


def _extent(values: Iterable[float], pad: float = 0.08) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    if high == low:
        span = abs(high) * 0.1 or 1.0
        return low - span, high + span
    span = high - low
    return low - span * pad, high + span * pad


def _scale(value: float, low: float, high: float, start: float, end: float) -> float:
    return start + (value - low) / (high - low) * (end - start)


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    title: str


@dataclass(frozen=True)
class Lane:
    label: str
    css: str
    y: float
    dots: list[Dot]
    median_x: float


@dataclass(frozen=True)
class StripPlot:
    """Per-round energy per unit, one dot per round, one lane per role."""

    width: int
    height: int
    left: int
    right: int
    lanes: list[Lane]
    ticks: list[tuple[float, str]]
    label: str


def strip_plot(bench: Benchmark) -> StripPlot | None:
    per_unit_by_role: dict[str, list[float]] = {}
    for rnd in bench.rounds:
        units = rnd.calls * bench.units_per_call
        if units > 0:
            per_unit_by_role.setdefault(rnd.role, []).append(rnd.total_j / units)
    if not per_unit_by_role:
        return None
    # Candidate first, then the reference rounds of a variant comparison.
    roles = sorted(per_unit_by_role, key=lambda r: (r != "candidate", r))
    low, high = _extent(v for values in per_unit_by_role.values() for v in values)
    width, left, right, lane_h = 360, 78, 12, 22
    lanes = []
    for i, role in enumerate(roles):
        values = per_unit_by_role[role]
        y = 12 + i * lane_h
        dots = [
            Dot(
                x=_scale(v, low, high, left, width - right),
                # A fixed, index-based jitter keeps equal values visible and the SVG deterministic.
                y=y + ((k * 7) % 5 - 2) * 1.6,
                title=f"round {k + 1}: {fmt.energy_per_unit(v, bench.unit)}",
            )
            for k, v in enumerate(values)
        ]
        median = sorted(values)[len(values) // 2]
        lanes.append(
            Lane(
                label=role,
                css="ref" if role == "reference" else "cand",
                y=y,
                dots=dots,
                median_x=_scale(median, low, high, left, width - right),
            )
        )
    height = 12 + len(roles) * lane_h + 14
    ticks = [
        (_scale(v, low, high, left, width - right), fmt.energy(v))
        for v in (low + (high - low) * 0.08, high - (high - low) * 0.08)
    ]
    return StripPlot(
        width=width,
        height=height,
        left=left,
        right=right,
        lanes=lanes,
        ticks=ticks,
        label=f"Energy per {bench.unit} of each round",
    )


@dataclass(frozen=True)
class Sparkline:
    """A history line, drawn at whole-pixel coordinates (it is 96 x 22 px; this keeps
    5,000 of them small). The size and the end dot come from the stylesheet."""

    path: str
    title: str


SPARK_WIDTH, SPARK_HEIGHT = 96, 22


@functools.lru_cache(maxsize=MAX_HISTORY_POINTS + 1)
def _spark_xs(count: int) -> tuple[int, ...]:
    # Every series of the same length shares its x positions.
    step = (SPARK_WIDTH - 6) / (count - 1)
    return tuple(round(3 + i * step) for i in range(count))


def sparkline(series: Sequence[float], unit: str = "") -> Sparkline | None:
    isfinite = math.isfinite
    values = [v for v in series[-MAX_HISTORY_POINTS:] if isfinite(v)]
    count = len(values)
    if count < 2:
        return None
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    scale = (SPARK_HEIGHT - 6) / span
    bottom = SPARK_HEIGHT - 3
    ys = [round(bottom - (v - low) * scale) for v in values]
    path = "M" + "L".join(map("{} {}".format, _spark_xs(count), ys))
    suffix = f" {unit}" if unit else ""
    return Sparkline(
        path=path,
        title=f"{count} runs, oldest first: {fmt.sig(values[0])}{suffix} → "
        f"{fmt.sig(values[-1])}{suffix}",
    )


@dataclass(frozen=True)
class ScatterPoint:
    x: float
    y: float
    label: str
    title: str
    css: str
    frontier: bool


@dataclass(frozen=True)
class Scatter:
    """Energy ratio (x, lower is better) against quality ratio (y, higher is better)."""

    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    points: list[ScatterPoint]
    frontier_path: str
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    x_label: str
    y_label: str
    limit_x: float | None
    limit_y: float | None


def _quality_metric(variants: Sequence[VariantRecord]) -> str | None:
    names = sorted({name for v in variants for name in (v.get("quality") or {})})
    return names[0] if names else None


def _quality_ratio(variant: VariantRecord, metric: str) -> float | None:
    entry = (variant.get("quality") or {}).get(metric) or {}
    value = entry.get("ratio")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2 or 5 x 10^k) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = min((m * power for m in (1, 2, 2.5, 5, 10)), key=lambda s: abs(math.log(s / raw)))
    first = math.ceil(low / step - 1e-9)
    ticks = []
    k = first
    while k * step <= high + step * 1e-9:
        ticks.append(round(k * step, 12))
        k += 1
    return ticks


def _tick_label(value: float, ticks: Sequence[float]) -> str:
    # As many decimals as the step needs, so 0.25 and 0.5 read "0.25x" and "0.50x".
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = next((d for d in range(5) if abs(round(step, d) - step) <= step * 1e-6), 4)
    return f"{value:.{decimals}f}x"


def pareto_scatter(family: FamilyRecord) -> Scatter | None:
    variants = family.get("variants") or []
    metric = _quality_metric(variants)
    if metric is None:
        return None
    plotted = [
        (v, float(v["energy_ratio"]), q)
        for v in variants
        if isinstance(v.get("energy_ratio"), int | float)
        and (q := _quality_ratio(v, metric)) is not None
    ]
    if not plotted:
        return None
    limits = [v.get("limits") or {} for v in variants]
    max_energy = next(
        (lim["max_energy_ratio"] for lim in limits if "max_energy_ratio" in lim), None
    )
    min_quality = next(
        (lim["min_quality_ratio"] for lim in limits if "min_quality_ratio" in lim), None
    )
    xs = [x for _, x, _ in plotted] + ([max_energy] if max_energy is not None else []) + [0.0]
    ys = [y for _, _, y in plotted] + ([min_quality] if min_quality is not None else [])
    x_low, x_high = 0.0, max(xs) * 1.12
    y_low, y_high = _extent(ys, pad=0.15)
    x_ticks = nice_ticks(x_low, x_high)
    y_ticks = nice_ticks(y_low, y_high)
    width, height, left, top, right, bottom = 560, 320, 72, 16, 20, 44

    def sx(x: float) -> float:
        return _scale(x, x_low, x_high, left, width - right)

    def sy(y: float) -> float:
        return _scale(y, y_low, y_high, height - bottom, top)

    points = []
    for variant, x, y in plotted:
        label = variant_label(variant.get("verdict"))
        name = str(variant.get("variant", "?"))
        points.append(
            ScatterPoint(
                x=sx(x),
                y=sy(y),
                label=fmt.without_bidi(fmt.shorten(name, 32)),
                title=f"{name}: energy {fmt.ratio(x)}, {metric} {fmt.ratio(y)} ({label.word})",
                css=label.css,
                frontier=bool(variant.get("on_frontier")),
            )
        )
    frontier = sorted((p.x, p.y) for p in points if p.frontier)
    frontier_path = "M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in frontier) if frontier else ""
    return Scatter(
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        points=points,
        frontier_path=frontier_path if len(frontier) > 1 else "",
        x_ticks=[(sx(v), _tick_label(v, x_ticks)) for v in x_ticks],
        y_ticks=[(sy(v), _tick_label(v, y_ticks)) for v in y_ticks],
        x_label=(
            f"Energy per {family.get('unit') or 'unit'} vs {family.get('reference') or 'reference'}"
        ),
        y_label=f"{metric} vs reference",
        limit_x=sx(max_energy) if max_energy is not None else None,
        limit_y=sy(min_quality) if min_quality is not None else None,
    )


# -- the page's view objects ------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    name: str
    description: str


def display_id(text: str) -> str:
    """A test id (or any untrusted name) as the page shows it: cut in the middle
    when very long, bidi controls made visible so the text cannot reorder itself."""
    return fmt.without_bidi(fmt.shorten(text, ID_DISPLAY_LIMIT))


_BREAKS = re.compile(r"(?<=/)|(?<=::)|(?<=\[)|(?<=-)")


def break_points(text: str) -> list[str]:
    """``text`` cut after ``/``, ``::``, ``[`` and ``-``: the template puts a <wbr>
    between the parts so a long test id wraps where a reader expects it."""
    return [part for part in _BREAKS.split(text) if part]


@dataclass(frozen=True)
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


def _json_number(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.6g}")  # the table shows 3 digits; 6 sort exactly enough


def _row(
    index: int, test: TestResult, anchors: Mapping[str, str], history: Mapping[str, Any]
) -> tuple[TestRow, list[Any]]:
    m = test.measurement
    unit = per_unit(test)
    v = test.verdict
    series = history.get(test.nodeid)
    label = verdict_label(v.status if v else None)
    row = TestRow(
        index=index,
        nodeid=break_points(display_id(test.nodeid)),
        full_id=fmt.without_bidi(test.nodeid),
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
        _json_number(m.total_j if m else None),
        _json_number(unit[0] if unit else None),
        _json_number(m.seconds if m else None),
        _json_number(m.watts if m else None),
        _json_number(test.carbon.grams if test.carbon else None),
        _json_number(v.ratio if v else None),
        v.status if v else "",
        " ".join(f.name for f in row.flags),
    ]
    return row, data


@dataclass(frozen=True)
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
    candidate_rounds = [r for r in bench.rounds if r.role == "candidate"]
    v = test.verdict
    series = history.get(test.nodeid)
    unit = f"J/{bench.unit}"
    return BenchmarkCard(
        anchor=anchor,
        nodeid=display_id(test.nodeid),
        median=fmt.energy_per_unit(s.median, bench.unit),
        interval=f"[{fmt.energy(s.ci_low)}, {fmt.energy(s.ci_high)}]",
        cv=f"{s.cv * 100:.1f}%" if math.isfinite(s.cv) else fmt.DASH,
        rounds=(
            f"{len(candidate_rounds)} rounds of {bench.calls_per_round} calls, "
            f"{_plain(bench.units_per_call)} {bench.unit} per call"
            + (f" (+{bench.confirmation_rounds} confirmation)" if bench.confirmation_rounds else "")
        ),
        window=(
            f"target window {fmt.duration(bench.target_window_s)}, "
            f"{bench.warmup_calls} warm-up calls" + (", pedantic" if bench.pedantic else "")
        ),
        verdict=verdict_label(v.status if v else None),
        ratio=fmt.ratio(v.ratio, v.ci_low, v.ci_high) if v and v.ratio is not None else "",
        plot=strip_plot(bench),
        quality=[f"{q.name} {fmt.sig(q.value, 4)}" for q in bench.quality],
        metadata=[f"{k}={_plain(val)}" for k, val in sorted(bench.metadata.items())],
        unstable=bench.unstable,
        spark=sparkline(series, unit) if series else None,
    )


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@dataclass(frozen=True)
class ChangeRow:
    nodeid: str
    baseline: str
    current: str
    change: str
    ratio: str
    verdict: Label
    p_value: str


def _change_row(test: TestResult) -> ChangeRow:
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


@dataclass(frozen=True)
class VariantRow:
    name: str
    energy: str
    ratio: str
    quality: list[str]
    frontier: bool
    verdict: Label
    metadata: list[str]
    line: str


@dataclass(frozen=True)
class FamilyView:
    name: str
    reference: str
    unit: str
    method: str
    hardware_class: str
    rows: list[VariantRow]
    chart: Scatter | None


def _family_view(family: FamilyRecord) -> FamilyView:
    unit = str(family.get("unit") or "unit")
    rows = []
    for v in family.get("variants") or []:
        quality = [
            f"{name} {fmt.share(q.get('ratio'))}"
            + (f" ({fmt.sig(q['value'], 4)})" if isinstance(q.get("value"), int | float) else "")
            for name, q in sorted((v.get("quality") or {}).items())
        ]
        per_unit_j = v.get("energy_per_unit")
        rows.append(
            VariantRow(
                name=display_id(str(v.get("variant", "?"))),
                energy=fmt.energy_per_unit(per_unit_j, unit) if per_unit_j is not None else "",
                ratio=fmt.ratio(v.get("energy_ratio"), v.get("ci_low"), v.get("ci_high")),
                quality=quality,
                frontier=bool(v.get("on_frontier")),
                verdict=variant_label(v.get("verdict")),
                metadata=[
                    f"{k}={_plain(val)}" for k, val in sorted((v.get("metadata") or {}).items())
                ],
                line=str(v.get("line") or ""),
            )
        )
    return FamilyView(
        name=display_id(str(family.get("family", "?"))),
        reference=str(family.get("reference", "")),
        unit=unit,
        method=str(family.get("method", "")),
        hardware_class=str(family.get("hardware_class", "")),
        rows=rows,
        chart=pareto_scatter(family),
    )


@dataclass
class Methodology:
    meters: list[dict[str, str]] = field(default_factory=list)
    how: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    attribution: list[tuple[str, str]] = field(default_factory=list)
    settings: list[tuple[str, str]] = field(default_factory=list)


def _methodology(record: RunRecord) -> Methodology:
    session = record.session
    tests = record.tests
    out = Methodology()
    for meter in session.meters:
        out.meters.append(
            {
                "name": meter.name,
                "method": meter.method,
                "summary": meter.summary,
                "period": fmt.duration(meter.update_period_s),
                "resolution": fmt.energy(meter.resolution_j),
                "domains": ", ".join(
                    f"{d} ({scope})" for d, scope in sorted(meter.domains.items())
                ),
            }
        )
    scope = {
        "call": "around each test's call phase (fixtures' setup and teardown excluded)",
        "protocol": "around each test's setup, call and teardown",
    }.get(session.scope, f"per {session.scope}")
    out.how.append(f"One energy window {scope}: the counters are read at its start and end.")
    benches = [t.benchmark for t in tests if t.benchmark is not None]
    if benches:
        windows = sorted({b.target_window_s for b in benches})
        out.how.append(
            f"{len(benches)} benchmarks ran calibrated rounds: each round is its own window of "
            f"about {' / '.join(fmt.duration(w) for w in windows)}, repeating the work enough "
            "times to span many counter updates. The figure is the median energy per unit of "
            "work over rounds, with a 95% confidence interval."
        )
    if session.idle is not None:
        net = any(t.net_j is not None for t in tests)
        out.how.append(
            f"Idle power {fmt.power(session.idle.total_watts)} was measured over "
            f"{fmt.duration(session.idle.seconds)} before the tests"
            + ("; net energy subtracts idle power x duration." if net else ".")
            + " Energy columns show the total, idle included."
        )
    else:
        out.how.append("No idle bracket was measured: figures include idle power.")
    if record.gate is not None:
        g = record.gate
        out.how.append(
            "Gate: the log of energy per unit is compared with the baseline; a regression "
            f"fails only when above the {_percent(g.get('threshold'))} threshold and its "
            f"one-sided confidence bound clears 1 + {_percent(g.get('margin'))}, with the "
            f"false-alarm rate held at {g.get('alpha', '?')} across gated tests (Holm)."
        )
    if session.calibration:
        out.settings += [
            (f"calibration.{k}", _plain(v)) for k, v in sorted(session.calibration.items())
        ]
    out.settings += [(k, _plain(v)) for k, v in sorted(session.settings.items())]
    out.settings += [(f"totals.{k}", _plain(v)) for k, v in sorted(session.totals.items())]

    domains = sorted({f"{d} ({s})" for m in session.meters for d, s in m.domains.items()})
    carbons = [t.carbon for t in tests if t.carbon is not None]
    pues = sorted({c.pue for c in carbons})
    out.excluded.append(
        "Power-supply conversion losses and the rest of the machine (fans, disks, network, "
        "motherboard): counters see only their own domains."
    )
    if domains:
        out.excluded.append(
            f"Devices other than the measured domains ({', '.join(domains)}): other GPUs, "
            "accelerators and peripherals are not counted."
        )
    if pues and pues != [1.0]:
        out.excluded.append(
            f"Cooling is included through a PUE of {', '.join(f'{p:g}' for p in pues)}; "
            "other facility overheads are not."
        )
    else:
        out.excluded.append("Cooling and data-centre overhead (no PUE applied).")
    if any(c.embodied_grams is not None for c in carbons):
        out.excluded.append(
            "Embodied emissions are reported separately and never added to CO2e totals."
        )
    else:
        out.excluded.append("Embodied emissions of the hardware (not enabled).")
    if session.method == "modelled":
        out.excluded.append(
            "Modelled figures cover this process's CPU time only: no GPU, DRAM or idle power."
        )
    else:
        out.excluded.append(
            "Nothing is subtracted for other processes: counters are machine-wide, so "
            "concurrent work elsewhere on the machine is included (flagged when detected)."
        )
    if session.carbon:
        out.attribution += [(str(k), _plain(v)) for k, v in sorted(session.carbon.items())]
    for label in carbon_sources(carbons):
        out.attribution.append(("intensity used", label))
    return out


def _percent(value: Any) -> str:
    return f"{value * 100:g}%" if isinstance(value, int | float) else "?"


@dataclass(frozen=True)
class Card:
    title: str
    value: str
    detail: str
    css: str = ""


def _cards(record: RunRecord) -> tuple[list[Card], Overview]:
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
    baseline = f"against {record.gate.get('baseline', 'the baseline')}"
    return baseline if state != "not_gated" else f"{baseline}: nothing comparable"


def _machine_facts(record: RunRecord) -> list[tuple[str, str]]:
    s = record.session
    m = s.machine
    gpus = ", ".join(str(g.get("name", "GPU")) for g in m.gpus) or "none"
    facts = [
        ("CPU", f"{m.cpu_model} ({m.cpu_count} logical CPUs)"),
        ("GPUs", gpus),
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
        facts.append(("Baseline", str(record.gate.get("baseline", "?"))))
    if s.workers:
        facts.append(("Workers", f"{s.workers} (pytest-xdist)"))
    return facts


def _gate_line(record: RunRecord) -> str:
    g = record.gate
    if g is None:
        return ""
    parts = [
        f"baseline {g.get('baseline', '?')}",
        f"threshold {_percent(g.get('threshold'))}",
        f"margin {_percent(g.get('margin'))}",
        f"Holm alpha {g.get('alpha', '?')}",
        f"method {g.get('method', '?')}",
    ]
    suite = g.get("suite")
    if suite and suite.get("ratio") is not None:
        ratio = fmt.ratio(suite.get("ratio"), suite.get("ci_low"), suite.get("ci_high"))
        parts.append(f"suite total {ratio} ({verdict_label(suite.get('status')).word})")
    return "; ".join(parts)


def _benchmark_cards(
    tests: Sequence[TestResult], history: Mapping[str, Any]
) -> tuple[list[BenchmarkCard], dict[str, str], int]:
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


def render_html(record: RunRecord, history: Mapping[str, Sequence[float]] | None = None) -> str:
    """The report page for ``record``; ``history`` maps test ids to earlier figures.

    The output depends only on the arguments (no clock, no environment), so the
    same record always renders to the same bytes.
    """
    history = history or {}
    css, script, script_hash = _assets()
    cards, ov = _cards(record)
    tests = record.tests
    bench_cards, anchors, benches_omitted = _benchmark_cards(tests, history)
    rows: list[TestRow] = []
    data_rows: list[list[Any]] = []
    for index, test in enumerate(tests[:MAX_TABLE_ROWS]):
        row, row_data = _row(index, test, anchors, history)
        rows.append(row)
        data_rows.append(row_data)
    data = {
        "schema_version": record.schema_version,
        "plugin_version": record.session.machine.plugin_version,
        "method": record.session.method,
        "headline": ov.headline,
        "counts": dict(sorted(ov.counts.items())),
        "total_j": _json_number(ov.total_j),
        "total_gco2e": _json_number(ov.total_grams),
        "columns": [
            "nodeid",
            "outcome",
            "joules",
            "j_per_unit",
            "seconds",
            "watts",
            "gco2e",
            "ratio",
            "verdict",
            "flags",
        ],
        "tests": data_rows,
    }
    changes = [
        (
            "Regressions",
            [_change_row(t) for t in ov.regressions[:MAX_CHANGES]],
            len(ov.regressions),
        ),
        (
            "Improvements",
            [_change_row(t) for t in ov.improvements[:MAX_CHANGES]],
            len(ov.improvements),
        ),
        (
            "Inconclusive",
            [_change_row(t) for t in ov.inconclusive[:MAX_CHANGES]],
            len(ov.inconclusive),
        ),
    ]
    template = _environment().get_template("report.html.j2")
    from markupsafe import Markup

    return str(
        template.render(
            css=Markup(css),  # our own file, not data
            wbr=Markup("<wbr>"),  # a constant; |join escapes the parts it joins
            script=Markup(script),  # our own file, hashed into the CSP below
            csp=content_security_policy(script_hash),
            record=record,
            ov=ov,
            method_statement=method_statement(record),
            cards=cards,
            facts=_machine_facts(record),
            gate_line=_gate_line(record),
            notices=list(record.session.notices),
            changes=[c for c in changes if c[2]],
            rows=rows,
            rows_omitted=max(0, len(tests) - MAX_TABLE_ROWS),
            has_history=bool(history),
            verdict_filters=[
                (s, verdict_label(s))
                for s in ("regression", "inconclusive", "improvement", "unchanged", "not_gated")
            ],
            bench_cards=bench_cards,
            interleaved=any(b.plot and len(b.plot.lanes) > 1 for b in bench_cards),
            benches_omitted=benches_omitted,
            families=[_family_view(f) for f in record.families],
            methodology=_methodology(record),
            data=data,
        )
    )
