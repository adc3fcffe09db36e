"""Chart geometry for the HTML report: round strip plots, sparklines, the Pareto scatter.

Coordinates and labels are computed here as finished numbers and strings;
``templates/_charts.html.j2`` only draws them as inline SVG, so no chart needs
JavaScript and the same record always draws the same bytes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence

from pytest_energy.frozen import frozen
from pytest_energy.record import Benchmark, FamilyResult, VariantResult
from pytest_energy.report import format as fmt
from pytest_energy.report.escape import html_text
from pytest_energy.report.overview import variant_label

__all__ = [
    "MAX_HISTORY_POINTS",
    "Scatter",
    "Sparkline",
    "StripPlot",
    "nice_ticks",
    "pareto_scatter",
    "sparkline",
    "strip_plot",
]

#: Newest history points drawn in a sparkline.
MAX_HISTORY_POINTS = 30


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


# -- a benchmark's rounds -----------------------------------------------------------


@frozen
class Dot:
    x: float
    y: float
    title: str


@frozen
class Lane:
    label: str
    css: str
    y: float
    dots: list[Dot]
    median_x: float


@frozen
class StripPlot:
    """Per-round energy per unit, one dot per round, one lane per role."""

    width: int
    height: int
    left: int
    right: int
    lanes: list[Lane]
    ticks: list[tuple[float, str]]
    label: str


def _per_unit_by_role(bench: Benchmark) -> dict[str, list[float]]:
    by_role: dict[str, list[float]] = {}
    for rnd in bench.rounds:
        value = rnd.per_unit(bench.units_per_call)
        if math.isfinite(value):  # a round without calls or energy has no place on the axis
            by_role.setdefault(rnd.role, []).append(value)
    return by_role


def strip_plot(bench: Benchmark) -> StripPlot | None:
    """One dot per round on a shared axis; the reference rounds of a variant in their own lane."""
    by_role = _per_unit_by_role(bench)
    if not by_role:
        return None
    # Candidate first, then the reference rounds of a variant comparison.
    roles = sorted(by_role, key=lambda r: (r != "candidate", r))
    low, high = _extent(v for values in by_role.values() for v in values)
    width, left, right, lane_h = 360, 78, 12, 22

    def sx(value: float) -> float:
        return _scale(value, low, high, left, width - right)

    lanes = []
    for i, role in enumerate(roles):
        values = by_role[role]
        y = 12 + i * lane_h
        dots = [
            Dot(
                x=sx(v),
                # A fixed, index-based jitter keeps equal values visible and the SVG deterministic.
                y=y + ((k * 7) % 5 - 2) * 1.6,
                title=f"round {k + 1}: {fmt.energy_per_unit(v, bench.unit)}",
            )
            for k, v in enumerate(values)
        ]
        median = sorted(values)[len(values) // 2]
        css = "ref" if role == "reference" else "cand"
        lanes.append(Lane(label=role, css=css, y=y, dots=dots, median_x=sx(median)))
    ticks = [
        (sx(v), fmt.energy(v)) for v in (low + (high - low) * 0.08, high - (high - low) * 0.08)
    ]
    return StripPlot(
        width=width,
        height=12 + len(roles) * lane_h + 14,
        left=left,
        right=right,
        lanes=lanes,
        ticks=ticks,
        label=f"Energy per {bench.unit} of each round",
    )


# -- a test's history ---------------------------------------------------------------


@frozen
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
    """The newest :data:`MAX_HISTORY_POINTS` finite figures as a line; None below two."""
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


# -- a model family: energy against quality -----------------------------------------


@frozen
class ScatterPoint:
    x: float
    y: float
    label: str
    title: str
    css: str
    frontier: bool


@frozen
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


def _quality_metric(variants: Sequence[VariantResult]) -> str | None:
    """The metric on the y axis: the first by name, so every run plots the same one."""
    names = sorted({name for v in variants for name in v.quality})
    return names[0] if names else None


def _quality_ratio(variant: VariantResult, metric: str) -> float | None:
    entry = variant.quality.get(metric)
    ratio = entry.ratio if entry is not None else None
    return ratio if ratio is not None and math.isfinite(ratio) else None


def _family_limit(variants: Sequence[VariantResult], name: str) -> float | None:
    """A limit of the family (``max_energy_ratio``, ``min_quality_ratio``), if one is set."""
    return next((v.limits[name] for v in variants if name in v.limits), None)


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


def pareto_scatter(family: FamilyResult) -> Scatter | None:
    """The family's variants by energy and quality ratio; None without a quality metric."""
    variants = family.variants
    metric = _quality_metric(variants)
    if metric is None:
        return None
    plotted = [
        (v, v.energy_ratio, q)
        for v in variants
        if math.isfinite(v.energy_ratio) and (q := _quality_ratio(v, metric)) is not None
    ]
    if not plotted:
        return None
    max_energy = _family_limit(variants, "max_energy_ratio")
    min_quality = _family_limit(variants, "min_quality_ratio")
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
        label = variant_label(variant.verdict)
        points.append(
            ScatterPoint(
                x=sx(x),
                y=sy(y),
                label=html_text(fmt.shorten(variant.variant, 32)),
                title=(
                    f"{variant.variant}: energy {fmt.ratio(x)}, {metric} {fmt.ratio(y)} "
                    f"({label.word})"
                ),
                css=label.css,
                frontier=variant.on_frontier,
            )
        )
    frontier = sorted((p.x, p.y) for p in points if p.frontier)
    return Scatter(
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        points=points,
        # One point on the frontier is no line.
        frontier_path="M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in frontier)
        if len(frontier) > 1
        else "",
        x_ticks=[(sx(v), _tick_label(v, x_ticks)) for v in x_ticks],
        y_ticks=[(sy(v), _tick_label(v, y_ticks)) for v in y_ticks],
        x_label=f"Energy per {family.unit or 'unit'} vs {family.reference or 'reference'}",
        y_label=f"{metric} vs reference",
        limit_x=sx(max_energy) if max_energy is not None else None,
        limit_y=sy(min_quality) if min_quality is not None else None,
    )
