"""The ``energy`` section pytest prints after its own summary.

Top tests by energy with the meter behind each number, benchmarks with J per
unit and their interval, model families, the gate's regressions, and totals.
It reads the run record only, like every other report.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Protocol

from pytest_energy.record import FLAGS, FamilyResult, GateSummary, RunRecord, TestResult
from pytest_energy.report import format as fmt
from pytest_energy.report.overview import (
    ab_line,
    method_statement,
    modelled_basis,
    overview,
    uses_ops_meter,
    verdict_label,
)

#: Test ids are cut (keeping their end, where parametrize values are) to fit a line.
ID_WIDTH = 70


class _Writer(Protocol):
    def write_sep(self, sep: str, title: str | None = None, **markup: bool) -> None: ...
    def write_line(self, line: str, **markup: bool) -> None: ...


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i < len(cells) - 1 else c
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def _table(writer: _Writer, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    writer.write_line(_row(header, widths), bold=True)
    for row in rows:
        writer.write_line(_row(row, widths))


def _test_id(test: TestResult) -> str:
    return fmt.shorten(fmt.visible(test.nodeid), ID_WIDTH)


def _flags(test: TestResult) -> str:
    return ",".join(test.flags) or "-"


def _top_tests(writer: _Writer, record: RunRecord, top: int) -> None:
    measured = [t for t in record.tests if t.measurement is not None]
    if not measured or top <= 0:
        return
    ranked = sorted(measured, key=lambda t: -(t.measurement.total_j if t.measurement else 0))
    shown = ranked[:top]
    writer.write_line(f"top {len(shown)} of {len(measured)} tests by energy:")
    rows = []
    for test in shown:
        m = test.measurement
        assert m is not None
        rows.append(
            [
                fmt.energy(m.total_j),
                fmt.duration(m.seconds),
                fmt.power(m.watts),
                f"{','.join(m.meters)} ({m.method})",
                _flags(test),
                _test_id(test),
            ]
        )
    _table(writer, ["energy", "time", "power", "meter", "flags", "test"], rows)


def _benchmarks(writer: _Writer, record: RunRecord) -> None:
    benched = [t for t in record.tests if t.benchmark is not None]
    if not benched:
        return
    writer.write_line("")
    writer.write_line("benchmarks (median per unit of work, 95% CI of the mean):")
    rows = []
    starred = False
    for test in benched:
        b = test.benchmark
        assert b is not None
        per_unit = f"{fmt.energy_per_unit(b.per_unit.median, b.unit)}"
        interval = fmt.relative_interval(b.per_unit)
        # The spread the gate sees: of the calibration-normalized ratio when there is one.
        spread = b.normalized or b.per_unit
        cv = fmt.cv(spread)
        if b.normalized and cv != fmt.DASH:
            cv += "*"
            starred = True
        method = test.measurement.method if test.measurement else record.session.method
        own = [r for r in b.rounds if r.role != "reference" and r.process == 0]
        processes = len({r.process for r in b.rounds if r.role != "reference"})
        shape = f"{len(own)}x{b.calls_per_round}" + (f" x{processes}p" if processes > 1 else "")
        rows.append([per_unit, interval, cv, shape, method, _flags(test), _test_id(test)])
    _table(writer, ["J/unit", "95% CI", "cv", "rounds", "method", "flags", "test"], rows)
    if starred:
        writer.write_line(
            "* cv of J per unit over the interleaved calibration workload's J per "
            "call (what the gate compares)"
        )


def _families(writer: _Writer, record: RunRecord) -> None:
    for family in record.families:
        _family(writer, family, modelled_basis(record))


def _family(writer: _Writer, family: FamilyResult, basis: str) -> None:
    writer.write_line("")
    note = f" -- ratios of modelled numbers ({basis})" if family.method == "modelled" else ""
    writer.write_line(
        f"model family {family.family} (reference "
        f"{family.reference}, energy per {family.unit}){note}:"
    )
    rows = []
    for v in family.variants:
        # The first metric with a ratio; a variant without one shows a dash.
        q = next((e.ratio for e in v.quality.values() if e.ratio is not None), None)
        rows.append(
            [
                v.variant,
                fmt.ratio(v.energy_ratio, v.ci_low, v.ci_high),
                f"{q:.1%}" if q is not None else fmt.DASH,
                "yes" if v.on_frontier else "no",
                v.verdict,
            ]
        )
    _table(writer, ["variant", "energy ratio", "quality", "frontier", "verdict"], rows)
    for v in family.variants:
        if v.verdict in ("fail", "inconclusive"):
            writer.write_line(f"  {v.verdict}: {v.line}", red=v.verdict == "fail")


def write_regressions(writer: _Writer, record: RunRecord) -> None:
    """The gate's section alone, as ``pytest-energy compare`` prints it."""
    _regressions(writer, record)


