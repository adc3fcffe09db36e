"""The gate applied to a run: a baseline and a run record in, verdicts and a decision out.

* During a benchmark, :meth:`RunGate.extra_rounds` screens its rounds against the
  baseline and asks for fresh confirmation rounds when they look like a regression.
* At the end, :meth:`RunGate.decide` weighs every test with
  :func:`pytest_energy.gate.decision.evaluate` (Holm across tests, plus the suite
  total), judges the session's stability, and says whether the build fails.

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
from pytest_energy.gate.stability import session_stability
from pytest_energy.record import (
    Calibration,
    GateSummary,
    Round,
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
    #: Collected tests with a baseline: the size of the gate's Holm family.
    family_size: int = 0
    #: Tests compared on calibration-normalized ratios rather than joules.
    normalized: set[str] = field(default_factory=set)

    def covers(self, nodeid: str) -> bool:
        return nodeid in self.baseline.samples

    # -- during a benchmark ------------------------------------------------------------

    def extra_rounds(
        self,
        nodeid: str,
        unit: str,
        rounds: Sequence[Round],
        units: float,
        method: str,
        threshold: float | None,
    ) -> tuple[int, str]:
        """Confirmation rounds to run now for this benchmark, and the screen's reason."""
        stored = self.baseline.samples.get(nodeid)
        entry = self.baseline.entries.get(nodeid)
        if not stored or (entry is not None and entry.unit != unit):
            return 0, "not screened: no comparable baseline"
        mine = [r for r in rounds if r.role == "candidate" and r.calls > 0]
        current = [r.per_unit(units) for r in mine]
        normalized = [v for r in mine if (v := r.normalized(units)) is not None]
        if entry is not None and len(entry.normalized) > 1 and len(normalized) > 1:
            stored, current = entry.normalized, normalized
        test = GateInput(
            nodeid,
            baseline=stored,
            current=current,
            threshold=threshold,
            method=method,
            baseline_method=entry.method if entry else None,
            baseline_kind=self.baseline.kind,
        )
        result = screen(
            test,
            family_size=max(self.family_size, 1),
            alpha=self.settings.alpha,
            threshold=self.settings.fail,
            margin=self.settings.margin,
            max_rounds=self.settings.max_rounds,
        )
        return (result.extra_rounds if result.flagged else 0), result.reason

    # -- at the end ----------------------------------------------------------------------

    def decide(self, record: RunRecord, calibration: Calibration | None) -> tuple[RunRecord, bool]:
        """Every test's verdict, the gate summary, and whether the build fails."""
        inputs: list[GateInput] = []
        positions: list[int] = []
        verdicts: list[Verdict | None] = []
        for index, test in enumerate(record.tests):
            prepared = self._input(test)
            if isinstance(prepared, Verdict):
                verdicts.append(prepared)
            else:
                verdicts.append(None)
                inputs.append(prepared)
                positions.append(index)
        settings = self.settings
        outcome = evaluate(
            inputs, alpha=settings.alpha, threshold=settings.fail, margin=settings.margin
        )
        for position, verdict in zip(positions, outcome.verdicts, strict=True):
            verdicts[position] = self._in_joules(record.tests[position], verdict)
        suite = outcome.suite
        gated = [v for v in outcome.verdicts if v.status != "not_gated"]
        if len(gated) < 2:
            # A suite of one test is that test, under the session's threshold instead
            # of the test's own: it adds nothing and could contradict the marker.
            suite = SuiteCheck(status="not_gated", tests=len(gated))
        regressed = any(v.status == "regression" for v in outcome.verdicts)
        regressed = regressed or suite.status == "regression"
        cvs = {t.nodeid: cv for t in record.tests if (cv := _compared_cv(t)) is not None}
        stability = session_stability(
            calibration.start if calibration else (),
            calibration.end if calibration else (),
            cvs,
            max_cv=settings.cv_limit,
        )
        failed = regressed and (not stability.unstable or settings.fail_unstable)
        decided = [v for v in verdicts if v is not None]
        counts: dict[str, int] = {}
        for verdict in decided:
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
        )
        tests = [replace(t, verdict=v) for t, v in zip(record.tests, verdicts, strict=True)]
        session = replace(record.session, unstable=stability.unstable, calibration=calibration)
        return replace(record, tests=tests, gate=summary, session=session), failed

    def _in_joules(self, test: TestResult, verdict: Verdict) -> Verdict:
        """A verdict reached on normalized ratios, shown with the joules users know."""
        if test.nodeid not in self.normalized:
            return verdict
        entry = self.baseline.entries.get(test.nodeid)
        current = test.per_unit_samples()
        return replace(
            verdict,
            baseline=entry.median if entry else None,
            current=statistics.median(current[1]) if current else None,
            reason=f"{verdict.reason} (compared as ratios to the calibration workload)",
            kind="normalized",
        )

    def _input(self, test: TestResult) -> GateInput | Verdict:
        method = test.measurement.method if test.measurement else ""
        if self.baseline.problem is not None:
            return not_gated(self.baseline.problem, method=method)
        gating = test.gating
        if gating is not None and not gating.enabled:
            return not_gated("gate=False in the energy marker", method=method)
        flagged = not_gated_for_flags(test.flags, method=method)
        if flagged is not None:
            return flagged
        stored = self.baseline.samples.get(test.nodeid)
        if not stored:
            return not_gated("no baseline for this test", method=method)
        samples = test.per_unit_samples()
        if samples is None:
            return not_gated(f"no usable energy figure (outcome {test.outcome})", method=method)
        unit, current = samples
        entry = self.baseline.entries.get(test.nodeid)
        if entry is not None and entry.unit != unit:
            return not_gated(
                f"unit changed: the baseline has J per {entry.unit}, this run J per {unit}",
                method=method,
            )
        if self.baseline.kind == "rounds" and len(current) < 2 and len(stored) < 2:
            return not_gated(
                "a single window on each side cannot show noise; gate it with "
                "energy_benchmark or --energy-history-baseline",
                method=method,
            )
        bench = test.benchmark
        confirmation = bench.per_unit_samples("confirm") if bench else []
        normalized = bench.normalized_samples() if bench else []
        if entry is not None and len(entry.normalized) > 1 and len(normalized) > 1 and bench:
            # Both sides interleaved the calibration workload: compare the ratios,
            # which CPU-speed changes between and within the runs do not move.
            stored, current = entry.normalized, normalized
            confirmation = bench.normalized_samples("confirm")
            self.normalized.add(test.nodeid)
        return GateInput(
            test.nodeid,
            baseline=stored,
            current=current,
            confirmation=confirmation,
            threshold=gating.threshold if gating else None,
            method=method,
            baseline_method=entry.method if entry else None,
            baseline_kind=self.baseline.kind,
            weight=bench.units_per_call if bench else 1.0,
        )


def _compared_cv(test: TestResult) -> float | None:
    """The round-to-round CV of what the gate compares: normalized ratios when present."""
    bench = test.benchmark
    if bench is None:
        return None
    spread = bench.normalized if bench.normalized is not None else bench.per_unit
    return spread.cv if spread.n > 1 and math.isfinite(spread.cv) else None
