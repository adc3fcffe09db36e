"""The job summary and the PR comment: golden files, size caps and hostile ids.

Golden files live in ``tests/golden/``. After an intended change to the
Markdown, regenerate them and review the diff::

    ENERGY_REPORT_UPDATE_GOLDEN=1 python -m pytest tests/test_report_markdown.py \\
        tests/test_report_annotations.py -p no:cacheprovider

(The variable is read when this module is imported: conftest clears every
``PYTEST_ENERGY_*`` variable for each test, so it is not named like those.)
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest
from records import (
    HOSTILE_IDS,
    hostile_record,
    passed_record,
    sample_record,
    scale_record,
    ungated_record,
)

from pytest_energy.record import Verdict
from pytest_energy.report import format as fmt
from pytest_energy.report.markdown import (
    COMMENT_MARKER,
    ID_LIMIT,
    comment_body,
    summary_markdown,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("ENERGY_REPORT_UPDATE_GOLDEN") == "1"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    assert path.exists(), f"{path} is missing: run with ENERGY_REPORT_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs from the golden file; if intended, regenerate (see module docstring)"
    )


def split_cells(line: str) -> list[str]:
    """Split a table row as GitHub's parser (cmark-gfm) does: a backslash escapes
    the next character, any other ``|`` separates cells."""
    assert line.startswith("|"), line
    assert line.endswith("|"), line
    cells, current, i = [], "", 1
    while i < len(line) - 1:
        char = line[i]
        if char == "\\" and i + 1 < len(line) - 1:
            current += line[i : i + 2]
            i += 2
            continue
        if char == "|":
            cells.append(current)
            current = ""
        else:
            current += char
        i += 1
    cells.append(current)
    return [c.strip() for c in cells]


def tables(markdown: str) -> list[list[list[str]]]:
    """Every table: a list of rows, each a list of cells (header row first)."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in markdown.split("\n"):
        if line.startswith("|"):
            current.append(split_cells(line))
        elif current:
            found.append(current)
            current = []
    if current:
        found.append(current)
    return found


def unescape(cell: str) -> str:
    """What GitHub shows for an escaped cell: backslash escapes and entities undone."""
    text = re.sub(r"\\(.)", r"\1", cell)
    return html.unescape(text).replace("\u2060", "")


def assert_tables_intact(markdown: str) -> None:
    for table in tables(markdown):
        width = len(table[0])
        assert all(len(row) == width for row in table), table[0]
        assert set("".join(table[1])) <= set("-:"), "second row is the delimiter row"


@pytest.mark.parametrize(
    ("name", "render"),
    [
        ("summary_sample.md", lambda: summary_markdown(sample_record())),
        ("comment_sample.md", lambda: comment_body(sample_record())),
        ("summary_passed.md", lambda: summary_markdown(passed_record())),
        ("summary_modelled.md", lambda: summary_markdown(ungated_record("modelled"))),
        ("comment_hostile.md", lambda: comment_body(hostile_record())),
    ],
)
def test_golden(name: str, render: object) -> None:
    assert callable(render)
    text = render()
    check_golden(name, text)
    assert_tables_intact(text)


def test_verdict_lines() -> None:
    assert summary_markdown(sample_record()).startswith(
        "### ❌ Energy check failed\\: 2 regressions, 1 variant over its limits, "
        "suite total +4.0%; 5 of 8 tests gated\n"
    )
    assert summary_markdown(passed_record()).startswith(
        "### ✅ Energy check passed\\: no regressions; 5 of 8 tests gated (1 inconclusive)\n"
    )
    assert summary_markdown(ungated_record()).startswith(
        "### ⚪ Energy not gated\\: 0 of 8 tests gated (no baseline)\n"
    )


