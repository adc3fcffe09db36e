"""An A/B comparison as a results file of the project's schema (``gate.mode = "ab"``).

Each compared test carries both sides' rounds: the head's as ``candidate``, the
base's as ``base``, each with the process pair that measured it, so the
paired ratios can be recomputed from the file. The head's rounds are what the
test's measurement and per-unit figures show.
"""

from __future__ import annotations

import datetime as _dt
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from pytest_energy import __version__
from pytest_energy.ab.comparison import Measured, Plan, comparable_run
from pytest_energy.ab.controller import SideResult, TestRun
from pytest_energy.ab.judge import NO_DRIFT_CHECK, PairedTest, decide
from pytest_energy.ab.trees import Tree
from pytest_energy.cli.common import CommandError
from pytest_energy.config import defaults
from pytest_energy.gate.rule import not_gated, not_gated_for_flags
from pytest_energy.measure.rounds import benchmark_flags, summarize_rounds
from pytest_energy.record import (
    SCHEMA_VERSION,
    ABRun,
    ABTest,
    Benchmark,
    Calibration,
    GateSummary,
    Machine,
    Measurement,
    MeterRecord,
    Outcome,
    ResultsError,
    Round,
    RoundRole,
    RunRecord,
    Session,
    SuiteCheck,
    TestResult,
    Totals,
    Verdict,
    from_plain,
)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def side_rounds(side: SideResult, role: RoundRole, slots: Sequence[int]) -> list[Round]:
    """A side's rounds in ``slots``, labelled with their role and their process pair."""
    return [
        replace(r, role=role, process=slot) for slot in slots for r in side.rounds.get(slot, [])
    ]


def benchmark(run: TestRun) -> Benchmark | None:
    """The head's rounds summarized, with the base's rounds beside them."""
    slots = [*run.screen_slots, *run.extra_slots]
    head = side_rounds(run.head, "candidate", slots)
    base = side_rounds(run.base, "base", slots)
    if not head:
        return None
    summary = summarize_rounds(
        head,
        calls=head[0].calls,
        units=run.head.units,
        unit=run.head.unit,
        target_s=statistics.median(r.seconds for r in head),
        cv_limit=defaults.CV_LIMIT,
        pedantic=False,
        warmup=defaults.WARMUP_CALLS,
        metadata={},
    )
    return replace(summary, rounds=[*head, *base])


def measurement(rounds: Sequence[Round], method: str, meters: list[str]) -> Measurement | None:
    if not rounds:
        return None
    joules: dict[str, float] = {}
    for one in rounds:
        for name, value in one.joules.items():
            joules[name] = joules.get(name, 0.0) + value
    return Measurement(
        seconds=math.fsum(r.seconds for r in rounds),
        joules=joules,
        total_j=math.fsum(r.total_j for r in rounds),
        method=method,
        meters=meters,
        flags=benchmark_flags(rounds),
    )


def _outcome(run: TestRun) -> Outcome:
    if run.base.outcome == "failed" or run.head.outcome == "failed":
        return "failed"
    if run.problem:
        return "error"
    if run.base.outcome == "skipped" or run.head.outcome == "skipped":
        return "skipped"
    return "passed"


def _why_not_compared(run: TestRun) -> tuple[str, str]:
    """(ABTest status, reason) of a test that was measured but cannot be compared."""
    for name, side in (("base", run.base), ("head", run.head)):
        if side.outcome == "failed":
            return "failed", f"failed on the {name} side: {side.message}"
    if run.problem:
        status = "crashed" if "crashed" in run.problem else "failed"
        return status, run.problem
    for name, side in (("base", run.base), ("head", run.head)):
        if side.outcome == "skipped":
            return "skipped", f"skipped on the {name} side: {side.message}"
    return "failed", "not measured"


