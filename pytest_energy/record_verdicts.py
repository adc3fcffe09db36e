"""The parts of a run record that say what was decided: verdicts, checks, families, the gate.

Re-exported by :mod:`pytest_energy.record`, which holds the rest of the record.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Literal

from pytest_energy.frozen import frozen

VerdictStatus = Literal["regression", "improvement", "unchanged", "inconclusive", "not_gated"]
VariantVerdict = Literal["pass", "fail", "inconclusive", "reference", "not_gated"]


@frozen
class Verdict:
    """The gate's decision for one test."""

    status: VerdictStatus
    reason: str = ""
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    baseline: float | None = None
    current: float | None = None
    threshold: float | None = None
    method: str = ""
    p_value: float | None = None
    kind: str = "baseline"


@frozen
class BudgetNote:
    """One energy budget of the ``energy`` marker, judged: the figure, the limit, the action."""

    budget: str
    limit: float
    value: float
    low: float | None
    high: float | None
    exceeded: bool
    action: str  # fail, warn or ignore
    method: str
    meters: str
    unit: str
    why_not_fail: str = ""


@frozen
class Gating:
    """What the gate needs from a test's marker: whether it is gated, and its threshold."""

    enabled: bool = True
    threshold: float | None = None
    screen: str = ""


@frozen
class QualityRatio:
    """A variant's quality metric next to the reference's: ratio 1.0 means it kept all."""

    value: float
    higher_is_better: bool = True
    reference: float | None = None
    ratio: float | None = None


@frozen
class VariantResult:
    """One variant of a model family compared with the family's reference."""

    family: str
    reference: str
    variant: str
    unit: str
    method: str
    energy_per_unit: float
    #: Variant over reference, energy per unit, from interleaved rounds.
    energy_ratio: float
    ci_low: float
    ci_high: float
    verdict: VariantVerdict
    #: The one readable line, e.g. "int8: 0.47x [0.44, 0.51] of fp32 ...".
    line: str
    nodeid: str = ""
    quality: dict[str, QualityRatio] = field(default_factory=dict)
    #: max_energy_ratio, min_quality_ratio.
    limits: dict[str, float] = field(default_factory=dict)
    #: On the family's energy-quality Pareto frontier.
    on_frontier: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    pairs: int = 0

    def first_quality_ratio(self) -> float | None:
        for entry in self.quality.values():
            if entry.ratio is not None:
                return entry.ratio
        return 1.0 if self.verdict == "reference" else None


@frozen
class FamilyResult:
    """A model and its compressed variants, as measured in one session."""

    family: str
    reference: str
    unit: str
    method: str
    hardware_class: str
    variants: list[VariantResult]


@frozen
class SuiteCheck:
    """The suite-level check: total energy of all gated tests, baseline vs now."""

    status: VerdictStatus
    tests: int = 0
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    baseline_j: float | None = None
    current_j: float | None = None


@frozen
class GateSummary:
    """How the gate was configured for a run and what it decided."""

    baseline: str  # baseline name, path, or "history: last K runs"
    threshold: float  # material regression, e.g. 0.05 for 5 %
    margin: float  # certainty margin on the ratio's confidence bound, e.g. 0.01
    alpha: float  # family-wise false-alarm rate across gated tests (Holm)
    method: str  # measured or modelled: the comparison never mixes them
    counts: dict[str, int]  # verdict status -> number of tests
    suite: SuiteCheck
    unstable: bool = False
    unstable_reason: str = ""
    failed: bool = False  # True when the gate failed the build
    #: The one line that says why the build fails or not (docs/gate.md's decision table).
    decision: str = ""
    #: Tests in the run, gated or not: "3 of 765 tests gated".
    tests: int = 0
    #: "baseline" (a stored baseline or the history) or "ab" (``pytest-energy ab``).
    mode: str = "baseline"


@frozen
class ABTest:
    """One test of an A/B comparison: present on which side, and how each side ended."""

    #: compared, new (head only), removed (base only), failed (on a side), crashed
    #: (a worker process died), or skipped (not measured: the time budget, a selection).
    status: str
    base_outcome: str = ""
    head_outcome: str = ""
    #: Process pairs (one base and one head worker each) that decided the verdict.
    pairs: int = 0
    #: What the screen said, and whether extra process pairs measured it again.
    screen: str = ""
    problem: str = ""


@frozen
class ABRun:
    """An A/B comparison: the base commit and the head measured in one job, interleaved."""

    base_ref: str
    base_commit: str
    head_ref: str
    head_commit: str
    #: Worker processes per side that measured the screen, and at most in all.
    processes: int
    max_processes: int
    budget_s: float
    wall_s: float
    #: Why A/B needs no start/end drift check, as shown in every report.
    drift: str = ""
    notices: list[str] = field(default_factory=list)