def test_a_run_that_gated_nothing_never_reads_as_a_pass() -> None:
    record = passed_record()
    assert record.gate is not None
    tests = [
        replace(t, verdict=Verdict("not_gated", reason="unstable (CV 7.2% over the limit)"))
        for t in record.tests
    ]
    text = summary_markdown(replace(record, tests=tests))
    assert text.startswith("### ⚪ Energy not gated\\: 0 of 8 tests gated (unstable (CV 7.2%")
    assert "Not gated: 8 × unstable (CV 7.2% over the limit)." in text


def test_measured_and_modelled_statements() -> None:
    measured = summary_markdown(sample_record())
    assert "\nMeasured with hardware energy counters (nvml, rapl).\n" in measured
    modelled = summary_markdown(ungated_record("modelled"))
    assert "> [!WARNING]\n> Modelled estimates, not measurements (model)" in modelled


def test_totals_name_the_carbon_source() -> None:
    (totals, *_) = tables(summary_markdown(sample_record()))
    header, _, values = totals
    assert (
        dict(zip(header, values, strict=True))["CO2e"] == "5.61 g CO2e (Ember 2024, DEU, 342 g/kWh)"
    )
    assert dict(zip(header, values, strict=True))["Energy"] == "59.0 kJ (16.4 Wh)"


def test_comment_starts_with_its_marker() -> None:
    body = comment_body(sample_record())
    assert body.startswith(COMMENT_MARKER + "\n### ❌ Energy check failed")
    custom = comment_body(sample_record(), marker="<!-- pytest-energy:gpu -->")
    assert custom.startswith("<!-- pytest-energy:gpu -->\n")
    assert COMMENT_MARKER not in summary_markdown(sample_record())


def test_all_tests_are_collapsed() -> None:
    body = comment_body(sample_record())
    details = body[body.index("<details>") : body.index("</details>")]
    assert "<summary>All 8 tests</summary>\n\n| Test | Outcome |" in details
    assert details.count("\n| tests/") == 8


def test_hostile_ids_are_inert_and_readable() -> None:
    for text in (summary_markdown(hostile_record()), comment_body(hostile_record())):
        assert_tables_intact(text)
        # The only tags are ours; no "<" from the data survives.
        ours = re.sub(r"<(/?details|/?summary|/?sub|!-- pytest-energy --)>", "", text)
        assert "<" not in ours
        assert "`" not in text.replace("\\`", "")
        all_tests = tables(text)[-1]
        shown = [unescape(row[0]) for row in all_tests[2:]]
        expected = [fmt.visible(fmt.shorten(nodeid, ID_LIMIT)) for nodeid in HOSTILE_IDS]
        assert shown == expected
        assert "tests/test_xss.py::test_newline[line1\\nline2\\r\\nline3]" in shown
        assert "tests/test_xss.py::test_pipes[a|b||c]" in shown
        # Mentions and issue references are broken up so nobody is pinged.
        assert "@here" not in text
        assert "@\u2060here" in text
        assert "#\u20601" in text


def test_a_variant_the_gate_did_not_judge_reads_not_gated() -> None:
    record = sample_record()
    (fam,) = record.families
    variants = [
        replace(v, verdict="not_gated") if v.variant == "int4-pruned" else v for v in fam.variants
    ]
    record = replace(record, families=[replace(fam, variants=variants)])
    (family_table,) = [t for t in tables(summary_markdown(record)) if t[0][0] == "Family"]
    verdicts = {row[1]: row[5] for row in family_table[2:]}
    assert verdicts == {"fp32": "● reference", "int8": "✓ pass", "int4-pruned": "– not gated"}


def test_summary_is_cut_to_its_byte_limit() -> None:
    record = scale_record(3000)
    text = summary_markdown(record, max_bytes=20_000)
    assert len(text.encode("utf-8")) <= 20_000
    assert text.startswith("### ❌ Energy check failed")
    assert re.search(r"_… \d+ more rows in the HTML report_", text)
    assert_tables_intact(text)
    assert text.rstrip().endswith("the HTML report</sub>")