def _regressions(writer: _Writer, record: RunRecord) -> None:
    gate = record.gate
    if gate is None:
        return
    counts = Counter(t.verdict.status for t in record.tests if t.verdict is not None)
    modelled = " (modelled vs modelled)" if gate.method == "modelled" else ""
    writer.write_sep("-", f"energy regressions{modelled}", red=gate.failed)
    writer.write_line(
        f"baseline {gate.baseline}: threshold {fmt.percentage(gate.threshold)}"
        f", margin {fmt.percentage(gate.margin)}, family-wise alpha "
        f"{fmt.percentage(gate.alpha)}; "
        + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(counts.items()))
    )
    _flagged_tests(writer, record)
    _not_gated(writer, record)
    _suite_and_stability(writer, gate)


def _flagged_tests(writer: _Writer, record: RunRecord) -> None:
    flagged = [
        t
        for t in record.tests
        if t.verdict is not None
        and t.verdict.status in ("regression", "inconclusive", "improvement")
    ]
    if not flagged:
        return
    rows = []
    for test in sorted(flagged, key=lambda t: -(t.verdict.ratio or 0) if t.verdict else 0):
        v = test.verdict
        assert v is not None
        unit = test.benchmark.unit if test.benchmark else "test"
        rows.append(
            [
                v.status,
                fmt.energy_per_unit(v.baseline, unit),
                fmt.energy_per_unit(v.current, unit),
                fmt.ratio(v.ratio, v.ci_low, v.ci_high),
                v.method,
                _test_id(test),
            ]
        )
    _table(writer, ["verdict", "baseline", "current", "ratio [95% CI]", "method", "test"], rows)


def _suite_and_stability(writer: _Writer, gate: GateSummary) -> None:
    suite = gate.suite
    ratio = fmt.ratio(suite.ratio, suite.ci_low, suite.ci_high)
    writer.write_line(f"suite total: {ratio} over {suite.tests} gated tests: {suite.status}")
    if gate.unstable:
        writer.write_line(f"session unstable: {gate.unstable_reason}", yellow=True)
    if gate.decision:
        writer.write_line(f"gate: {gate.decision}", red=gate.failed)


def _not_gated(writer: _Writer, record: RunRecord) -> None:
    """Why tests were not gated, so a run that gated nothing never reads as a pass."""
    reasons = overview(record).not_gated
    for reason, count in reasons[:5]:
        writer.write_line(f"not gated: {count} x {fmt.visible(reason)}")
    if len(reasons) > 5:
        writer.write_line(f"not gated: {len(reasons) - 5} other reasons (see the JSON results)")


def _totals(writer: _Writer, record: RunRecord, json_path: Path | None) -> None:
    session = record.session
    totals = session.totals
    writer.write_line("")
    line = (
        f"session: {totals.tests} tests measured, "
        f"{fmt.energy(totals.joules)} in {fmt.duration(totals.seconds)}"
        f" ({fmt.power(totals.watts)} mean), {session.method}"
    )
    if session.idle is not None and totals.net_joules is not None:
        line += (
            f"; {fmt.energy(totals.net_joules)} above idle "
            f"({fmt.power(session.idle.total_watts)} idle"
            + (" after the tests, in their CUDA context" if session.idle.phase == "after" else "")
            + ")"
        )
    writer.write_line(line)
    _carbon(writer, record)
    counts = Counter(flag for t in record.tests for flag in t.flags)
    for flag, count in sorted(counts.items()):
        writer.write_line(f"{count} tests flagged {flag}: {FLAGS.get(flag, '')}")
    if json_path is not None:
        writer.write_line(f"results: {json_path}")


