"""What every report leads with: which tests changed, the one-line verdict, the labels.

The terminal section, the Markdown, the annotations and the HTML page all call
:func:`overview`, so they agree on the counts, on the headline and on how a
verdict reads. It reads the run record only, never meters.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import field
from typing import Literal

from pytest_energy.frozen import frozen
from pytest_energy.record import (
    BudgetNote,
    Carbon,
    FamilyResult,
    GateSummary,
    RunRecord,
    TestResult,
    VariantResult,
)
from pytest_energy.report import format as fmt

__all__ = [
    "VARIANT_LABELS",
    "VERDICT_LABELS",
    "VERDICT_ORDER",
    "Label",
    "Overview",
    "ab_line",
    "budget_breaches",
    "carbon_label",
    "carbon_sources",
    "method_statement",
    "overview",
    "per_unit",
    "variant_label",
    "verdict_label",
]


@frozen
class Label:
    """How a verdict reads: a word, a symbol and a CSS class (never colour alone)."""

    word: str
    symbol: str
    css: str

    def __str__(self) -> str:
        return f"{self.symbol} {self.word}".strip()


VERDICT_ORDER = ("regression", "inconclusive", "improvement", "unchanged", "not_gated")

VERDICT_LABELS = {
    "regression": Label("regression", "▲", "bad"),
    "improvement": Label("improvement", "▼", "good"),
    "unchanged": Label("unchanged", "=", "neutral"),
    "inconclusive": Label("inconclusive", "?", "warn"),
    "not_gated": Label("not gated", "–", "muted"),
}

VARIANT_LABELS = {
    "pass": Label("pass", "✓", "good"),
    "fail": Label("fail", "✗", "bad"),
    "inconclusive": Label("inconclusive", "?", "warn"),
    "reference": Label("reference", "●", "muted"),
    "not_gated": Label("not gated", "–", "muted"),
}

GateState = Literal["failed", "passed", "not_gated"]


def verdict_label(status: str | None) -> Label:
    """The label of a test verdict; an unknown status reads as itself."""
    if status is None:
        return Label("not compared", "", "muted")
    return VERDICT_LABELS.get(status, Label(status.replace("_", " "), "", "muted"))


def variant_label(verdict: str | None) -> Label:
    """The label of a variant verdict; an unknown verdict reads as itself."""
    if not verdict:
        return Label("not judged", "", "muted")
    return VARIANT_LABELS.get(verdict, Label(verdict, "", "muted"))


def per_unit(test: TestResult) -> tuple[float, str] | None:
    """A benchmark's median joules per unit of work, and the unit."""
    bench = test.benchmark
    if bench is None or not math.isfinite(bench.per_unit.median):
        return None
    return bench.per_unit.median, bench.unit


def budget_breaches(test: TestResult) -> list[str]:
    """The energy budgets (marker ``max_joules=`` and friends) that ``test`` exceeded.

    Budgets that held are not shown: a note says what went over, by how much,
    and what the marker does about it (fail, warn).
    """
    return [_breach(note) for note in test.budget if note.exceeded]


def _breach(note: BudgetNote) -> str:
    numbers = (
        f" {note.value:.4g} > {note.limit:g}"
        if math.isfinite(note.value) and math.isfinite(note.limit)
        else ""
    )
    action = f" ({note.action})" if note.action else ""
    return f"{note.budget or 'budget'}{numbers}{action}"


def carbon_label(carbon: Carbon) -> str:
    """Where a CO2e figure came from: ``Ember 2024, DEU, 342 g/kWh``."""
    parts = [f"{carbon.source} {carbon.year}" if carbon.year else carbon.source]
    if carbon.region:
        parts.append(carbon.region)
    parts.append(f"{fmt.sig(carbon.intensity_g_per_kwh)} g/kWh")
    if carbon.pue and carbon.pue != 1:
        parts.append(f"PUE {carbon.pue:g}")
    return ", ".join(p for p in parts if p)


def carbon_sources(carbons: Iterable[Carbon]) -> list[str]:
    """The distinct intensity labels behind ``carbons``, sorted."""
    # One label per source, not per test: thousands of tests share a handful.
    unique = {(c.source, c.year, c.region, c.intensity_g_per_kwh, c.pue): c for c in carbons}
    return sorted({carbon_label(c) for c in unique.values()})


def method_statement(record: RunRecord) -> str:
    """One sentence on how the numbers were obtained, modelled ones marked as estimates."""
    session = record.session
    meters = ", ".join(session.machine.meters or [m.name for m in session.meters]) or "no meter"
    if session.method == "measured":
        return f"Measured with hardware energy counters ({meters})."
    if session.method == "modelled":
        if uses_ops_meter(record):
            return (
                f"Modelled estimates, not measurements ({meters}): counted torch operations "
                "and bytes x a 45 nm energy table. The same work gives the same joules on "
                "any machine; work outside torch is not counted."
            )
        return (
            f"Modelled estimates, not measurements ({meters}): CPU time x a per-core "
            "power figure. Compare them only with modelled runs on the same runner type."
        )
    return f"Energy method: {session.method or 'unknown'} ({meters})."


def uses_ops_meter(record: RunRecord) -> bool:
    """Whether the numbers are the ops meter's: counted operations, not CPU time."""
    session = record.session
    return "ops" in (session.machine.meters or [m.name for m in session.meters])


def modelled_basis(record: RunRecord) -> str:
    """What a modelled figure of this run stands for, in a few words."""
    return "counted torch operations" if uses_ops_meter(record) else "CPU work"