def test_default_limits_hold_for_a_big_run() -> None:
    record = scale_record(5000)
    summary = summary_markdown(record)
    assert len(summary.encode("utf-8")) < 1024 * 1024
    comment = comment_body(record)
    assert len(comment) <= 65_536
    assert comment.startswith(COMMENT_MARKER)
    assert "more rows in the HTML report" in comment
    assert_tables_intact(comment)


def test_the_verdict_survives_any_limit() -> None:
    body = comment_body(sample_record(), max_chars=300)
    assert body.startswith(COMMENT_MARKER + "\n### ❌ Energy check failed")
    assert "_… 2 more rows in the HTML report_" in body
    assert "_… 8 more rows in the HTML report_" in body


def test_rows_are_dropped_from_the_end_in_priority_order() -> None:
    full = comment_body(sample_record())
    limit = len(full) - 200
    cut = comment_body(sample_record(), max_chars=limit)
    assert len(cut) <= limit
    assert "#### ▲ Regressions" in cut
    # Regressions come first and are kept whole; the long table of all tests loses rows.
    assert tables(cut)[1] == tables(full)[1]
    assert "more rows in the HTML report" in cut.split("<details>")[1]


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a|b", "a\\|b"),
        ("a\\|b", "a\\\\\\|b"),
        ("`x`", "\\`x\\`"),
        ("<b>&", "&lt;b&gt;&amp;"),
        ("*a* _b_ [c](d) ~e~ :f: $g$", "\\*a\\* \\_b\\_ \\[c\\](d) \\~e\\~ \\:f\\: \\$g\\$"),
        ("line1\nline2\r\tx", "line1\\\\nline2\\\\r\\\\tx"),
        ("@user #12 a@b", "@\u2060user #\u206012 a@\u2060b"),
        ("\u202eevil", "\\\\u202eevil"),
    ],
)
def test_markdown_text(raw: str, escaped: str) -> None:
    assert fmt.markdown_text(raw) == escaped
    assert split_cells(f"| {escaped} |") == [escaped]


@pytest.mark.parametrize(
    ("value", "energy", "power", "duration"),
    [
        (0.0, "0 J", "0 W", "0 s"),
        (0.0000042, "4.20 µJ", "0.00420 mW", "4.20 µs"),
        (0.0042, "4.20 mJ", "4.20 mW", "4.20 ms"),
        (0.9996, "1.00 J", "1.00 W", "1.00 s"),
        (412.5, "412 J", "412 W", "412 s"),
        (59013.2, "59.0 kJ", "59.0 kW", "16.4 h"),
        (7_200_000.0, "2.00 kWh", "7200 kW", "2000 h"),
        (-5.0, "-5.00 J", "-5.00 W", "-5.00 s"),
    ],
)
def test_number_formats(value: float, energy: str, power: str, duration: str) -> None:
    assert fmt.energy(value) == energy
    assert fmt.power(value) == power
    assert fmt.duration(value) == duration


def test_ratio_and_change_formats() -> None:
    assert fmt.ratio(0.47, 0.44, 0.51) == "0.47x [0.44, 0.51]"
    assert fmt.ratio(0.021) == "0.021x"
    assert fmt.ratio(None) == "—"
    # A results file writes an unknown number as null; the record reads it back as NaN.
    assert fmt.ratio(float("nan")) == "—"
    assert fmt.ratio(0.47, float("nan"), float("nan")) == "0.47x"
    assert fmt.change(1.234) == "+23.4%"
    assert fmt.change(0.47) == "-53.0%"
    assert fmt.change(1.0001) == "0.0%"
    assert fmt.watt_hours(3600.0) == "1.00 Wh"
    assert fmt.co2e(0.000399) == "399 µg CO2e"
    assert fmt.energy_per_unit(0.846, "sample") == "846 mJ/sample"
    assert fmt.shorten("a" * 50 + "b" * 50, 40) == "a" * 26 + "…" + "b" * 13