def build_record(
    measured: Measured,
    plan: Plan,
    trees: Mapping[str, Tree],
    meters: Mapping[str, Any],
    *,
    alpha: float,
    started: str,
    notices: Sequence[str],
) -> RunRecord:
    """The results file of one comparison, verdicts included."""
    method = str(meters.get("method") or "unknown")
    meter_records = [from_plain(MeterRecord, m) for m in meters.get("meters") or []]
    try:
        machine = from_plain(Machine, meters["machine"])
    except (KeyError, TypeError, ResultsError):
        raise CommandError("the workers did not report their meters") from None
    blocked = {r.nodeid: v for r in measured.runs if (v := _blocked(r, method)) is not None}
    comparable = [r for r in measured.runs if comparable_run(r) and r.nodeid not in blocked]
    paired = [
        PairedTest(r.nodeid, r.pairs(r.screen_slots), r.pairs(r.extra_slots)) for r in comparable
    ]
    verdicts, suite = (
        decide(paired, alpha=alpha, threshold=plan.threshold, margin=plan.margin)
        if paired
        else ([], SuiteCheck(status="not_gated", tests=0))
    )
    judged = dict(zip([r.nodeid for r in comparable], verdicts, strict=True))
    judged.update(blocked)
    tests = [
        _test_result(run, judged.get(run.nodeid), method, machine.meters, plan)
        for run in measured.runs
    ]
    tests += [_one_sided(nodeid, "new", plan) for nodeid in measured.new]
    tests += [_one_sided(nodeid, "removed", plan) for nodeid in measured.removed]
    counts: dict[str, int] = {}
    for test in tests:
        if test.verdict is not None:
            counts[test.verdict.status] = counts.get(test.verdict.status, 0) + 1
    regressions = counts.get("regression", 0)
    # A crash or a failure on one side fails the comparison: passing it silently would
    # let a change that breaks (or kills) a benchmark through.
    failed_sides = sum(t.outcome in ("failed", "error") for t in tests)
    failed = regressions > 0 or suite.status == "regression" or failed_sides > 0
    base, head = trees["base"], trees["head"]
    gate = GateSummary(
        baseline=f"base commit {base.short} ({base.ref}), measured in the same job, interleaved",
        threshold=plan.threshold,
        margin=plan.margin,
        alpha=alpha,
        method=method,
        counts=counts,
        suite=suite,
        failed=failed,
        decision=_decision(regressions, suite.status, failed_sides),
        tests=len(tests),
        mode="ab",
    )
    measured_tests = [t.measurement for t in tests if t.measurement is not None]
    joules = math.fsum(m.total_j for m in measured_tests)
    seconds = math.fsum(m.seconds for m in measured_tests)
    session = Session(
        started=started,
        finished=now(),
        machine=machine,
        meters=meter_records,
        method=method,
        idle=None,
        scope="call",
        totals=Totals(
            tests=len(measured_tests),
            joules=joules,
            seconds=seconds,
            watts=joules / seconds if seconds > 0 else 0.0,
        ),
        exit_status=1 if failed else 0,
        commit=head.commit or None,
        notices=[*notices, *measured.notices],
        calibration=Calibration(skipped=NO_DRIFT_CHECK),
    )
    return RunRecord(
        schema_version=SCHEMA_VERSION,
        session=session,
        tests=tests,
        gate=gate,
        ab=ABRun(
            base_ref=base.ref,
            base_commit=base.commit,
            head_ref=head.ref,
            head_commit=head.commit,
            processes=plan.processes,
            max_processes=plan.max_processes,
            budget_s=plan.budget_s,
            wall_s=measured.wall_s,
            drift=NO_DRIFT_CHECK,
            notices=[f"pytest-energy {__version__}"],
        ),
    )


def _decision(regressions: int, suite: str, failed_sides: int) -> str:
    reasons = []
    if regressions:
        reasons.append(f"{regressions} regression(s)")
    if suite == "regression":
        reasons.append("the suite total regressed")
    if failed_sides:
        reasons.append(f"{failed_sides} test(s) failed or could not be measured on one side")
    if reasons:
        return "fails: " + ", ".join(reasons)
    return "passes: no energy regression between the base and the head"


def _test_result(
    run: TestRun, verdict: Verdict | None, method: str, meters: list[str], plan: Plan
) -> TestResult:
    bench = benchmark(run)
    slots = [*run.screen_slots, *run.extra_slots]
    head_rounds = side_rounds(run.head, "candidate", slots)
    if verdict is None:
        status, reason = _why_not_compared(run)
        verdict = not_gated(reason, method=method, threshold=plan.threshold, kind="ab")
        pairs = 0
    elif verdict.status == "not_gated":
        status, pairs = "compared", 0
    else:
        status = "compared"
        pairs = len(run.pairs(slots))
        verdict = _in_joules(verdict, run, slots)
    return TestResult(
        nodeid=run.nodeid,
        file=run.nodeid.partition("::")[0],
        line=None,
        outcome=_outcome(run),
        scope="call",
        measurement=measurement(head_rounds, method, meters),
        benchmark=bench,
        verdict=verdict,
        error=run.head.message or run.base.message or run.problem or None,
        ab=ABTest(
            status=status,
            base_outcome=run.base.outcome,
            head_outcome=run.head.outcome,
            pairs=pairs,
            screen=run.screen_note,
            problem=run.problem,
        ),
    )


def _blocked(run: TestRun, method: str) -> Verdict | None:
    """A not-gated verdict when a round's flag forbids gating (e.g. below resolution)."""
    slots = [*run.screen_slots, *run.extra_slots]
    rounds = side_rounds(run.base, "base", slots) + side_rounds(run.head, "candidate", slots)
    verdict = not_gated_for_flags(benchmark_flags(rounds), method=method)
    return replace(verdict, kind="ab") if verdict is not None else None


def _in_joules(verdict: Verdict, run: TestRun, slots: Sequence[int]) -> Verdict:
    """Base and head shown as median J per unit, whatever the ratio was computed on."""
    base = [r.per_unit(run.base.units) for r in side_rounds(run.base, "base", slots)]
    head = [r.per_unit(run.head.units) for r in side_rounds(run.head, "candidate", slots)]
    normalized = any(r.calibration_j for s in run.head.rounds.values() for r in s)
    reason = verdict.reason
    if normalized:
        reason += " (compared as ratios to the calibration workload)"
    return replace(
        verdict,
        baseline=statistics.median(base) if base else None,
        current=statistics.median(head) if head else None,
        reason=reason,
    )


def _one_sided(nodeid: str, status: str, plan: Plan) -> TestResult:
    where = "head" if status == "new" else "base"
    reason = f"{status}: only in the {where} tree, nothing to compare it with"
    return TestResult(
        nodeid=nodeid,
        file=nodeid.partition("::")[0],
        line=None,
        outcome="skipped",
        scope="call",
        measurement=None,
        verdict=not_gated(reason, threshold=plan.threshold, kind="ab"),
        ab=ABTest(status=status),
    )