def ab_line(record: RunRecord) -> str:
    """What an A/B run compared, "head abc1234 vs base commit def5678, measured in the
    same job, interleaved"; empty for a run compared with a stored baseline."""
    ab = record.ab
    if ab is None:
        return ""
    head = ab.head_commit[:7] if ab.head_commit else ab.head_ref
    if ab.head_commit and "uncommitted" in ab.head_ref:
        head += " + uncommitted changes"
    base = ab.base_commit[:7] or ab.base_ref
    return f"head {head} vs base commit {base}, measured in the same job, interleaved"


@frozen
class Overview:
    """The facts every report leads with, computed once from the record."""

    method: str
    tests: int
    measured: list[TestResult]
    total_j: float
    total_grams: float | None
    embodied_grams: float | None
    carbon_sources: list[str]
    counts: dict[str, int]
    gated: int
    regressions: list[TestResult]
    improvements: list[TestResult]
    inconclusive: list[TestResult]
    variant_failures: list[tuple[FamilyResult, VariantResult]]
    state: GateState
    headline: str
    unstable: bool
    unstable_reason: str
    #: Why tests were not gated, most common first: (reason, tests).
    not_gated: list[tuple[str, int]] = field(default_factory=list)
    #: The session never finished: a checkpoint left by a killed (or still running) run.
    incomplete: bool = False


def _ratio_key(test: TestResult) -> float:
    ratio = test.verdict.ratio if test.verdict else None
    return ratio if ratio is not None and math.isfinite(ratio) else 1.0


def _with_status(tests: Sequence[TestResult], status: str) -> list[TestResult]:
    return [t for t in tests if t.verdict is not None and t.verdict.status == status]


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _not_gated_reason(record: RunRecord) -> str:
    if record.gate is None:
        return "no baseline"
    reasons = Counter(
        t.verdict.reason for t in record.tests if t.verdict is not None and t.verdict.reason
    )
    if reasons:
        return reasons.most_common(1)[0][0]
    return "no test had a comparable baseline"


def _suite_regressed(gate: GateSummary) -> str:
    suite = gate.suite
    if suite.status == "regression" and suite.ratio is not None:
        return f"suite total {fmt.change(suite.ratio)}"
    return ""


def _incomplete_headline(record: RunRecord) -> str:
    recorded = _plural(len(record.tests), "test")
    return f"Incomplete run: the process ended before the session finished; {recorded} recorded"


def _headline(
    record: RunRecord,
    state: GateState,
    *,
    gated: int,
    regressions: int,
    variant_failures: int,
    inconclusive: int,
) -> str:
    if record.session.finished is None:
        return _incomplete_headline(record)
    share = f"{gated} of {_plural(len(record.tests), 'test')} gated"
    if state == "not_gated":
        return f"Energy not gated: {share} ({_not_gated_reason(record)})"
    if state == "passed":
        if regressions:
            # An unstable session: the regressions stay within what the drift explains.
            return (
                f"Energy check not failed: {_plural(regressions, 'regression')} within the "
                f"session's instability; {share}"
            )
        text = f"Energy check passed: no regressions; {share}"
        if inconclusive:
            text += f" ({inconclusive} inconclusive)"
        return text
    reasons = []
    if regressions:
        reasons.append(_plural(regressions, "regression"))
    if variant_failures:
        reasons.append(
            _plural(variant_failures, "variant over its limits", "variants over their limits")
        )
    suite = _suite_regressed(record.gate) if record.gate is not None else ""
    if suite:
        reasons.append(suite)
    return "Energy check failed" + (f": {', '.join(reasons)}" if reasons else "") + f"; {share}"


def overview(record: RunRecord) -> Overview:
    """Counts, totals and the one-line verdict of a run."""
    tests = record.tests
    measured = [t for t in tests if t.measurement is not None]
    carbons = [t.carbon for t in measured if t.carbon is not None]
    embodied = [c.embodied_grams for c in carbons if c.embodied_grams is not None]
    counts: Counter[str] = Counter(t.verdict.status for t in tests if t.verdict is not None)
    gated = sum(n for status, n in counts.items() if status != "not_gated")
    regressions = sorted(_with_status(tests, "regression"), key=lambda t: -_ratio_key(t))
    improvements = sorted(_with_status(tests, "improvement"), key=_ratio_key)
    inconclusive = sorted(_with_status(tests, "inconclusive"), key=lambda t: -_ratio_key(t))
    variant_failures = [
        (family, variant)
        for family in record.families
        for variant in family.variants
        if variant.verdict == "fail"
    ]
    gate = record.gate
    # Only the end of a session writes ``finished``: a file without it was left by a
    # run that was killed (or is still running), whatever else it says.
    incomplete = record.session.finished is None
    state: GateState
    if gate is not None and gate.failed:
        state = "failed"
    elif gate is None or incomplete or (gated == 0 and not variant_failures):
        state = "not_gated"
    else:
        state = "passed"
    unstable = record.session.unstable or (gate is not None and gate.unstable)
    return Overview(
        method=record.session.method,
        tests=len(tests),
        measured=measured,
        total_j=math.fsum(t.measurement.total_j for t in measured if t.measurement),
        total_grams=math.fsum(c.grams for c in carbons) if carbons else None,
        embodied_grams=math.fsum(embodied) if embodied else None,
        carbon_sources=carbon_sources(carbons),
        counts=dict(counts),
        gated=gated,
        regressions=regressions,
        improvements=improvements,
        inconclusive=inconclusive,
        variant_failures=variant_failures,
        state=state,
        headline=_headline(
            record,
            state,
            gated=gated,
            regressions=len(regressions),
            variant_failures=len(variant_failures),
            inconclusive=len(inconclusive),
        ),
        unstable=unstable,
        unstable_reason=gate.unstable_reason if gate is not None else "",
        not_gated=Counter(
            t.verdict.reason
            for t in tests
            if t.verdict is not None and t.verdict.status == "not_gated"
        ).most_common(),
        incomplete=incomplete,
    )
