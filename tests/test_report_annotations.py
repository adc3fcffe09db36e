"""GitHub annotations: escaping like @actions/core, caps, and where they point.

Golden files: ``tests/golden/annotations_*.txt``; regenerate with
``ENERGY_REPORT_UPDATE_GOLDEN=1`` (see tests/test_report_markdown.py).
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from records import HOSTILE_IDS, hostile_record, sample_record, scale_record
from test_report_markdown import check_golden

from pytest_energy.report import format as fmt
from pytest_energy.report.annotations import (
    ID_LIMIT,
    escape_data,
    escape_property,
    github_annotations,
    workflow_command,
)

COMMAND = re.compile(r"^::(error|warning|notice)(?: ([^:]*))?::(.*)$")


def unescape(value: str) -> str:
    for code, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        value = value.replace(code, char)
    return value


def parse(line: str) -> tuple[str, dict[str, str], str]:
    """A workflow command as the runner reads it: name, properties, message."""
    match = COMMAND.match(line)
    assert match, line
    kind, props, message = match.groups()
    properties = {}
    for pair in (props or "").split(","):
        if pair:
            key, _, value = pair.partition("=")
            properties[key] = unescape(value)
    return kind, properties, unescape(message)


@pytest.mark.parametrize(
    ("name", "record"),
    [("annotations_sample.txt", sample_record), ("annotations_hostile.txt", hostile_record)],
)
def test_golden(name: str, record: object) -> None:
    assert callable(record)
    check_golden(name, "".join(line + "\n" for line in github_annotations(record())))


def test_escaping_matches_actions_core() -> None:
    # Expected values computed with @actions/core's escapeData / escapeProperty rules.
    assert escape_data("100% done\r\nnext::x,y") == "100%25 done%0D%0Anext::x,y"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert workflow_command("error", "m", file="a,b.py", line=3, title="t:1") == (
        "::error file=a%2Cb.py,line=3,title=t%3A1::m"
    )
    assert workflow_command("notice", "just this") == "::notice::just this"


def test_regressions_are_errors_at_the_test() -> None:
    lines = github_annotations(sample_record())
    parsed = [parse(line) for line in lines]
    errors = [p for p in parsed if p[0] == "error"]
    assert errors[0][1] == {
        "file": "tests/test_io.py",
        "line": "12",
        "title": "Energy regression +23.0%",
    }
    assert errors[0][2] == (
        "tests/test_io.py::test_load_dataset: energy +23.0%: 1.23x [1.20, 1.26] of the "
        "baseline (335 J -> 412 J), threshold +5%"
    )
    assert "(354 mJ/sample -> 397 mJ/sample)" in errors[1][2]
    variant = errors[2]
    assert variant[1]["title"] == "Model variant over its limits: int4-pruned"
    assert variant[1]["file"] == "tests/test_models.py"
    warnings = [p for p in parsed if p[0] == "warning"]
    assert [w[1]["file"] for w in warnings] == ["tests/test_train.py"]
    assert warnings[0][1]["title"] == "Energy change inconclusive +4.0%"


def test_hostile_ids_stay_in_one_command() -> None:
    record = hostile_record()
    lines = github_annotations(record)
    for line in lines:
        assert "\n" not in line
        assert "\r" not in line
        kind, props, _message = parse(line)
        assert kind in ("error", "warning")
        assert set(props) <= {"file", "line", "title"}
    messages = [parse(line)[2] for line in lines]
    annotated = [
        t.nodeid
        for t in record.tests
        if t.verdict and t.verdict.status in ("regression", "inconclusive")
    ]
    assert len(annotated) == 8
    assert set(annotated) < set(HOSTILE_IDS)
    for nodeid in annotated:
        shown = fmt.shorten(nodeid, ID_LIMIT)
        assert any(m.startswith(shown + ": ") for m in messages), nodeid
    newline = next(m for m in messages if "test_newline" in m)
    assert newline.startswith("tests/test_xss.py::test_newline[line1\nline2\r\nline3]")
    assert "::test_newline[line1%0Aline2%0D%0Aline3]" in "".join(lines)


def test_at_most_ten_of_each_then_one_notice() -> None:
    record = scale_record(3000)
    lines = github_annotations(record)
    kinds = [parse(line)[0] for line in lines]
    assert kinds.count("error") == 10
    assert kinds.count("warning") == 10
    assert kinds[-1] == "notice"
    regressions = sum(1 for t in record.tests if t.verdict and t.verdict.status == "regression")
    inconclusive = sum(1 for t in record.tests if t.verdict and t.verdict.status == "inconclusive")
    notice = parse(lines[-1])[2]
    # The scale record's family adds one variant over its limits to the errors.
    assert notice.startswith(
        f"{regressions + 1 - 10} more energy errors and {inconclusive - 10} more inconclusive"
    )
    # The most severe come first.
    ratios = [
        float(re.search(r": (\d+\.\d+)x", parse(line)[2]).group(1))  # type: ignore[union-attr]
        for line in lines[:10]
    ]
    assert ratios == sorted(ratios, reverse=True)


def test_limit_is_configurable() -> None:
    lines = github_annotations(sample_record(), limit=1)
    assert [parse(line)[0] for line in lines] == ["error", "warning", "notice"]
    assert parse(lines[-1])[2].startswith("2 more energy errors not annotated")


def test_missing_line_is_left_out() -> None:
    record = sample_record()
    tests = [replace(t, line=None) for t in record.tests]
    lines = github_annotations(replace(record, tests=tests))
    assert "line" not in parse(lines[0])[1]
    assert parse(lines[0])[1]["file"] == "tests/test_io.py"


def test_nothing_to_say_when_not_gated() -> None:
    record = sample_record()
    tests = [replace(t, verdict=None) for t in record.tests]
    assert github_annotations(replace(record, tests=tests, gate=None, families=[])) == []


def test_a_failed_gate_without_test_regressions_still_errors() -> None:
    record = sample_record()
    tests = [
        t
        if t.verdict is None or t.verdict.status != "regression"
        else replace(t, verdict=replace(t.verdict, status="unchanged"))
        for t in record.tests
    ]
    lines = github_annotations(replace(record, tests=tests, families=[]))
    kind, props, message = parse(lines[0])
    assert (kind, props) == ("error", {"title": "Energy check failed"})
    assert message == "Energy check failed: suite total +4.0%; 5 of 8 tests gated"
