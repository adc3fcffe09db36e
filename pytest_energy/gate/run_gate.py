"""The gate applied to a run: a baseline and a run record in, verdicts and a decision out.

* :meth:`RunGate.screen` compares each gated benchmark's own process with the
  baseline and names the tests that need fresh processes before a verdict.
* :meth:`RunGate.decide` weighs every test with
  :func:`pytest_energy.gate.decision.evaluate` (the spread between processes
  pooled across tests, Holm across tests, plus the suite total), judges the
  session's stability, and says whether the build fails.

The plugin and ``pytest-energy compare`` both go through here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pytest_energy.config.settings import Settings
from pytest_energy.gate.baseline import ComparisonBaseline
from pytest_energy.gate.decision import evaluate
from pytest_energy.gate.rule import GateInput, not_gated, not_gated_for_flags
from pytest_energy.gate.screening import screen
from pytest_energy.gate.stability import Stability, session_stability, survives_drift
from pytest_energy.record import (
    Calibration,
    GateSummary,
    RunRecord,
    SuiteCheck,
    TestResult,
    Verdict,
)


@dataclass
class RunGate:
    """One run's comparison with its baseline."""

    settings: Settings
    baseline: ComparisonBaseline
    #: Tests compared on calibration-normalized ratios rather than joules.
    normalized: set[str] = field(default_factory=set)

    def covers(self, nodeid: str) -> bool:
        return nodeid in self.baseline.groups

    # -- the screen ----------------------------------------------------------------------

    def screen(self, record: RunRecord) -> tuple[RunRecord, list[str]]:
        """The record with each test's screen result, and the tests to confirm."""
        prepared = [self._input(t) for t in record.tests]
        gated = [(i, p) for i, p in enumerate(prepared) if isinstance(p, GateInput)]
        results = screen(
            [p for _, p in gated],
            alpha=self.settings.alpha,
            threshold=self.settings.fail,
            margin=self.settings.margin,
        )
        tests = list(record.tests)
        flagged: list[str] = []
        for (index, _), result in zip(gated, results, strict=True):
            test = tests[index]
            if test.gating is not None:
                tests[index] = replace(test, gating=replace(test.gating, screen=result.reason))
            if result.flagged and test.benchmark is not None:
                flagged.append(test.nodeid)
        return replace(record, tests=tests), flagged

    # -- at the end ----------------------------------------------------------------------

    def decide(self, record: RunRecord, calibration: Calibration | None) -> tuple[RunRecord, bool]:
        """Every test's verdict, the gate summary, and whether the build fails."""
        settings = self.settings
        prepared = [self._input(t) for t in record.tests]
        inputs = [p for p in prepared if isinstance(p, GateInput)]
        outcome = evaluate(
            inputs, alpha=settings.alpha, threshold=settings.fail, margin=settings.margin
        )
        decided = iter(outcome.verdicts)
        verdicts = [
            self._in_joules(test, next(decided)) if isinstance(p, GateInput) else p
            for test, p in zip(record.tests, prepared, strict=True)
        ]
        suite = outcome.suite
        if sum(v.status != "not_gated" for v in outcome.verdicts) < 2:
            # A suite of one test is that test, under the session's threshold instead
            # of the test's own: it adds nothing and could contradict the marker.
            suite = SuiteCheck(status="not_gated", tests=len(inputs))
        cvs = {t.nodeid: cv for t in record.tests if (cv := _compared_cv(t)) is not None}
        stability = session_stability(
            calibration.start if calibration else (),
            calibration.end if calibration else (),
            cvs,
            max_cv=settings.cv_limit,
        )
        failed, decision = self._verdict_of_run(verdicts, suite, stability)
        counts: dict[str, int] = {}
        for verdict in verdicts:
            counts[verdict.status] = counts.get(verdict.status, 0) + 1
        summary = GateSummary(
            baseline=self.baseline.label,
            threshold=settings.fail,
            margin=settings.margin,
            alpha=settings.alpha,
            method=record.session.method,
            counts=counts,
            suite=suite,
            unstable=stability.unstable,
            unstable_reason=stability.reason,
            failed=failed,
            decision=decision,
            tests=len(record.tests),
        )
        tests = [replace(t, verdict=v) for t, v in zip(record.tests, verdicts, strict=True)]
        session = replace(record.session, unstable=stability.unstable, calibration=calibration)
        return replace(record, tests=tests, gate=summary, session=session), failed

    def _verdict_of_run(
        self, verdicts: Sequence[Verdict], suite: SuiteCheck, stability: Stability
    ) -> tuple[bool, str]:
        """Whether the build fails, and the one line that says why (docs/gate.md's table)."""
        regressions = [v for v in verdicts if v.status == "regression"]
        regressed = bool(regressions) or suite.status == "regression"
        if not regressed:
            return False, "no regression"
        what = _plural(len(regressions), "regression") if regressions else "the suite total"
        if not stability.unstable:
            return True, f"the build fails: {what}"
        if self.settings.fail_unstable:
            return True, f"the build fails: {what} (--energy-fail-unstable)"
        proven = [v for v in regressions if survives_drift(v, stability.drift)]
        if proven:
            survivors = _plural(len(proven), "regression")
            return True, (
                f"the build fails: the session was unstable, but {survivors} stayed above "
                "the threshold even allowing for the measured drift"
            )
        return False, (
            f"the build does not fail: {what} within what the session's instability could "
            "explain (--energy-fail-unstable makes it fail)"
        )

    def _in_joules(self, test: TestResult, verdict: Verdict) -> Verdict:
        """A verdict reached on normalized ratios, shown with the joules users know."""
        if test.nodeid not in self.normalized:
            return verdict
        entry = self.baseline.entries.get(test.nodeid)
        current = test.per_unit_samples()
        return replace(
            verdict,
            baseline=entry.median if entry else _history_median(self.baseline, test.nodeid),
            current=statistics.median(current[1]) if current else None,
            reason=f"{verdict.reason} (compared as ratios to the calibration workload)",
            kind="normalized",
        )

    def _input(self, test: TestResult) -> GateInput | Verdict:
        method = test.measurement.method if test.measurement else ""
        if self.baseline.problem is not None:
            return not_gated(self.baseline.problem, method=method)
        if test.gating is not None and not test.gating.enabled:
            return not_gated("gate=False in the energy marker", method=method)
        flagged = not_gated_for_flags(test.flags, method=method)
        if flagged is not None:
            return flagged
        bench = test.benchmark
        if bench is not None and bench.unstable:
            return not_gated(f"unstable (CV {_cv_text(test)} over the limit)", method=method)
        stored = self.baseline.groups.get(test.nodeid)
        if not stored:
            return not_gated("no baseline for this test", method=method)
        samples = test.per_unit_samples()
        if samples is None:
            return not_gated(f"no usable energy figure (outcome {test.outcome})", method=method)
        unit, values = samples
        entry = self.baseline.entries.get(test.nodeid)
        if entry is not None and entry.unit != unit:
            return not_gated(
                f"unit changed: the baseline has J per {entry.unit}, this run J per {unit}",
                method=method,
            )
        if entry is not None and "concurrent" in entry.flags:
            return not_gated("the baseline was measured under pytest-xdist", method=method)
        if bench is None:
            if self.baseline.kind == "rounds":
                return not_gated(
                    "a single window on each side cannot show noise; gate it with "
                    "energy_benchmark or --energy-history-baseline",
                    method=method,
                )
            current: list[list[float]] = [values]
            confirmation: list[list[float]] = []
        else:
            # Both sides interleaved the calibration workload: compare the ratios,
            # which CPU-speed changes between and within the runs do not move.
            stored_ratios = (
                entry.groups(normalized=True)
                if entry is not None and len(entry.normalized) > 1
                else self.baseline.normalized.get(test.nodeid)
            )
            use_ratios = bool(stored_ratios) and len(bench.normalized_samples()) > 1
            if use_ratios and stored_ratios:
                stored = stored_ratios
                self.normalized.add(test.nodeid)
            current = bench.by_process("candidate", normalized=use_ratios)
            confirmation = bench.by_process("confirm", normalized=use_ratios)
        return GateInput(
            test.nodeid,
            baseline=stored,
            current=current,
            confirmation=confirmation,
            threshold=test.gating.threshold if test.gating else None,
            method=method,
            baseline_method=entry.method if entry else self.baseline.method,
            weight=bench.units_per_call if bench else 1.0,
        )


def _compared_cv(test: TestResult) -> float | None:
    """The round-to-round CV of what the gate compares: normalized ratios when present."""
    bench = test.benchmark
    if bench is None:
        return None
    spread = bench.normalized if bench.normalized is not None else bench.per_unit
    return spread.cv if spread.n > 1 and math.isfinite(spread.cv) else None


def _cv_text(test: TestResult) -> str:
    cv = _compared_cv(test)
    return f"{cv:.1%}" if cv is not None else "unknown"


def _plural(n: int, noun: str) -> str:
    return f"1 {noun}" if n == 1 else f"{n} {noun}s"


def _history_median(baseline: ComparisonBaseline, nodeid: str) -> float | None:
    runs = [value for group in baseline.groups.get(nodeid, []) for value in group]
    return statistics.median(runs) if runs else None
