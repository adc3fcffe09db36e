"""GitHub workflow commands that annotate the tests whose energy changed.

``::error`` marks a regression (and a model variant over its limits),
``::warning`` an inconclusive comparison, each at the test's file and line.
GitHub shows at most 10 annotations of each kind per step and silently drops
the rest, so we emit the 10 most severe of each and one ``::notice`` that says
how many more there are.

Values are escaped as ``@actions/core`` does (``escapeData`` and
``escapeProperty`` in actions/toolkit ``packages/core/src/command.ts``), so a
test id cannot end the command early, start a new one on a new line, or inject
a property; other control characters and bidi overrides are made visible
(:mod:`pytest_energy.report.escape`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pytest_energy.record import FamilyResult, RunRecord, TestResult, VariantResult
from pytest_energy.report import format as fmt
from pytest_energy.report.escape import workflow_data, workflow_property
from pytest_energy.report.overview import ab_line, overview, variant_label

__all__ = [
    "MAX_PER_KIND",
    "escape_data",
    "escape_property",
    "github_annotations",
    "workflow_command",
]

#: GitHub's per-step cap for each of error and warning annotations.
MAX_PER_KIND = 10
#: Long test ids are cut in the middle; an annotation is read at a glance.
ID_LIMIT = 300


#: The message part of a workflow command.
escape_data = workflow_data
#: A property value (``file=``, ``title=``): ``:`` and ``,`` would end it.
escape_property = workflow_property


def workflow_command(command: str, message: str, **properties: str | int | None) -> str:
    """``::command key=value,...::message`` with every part escaped."""
    props = ",".join(
        f"{key}={escape_property(str(value))}"
        for key, value in properties.items()
        if value is not None and value != ""
    )
    return f"::{command}{' ' + props if props else ''}::{escape_data(message)}"


def _value(test: TestResult, joules: float | None) -> str:
    if test.benchmark is not None:
        return fmt.energy_per_unit(joules, test.benchmark.unit)
    return fmt.energy(joules)


def _test_command(kind: str, test: TestResult, method: str) -> str:
    v = test.verdict
    assert v is not None
    what = "regression" if v.status == "regression" else "change inconclusive"
    against = "of the base" if v.kind == "ab" else "of the baseline"
    detail = (
        f"energy {fmt.change(v.ratio)}: {fmt.ratio(v.ratio, v.ci_low, v.ci_high)} {against}"
        f" ({_value(test, v.baseline)} -> {_value(test, v.current)})"
    )
    if v.threshold is not None:
        detail += f", threshold +{v.threshold * 100:g}%"
    if method == "modelled":
        detail += " (modelled estimates)"
    if v.reason:
        detail += f"; {v.reason}"
    return workflow_command(
        kind,
        f"{fmt.shorten(test.nodeid, ID_LIMIT)}: {detail}",
        file=test.file or None,
        line=test.line if test.line and test.line > 0 else None,
        title=f"Energy {what} {fmt.change(v.ratio)}",
    )


def _variant_command(family: FamilyResult, variant: VariantResult, test: TestResult | None) -> str:
    ratio = fmt.ratio(variant.energy_ratio, variant.ci_low, variant.ci_high)
    line = variant.line or (
        f"{variant.variant}: energy {ratio} of {family.reference or 'the reference'}"
    )
    name = fmt.shorten(variant.variant, 80)
    return workflow_command(
        "error",
        f"{fmt.shorten(variant.nodeid, ID_LIMIT)}: {line} ({variant_label('fail').word}: outside "
        "the family's energy or quality limits)",
        file=test.file if test else None,
        line=test.line if test and test.line and test.line > 0 else None,
        title=f"Model variant over its limits: {name}",
    )


def _severity(test: TestResult) -> float:
    ratio = test.verdict.ratio if test.verdict else None
    return -ratio if ratio is not None and math.isfinite(ratio) else 0.0


def github_annotations(record: RunRecord, *, limit: int = MAX_PER_KIND) -> list[str]:
    """Workflow commands for ``record``: errors, warnings, then at most one notice."""
    ov = overview(record)
    method = record.session.method
    by_id = {t.nodeid: t for t in record.tests}
    errors = [_test_command("error", t, method) for t in sorted(ov.regressions, key=_severity)]
    regressed = {t.nodeid for t in ov.regressions}
    errors += [
        _variant_command(family, variant, by_id.get(variant.nodeid))
        for family, variant in ov.variant_failures
        # A variant whose test regressed is already annotated as that regression.
        if variant.nodeid not in regressed
    ]
    if ov.state == "failed" and not errors:
        errors.append(workflow_command("error", ov.headline, title="Energy check failed"))
    warnings = [_test_command("warning", t, method) for t in sorted(ov.inconclusive, key=_severity)]
    if ov.incomplete:
        # A results file left by a killed run: say so where the reviewer looks first.
        warnings.insert(0, workflow_command("warning", ov.headline, title="Incomplete energy run"))
    lines = errors[:limit] + warnings[:limit]
    extra = _more(len(errors) - limit, len(warnings) - limit, limit)
    if extra:
        lines.append(workflow_command("notice", extra, title="More energy changes"))
    elif record.ab is not None:
        lines.append(
            workflow_command("notice", f"{ab_line(record)}. {ov.headline}", title="Energy A/B")
        )
    return lines


def _more(errors: int, warnings: int, limit: int) -> str:
    parts: Sequence[str] = [
        p
        for p in (
            f"{errors} more energy errors" if errors > 0 else "",
            f"{warnings} more inconclusive results" if warnings > 0 else "",
        )
        if p
    ]
    if not parts:
        return ""
    return (
        f"{' and '.join(parts)} not annotated (at most {limit} of each are shown "
        "per step); see the job summary or the HTML report"
    )