def _carbon(writer: _Writer, record: RunRecord) -> None:
    carbon = record.session.carbon
    grams = [t.carbon.grams for t in record.tests if t.carbon is not None]
    if not grams or carbon is None:
        return
    writer.write_line(f"CO2e: {fmt.co2e(math.fsum(grams))} at {carbon.line}")
    embodied = [
        t.carbon.embodied_grams
        for t in record.tests
        if t.carbon is not None and t.carbon.embodied_grams is not None
    ]
    if embodied:
        writer.write_line(
            f"embodied: {fmt.co2e(math.fsum(embodied))} (device share for the "
            "measured time, reported separately, not added)"
        )
    if carbon.hint:
        writer.write_line(f"carbon-aware: {carbon.hint}")


def write_energy_section(
    writer: _Writer, record: RunRecord, *, top: int, json_path: Path | None, failure: str | None
) -> None:
    """Write the whole energy section to pytest's terminal reporter."""
    writer.write_sep("=", "energy")
    if record.session.method == "modelled":
        basis = "counted torch operations" if uses_ops_meter(record) else "CPU time"
        writer.write_line(
            f"numbers are MODELLED from {basis}, not measured by hardware counters", yellow=True
        )
    _top_tests(writer, record, top)
    _benchmarks(writer, record)
    _families(writer, record)
    _regressions(writer, record)
    _totals(writer, record, json_path)
    for notice in record.session.notices:
        writer.write_line(f"note: {notice}")
    if failure:
        writer.write_line(failure, red=True, bold=True)


# -- pytest-energy ab -----------------------------------------------------------------


def write_ab_report(writer: _Writer, record: RunRecord) -> None:
    """The report of ``pytest-energy ab``: every test's head/base ratio and the verdict."""
    gate, ab = record.gate, record.ab
    if gate is None or ab is None:
        return
    writer.write_sep("=", "energy A/B")
    writer.write_line(ab_line(record), bold=True)
    writer.write_line(method_statement(record), yellow=record.session.method == "modelled")
    writer.write_line(
        f"{ab.processes} worker processes per side (up to {ab.max_processes} for tests the "
        f"screen flagged), {fmt.duration(ab.wall_s)} of a {fmt.duration(ab.budget_s)} budget; "
        f"threshold {fmt.percentage(gate.threshold)}, margin {fmt.percentage(gate.margin)}, "
        f"Holm alpha {fmt.percentage(gate.alpha)}"
    )
    writer.write_line(ab.drift)
    _ab_table(writer, record)
    for test in record.tests:
        if test.ab is not None and test.ab.status not in ("compared", "new", "removed"):
            reason = test.verdict.reason if test.verdict else test.ab.status
            writer.write_line(f"{test.ab.status}: {_test_id(test)}: {fmt.visible(reason)}")
    for status in ("new", "removed"):
        shown = [t for t in record.tests if t.ab is not None and t.ab.status == status]
        if shown:
            where = "head" if status == "new" else "base"
            writer.write_line(
                f"{status} (only in the {where} tree, not gated): "
                + ", ".join(_test_id(t) for t in shown)
            )
    for notice in record.session.notices:
        writer.write_line(f"note: {fmt.visible(notice)}")
    _suite_and_stability(writer, gate)
    writer.write_line(overview(record).headline, bold=True, red=gate.failed)


def _ab_table(writer: _Writer, record: RunRecord) -> None:
    compared = [t for t in record.tests if t.ab is not None and t.ab.status == "compared"]
    if not compared:
        writer.write_line("no test was compared")
        return
    rows = []
    for test in sorted(compared, key=lambda t: -(t.verdict.ratio or 0) if t.verdict else 0):
        v = test.verdict
        assert v is not None and test.ab is not None
        unit = test.benchmark.unit if test.benchmark else "call"
        rows.append(
            [
                str(verdict_label(v.status)),
                fmt.energy_per_unit(v.baseline, unit),
                fmt.energy_per_unit(v.current, unit),
                fmt.ratio(v.ratio, v.ci_low, v.ci_high),
                str(test.ab.pairs),
                _test_id(test),
            ]
        )
    _table(writer, ["verdict", "base", "head", "head/base [95% CI]", "pairs", "test"], rows)
