"""Files anyone can write, and text printed where it could do harm (issue 12, items 6-8).

A results file comes from a pull request's job, a baseline from a pull request's
diff: every command that reads one must answer a file of the wrong shape with one
line and exit 2 (exit 4 in the plugin), never a traceback. Test ids, hardware
classes and names are printed to terminals, CI logs, Markdown rendered by GitHub
and HTML: each medium gets its own escape (``pytest_energy.report.escape``).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cli_calls import one_error_line, run
from records import hostile_record, sample_record

from pytest_energy.record import RunRecord, TestResult
from pytest_energy.record_json import MAX_DEPTH, JSONInputError, nesting_depth, parse_json
from pytest_energy.report import escape
from pytest_energy.report.annotations import github_annotations
from pytest_energy.report.html import render_html
from pytest_energy.report.markdown import comment_body, summary_markdown
from pytest_energy.storage.baseline_file import BaselineError
from pytest_energy.storage.baselines import BaselineStore
from pytest_energy.storage.history import History

#: Bidi overrides, isolates and marks: they reorder what follows them on screen.
BIDI = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
#: Raw characters no terminal or log should receive from a record: C0 controls but
#: the newline and tab, C1 controls (ESC, BEL, the C1 CSI) and bidi characters.
RAW_CONTROLS = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI}]")
#: What a page may not hold raw: the same, though CR may end a line there.
HTML_RAW = re.compile(rf"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{BIDI}]")
HOSTILE_TEXT = (
    "x\n::error::pwned \x1b[31mred\x1b[0m \x1b]8;;http://evil\x07link\x1b]8;;\x07 \u202eevil"
)


def plain() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(sample_record().to_json())
    return data


def changed(change: Callable[[dict[str, Any]], object]) -> str:
    """The sample results file with one part changed by ``change``."""
    data = plain()
    change(data)
    return json.dumps(data)


def put(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set ``value`` at a dotted path (list indexes as numbers) of the results data."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = [int(k) if k.isdigit() else k for k in path.split(".")]
        target: Any = data
        for key in parents:
            target = target[key]
        target[last] = value

    return change


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for key in parents:
            target = target[key]
        del target[last]

    return change


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def truncated() -> str:
    text = sample_record().to_json()
    return text[: len(text) // 2]


def with_token(token: str) -> str:
    return changed(put("tests.0.measurement.total_j", 0)).replace(
        '"total_j": 0', f'"total_j": {token}', 1
    )


# -- results files of the wrong shape: every command, one line, exit 2 -----------------

#: (case id, file content (str or bytes), what the one line says)
WRONG_SHAPES: list[tuple[str, str | bytes, str]] = [
    ("empty file", "", "is not valid JSON"),
    ("only whitespace", " \n\t\n", "is not valid JSON"),
    ("binary garbage", b"\xff\xfe\x00\x01\x9b[31m", "cannot read results file"),
    ("truncated", truncated(), "is not valid JSON"),
    ("a list instead of an object", "[]", "must hold a JSON object"),
    ("a string instead of an object", '"results"', "must hold a JSON object"),
    ("null instead of an object", "null", "must hold a JSON object"),
    ("wrong schema_version", changed(put("schema_version", 99)), "unsupported schema_version 99"),
    ("schema_version as a string", changed(put("schema_version", "1")), "unsupported schema_ver"),
    ("no schema_version", changed(drop("schema_version")), "unsupported schema_version None"),
    ("missing session", changed(drop("session")), "RunRecord has no 'session'"),
    ("session is null", changed(put("session", None)), "RunRecord.session must be an object"),
    ("session is a list", changed(put("session", [])), "RunRecord.session must be an object"),
    ("tests not a list", changed(put("tests", {})), "RunRecord.tests must be a list"),
    ("tests a string", changed(put("tests", "all")), "RunRecord.tests must be a list"),
    ("a test not an object", changed(put("tests.3", 5)), "RunRecord.tests[3] must be an object"),
    ("a test is null", changed(put("tests.3", None)), "RunRecord.tests[3] must be an object"),
    (
        "a number as a string",
        changed(put("tests.0.measurement.total_j", "412")),
        "RunRecord.tests[0].measurement.total_j must be a number, got str",
    ),
    (
        "a line number as a string",
        changed(put("tests.0.line", "12")),
        "tests[0].line must be a whole number",
    ),
    (
        "true as a number",
        changed(put("tests.0.measurement.total_j", True)),
        "total_j must be a number, got True",
    ),
    (
        "null where an object is required",
        changed(put("session.machine", None)),
        "RunRecord.session.machine must be an object",
    ),
    ("a required object missing", changed(drop("session.totals")), "has no 'totals'"),
    (
        "an outcome that does not exist",
        changed(put("tests.0.outcome", "exploded")),
        "tests[0].outcome is 'exploded', expected one of",
    ),
    ("meters not objects", changed(put("session.meters", [1])), "session.meters[0] must be"),
    ("GPUs not objects", changed(put("session.machine.gpus", ["x"])), "gpus[0] must be"),
    (
        "joules of a domain as text",
        changed(put("tests.0.measurement.joules", {"gpu:0": "lots"})),
        "joules.gpu:0 must be a number",
    ),
    (
        "a very long key quoted back",
        changed(put("tests.0.measurement.joules", {"k" * 100_000: "x"})),
        "must be a number",
    ),
    ("deeply nested", nested(100_000), f"is nested deeper than {MAX_DEPTH} levels"),
    (
        "nested too deeply inside metadata",
        changed(put("tests.1.benchmark.metadata", {"deep": json.loads(nested(MAX_DEPTH))})),
        f"is nested deeper than {MAX_DEPTH} levels",
    ),
    ("NaN", with_token("NaN"), "NaN is not allowed"),
    ("Infinity", with_token("Infinity"), "Infinity is not allowed"),
    ("-Infinity", with_token("-Infinity"), "-Infinity is not allowed"),
    ("a float beyond any float", with_token("1e400"), "too large for a float"),
    ("an integer of 5000 digits", with_token("9" * 5000), "digits, too large to use"),
    (
        "no units of work per call",
        changed(put("tests.1.benchmark.units_per_call", 0)),
        "tests[1].benchmark.units_per_call must be above 0, got 0.0",
    ),
    (
        "a negative threshold",
        changed(put("tests.0.gating", {"enabled": True, "threshold": -0.05})),
        "tests[0].gating.threshold must be above 0",
    ),
    (
        "a verdict that does not exist",
        changed(put("tests.0.verdict.status", "<script>")),
        "expected one of",
    ),
]

#: Every command that reads a results file; ``{file}`` is the bad one, ``{good}`` a
#: valid one (compare reads two).
COMMANDS = [
    ("report", "{file}", "-o", "{out}"),
    ("summary", "{file}"),
    ("annotate", "{file}"),
    ("comment-body", "{file}"),
    ("export", "{file}", "--format", "csv"),
    ("export", "{file}", "--format", "github-action-benchmark"),
    ("compare", "{file}", "{good}"),
    ("compare", "{good}", "{file}"),
]


@pytest.mark.parametrize(
    ("content", "message"),
    [pytest.param(content, message, id=name) for name, content, message in WRONG_SHAPES],
)
def test_a_results_file_of_the_wrong_shape_is_one_line_in_every_command(
    content: str | bytes, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad, good, out = tmp_path / "results.json", tmp_path / "good.json", tmp_path / "out.html"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content, encoding="utf-8")
    good.write_text(sample_record().to_json(), encoding="utf-8")
    for command in COMMANDS:
        argv = [a.format(file=bad, good=good, out=out) for a in command]
        status, stdout, err = run(capsys, *argv)
        assert (status, stdout) == (2, ""), argv
        line = one_error_line(err)
        assert str(bad) in line, argv
        assert message in line, argv
        assert not out.exists(), "nothing is written for a file that cannot be read"


def test_a_directory_is_not_a_results_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "summary", str(tmp_path))
    assert status == 2
    assert f"cannot read results file {tmp_path}" in one_error_line(err)


def test_the_depth_limit_leaves_room_for_any_file_pytest_energy_writes() -> None:
    assert nesting_depth(hostile_record().to_json()) < MAX_DEPTH // 4
    # Brackets inside strings are text, not nesting.
    assert nesting_depth(json.dumps({"id": "[" * 1000})) == 1
    assert nesting_depth(json.dumps(["\\", '"[[[', {"a": []}])) == 3
    assert parse_json(nested(MAX_DEPTH)) == json.loads(nested(MAX_DEPTH))
    with pytest.raises(JSONInputError, match="nested deeper than 64 levels"):
        parse_json(nested(MAX_DEPTH + 1))


def test_a_json_history_nested_too_deeply_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results, history = tmp_path / "results.json", tmp_path / "history.json"
    results.write_text(sample_record().to_json(), encoding="utf-8")
    history.write_text('{"t": ' + nested(50_000) + "}", encoding="utf-8")
    status, _, err = run(capsys, "report", str(results), "--history", str(history))
    assert status == 2
    assert f"history file {history} is nested deeper than" in one_error_line(err)


def test_a_pr_hint_nested_too_deeply_is_ignored(tmp_path: Path) -> None:
    from pytest_energy.cli.comment import _read_hint

    hint = tmp_path / "pr.json"
    hint.write_text(nested(30_000), encoding="utf-8")
    assert _read_hint(hint).problem == "pr.json is not JSON"


# -- baselines: the plugin's usage error, the store's one line ------------------------

BAD_BASELINES = [
    pytest.param(
        '{"pytest_energy_baseline": 1, "name": "default", "classes": {"x": '
        + nested(100_000)
        + "}}",
        "*nested deeper than 64 levels*",
        id="deeply nested",
    ),
    pytest.param(
        '{"pytest_energy_baseline": 1, "name": "default", "classes": []}',
        "*'classes' must be an object*",
        id="classes a list",
    ),
    pytest.param(
        '{"pytest_energy_baseline": 1, "name": "default", "classes": {"c": {"tests": '
        '{"t": {"samples": [NaN]}}}}}',
        "*NaN is not allowed*",
        id="NaN sample",
    ),
    pytest.param(
        '{"pytest_energy_baseline": 1, "name": "default", "classes": {"c": {"tests": '
        '{"t": {"samples": [' + "9" * 400 + "]}}}}}",
        "*digits, too large to use*",
        id="a sample beyond any float",
    ),
    pytest.param(
        '{"pytest_energy_baseline": 1, "name": "default", "classes": {"c": {"tests": '
        '{"t": {"samples": ["1.0"]}}}}}',
        "*samples must be a non-empty list of numbers*",
        id="samples as strings",
    ),
]


@pytest.mark.parametrize(("content", "message"), BAD_BASELINES)
def test_energy_compare_with_a_bad_baseline_is_a_usage_error(
    pytester: pytest.Pytester, content: str, message: str
) -> None:
    pytester.makepyfile("def test_a(): pass\n")
    baseline = pytester.mkdir(".energy") / "baselines" / "default.json"
    baseline.parent.mkdir()
    baseline.write_text(content, encoding="utf-8")
    result = pytester.runpytest(
        "--energy",
        "--energy-meter=model",
        "--energy-compare",
        "--energy-idle-seconds=0",
        "--energy-calibration=off",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --energy-compare: *default.json*{message}"])
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output
    assert len([line for line in result.stderr.lines if line.strip()]) == 1
    assert baseline.read_text(encoding="utf-8") == content


def test_a_stored_sample_beyond_any_float_is_a_baseline_error(tmp_path: Path) -> None:
    from pytest_energy.storage.baseline_file import parse_baseline

    data = {
        "pytest_energy_baseline": 1,
        "name": "default",
        "classes": {"c": {"tests": {"t": {"samples": [10**400]}}}},
    }
    with pytest.raises(BaselineError, match="samples must be a non-empty list of numbers"):
        parse_baseline(data, tmp_path / "default.json")


def test_a_run_without_a_positive_round_saves_nothing_for_that_test(tmp_path: Path) -> None:
    record = sample_record()
    bench = next(t for t in record.tests if t.benchmark is not None)
    assert bench.benchmark is not None
    # Every round's J per unit underflows to 0: nothing the gate could compare with.
    zero = replace(bench, benchmark=replace(bench.benchmark, units_per_call=1e308))
    tests = [zero if t.nodeid == bench.nodeid else t for t in record.tests]
    store = BaselineStore(tmp_path / ".energy")
    store.save_run(replace(record, tests=tests), "default")
    saved = store.load("default").entries_for(record.session.machine.hardware_class) or {}
    assert bench.nodeid not in saved
    assert saved


# -- compare --alpha: the CLI and the plugin agree ------------------------------------


def test_compare_refuses_an_alpha_the_plugin_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pytester: pytest.Pytester
) -> None:
    results = tmp_path / "results.json"
    results.write_text(sample_record().to_json(), encoding="utf-8")
    for alpha in ("50%", "5.1%"):
        status, out, err = run(capsys, "compare", str(results), str(results), f"--alpha={alpha}")
        assert (status, out) == (2, "")
        assert one_error_line(err) == "pytest-energy: error: --alpha must be at most 5%"
    assert run(capsys, "compare", str(results), str(results), "--alpha=5%")[0] != 2
    pytester.makepyfile("def test_a(): pass\n")
    for alpha in ("50%", "5.1%"):
        result = pytester.runpytest("--energy", "--energy-meter=model", f"--energy-alpha={alpha}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["ERROR: --energy-alpha: must be at most 5%"])


# -- terminals: compare, history and every error line ---------------------------------


def hostile_machine_record(hardware_class: str, cpu_model: str) -> RunRecord:
    record = sample_record()
    machine = replace(record.session.machine, hardware_class=hardware_class, cpu_model=cpu_model)
    return replace(record, session=replace(record.session, machine=machine))


def assert_terminal_safe(text: str) -> None:
    assert not RAW_CONTROLS.search(text), repr(text)
    assert not any(line.startswith("::") for line in text.splitlines()), text


def test_compare_prints_a_hostile_hardware_class_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, head = tmp_path / "base.json", tmp_path / "head\n::error::x.json"
    base.write_text(sample_record().to_json(), encoding="utf-8")
    head.write_text(hostile_machine_record(HOSTILE_TEXT, "other").to_json(), encoding="utf-8")
    for first, second in ((base, head), (head, base)):
        status, out, err = run(capsys, "compare", str(first), str(second))
        assert (status, err) == (0, "")
        assert_terminal_safe(out)
        assert "baseline from other hardware" in out
        assert escape.terminal_text(HOSTILE_TEXT) in out


def test_error_lines_quote_files_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r\x1b[2J\n::error::x\u202e.json"
    path.write_text(changed(put("tests.0.outcome", HOSTILE_TEXT)), encoding="utf-8")
    status, _, err = run(capsys, "summary", str(path))
    assert status == 2
    line = one_error_line(err)
    assert_terminal_safe(err)
    assert "r\\x1b[2J\\n::error::x\\u202e.json" in line


def test_history_prints_hostile_test_ids_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = sample_record()
    ids = [
        "tests/t.py::test_ansi[\x1b[31mred\x1b[0m]",
        "tests/t.py::test_osc8[\x1b]8;;http://evil\x07link\x1b]8;;\x07]",
        "tests/t.py::test_rlo[\u202eevil]",
        "tests/t.py::test_command[x\n::error::pwned]",
        "tests/t.py::test_c1[\x9b31m]",
    ]
    tests = [replace(t, nodeid=nodeid) for t, nodeid in zip(record.tests, ids, strict=False)]
    db = tmp_path / "history.sqlite"
    for _ in range(2):
        History(db).append(replace(record, tests=tests))
    status, out, err = run(capsys, "history", "--history", str(db))
    assert (status, err) == (0, "")
    assert_terminal_safe(out)
    assert len(out.splitlines()) == 1 + len(ids)
    for nodeid in ids:
        assert escape.terminal_text(nodeid) in out


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\nb\r\tc", "a\\nb\\r\\tc"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("\x1b]8;;http://x\x07link", "\\x1b]8;;http://x\\x07link"),
        ("\x9b2J \x85 \x7f", "\\x9b2J \\x85 \\x7f"),
        ("\u202eevil \u2066x\u2069 \u200f \u061c", "\\u202eevil \\u2066x\\u2069 \\u200f \\u061c"),
        ("\u2028", "\\u2028"),
        ("Ünïcødé ✓ 能源 🔋", "Ünïcødé ✓ 能源 🔋"),
        ("already \\x1b escaped", "already \\x1b escaped"),
    ],
)
def test_terminal_text(raw: str, shown: str) -> None:
    assert escape.terminal_text(raw) == shown
    assert escape.terminal_text(shown) == shown


@pytest.mark.parametrize("pattern", ["_TERMINAL", "_HTML"])
def test_printable_text_needs_no_escape(pattern: str) -> None:
    # terminal_text and html_text return printable text as it is, without the pattern:
    # that is right only while every character the pattern escapes is unprintable.
    matched = [chr(c) for c in range(0x3000) if re.fullmatch(getattr(escape, pattern), chr(c))]
    assert len(matched) > 60
    assert [c for c in matched if c.isprintable()] == []


# -- GitHub workflow commands ------------------------------------------------------------


def test_workflow_commands_escape_like_actions_core_and_show_controls() -> None:
    assert escape.workflow_data("100% a\r\nb::c,d") == "100%25 a%0D%0Ab::c,d"
    assert escape.workflow_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert escape.workflow_data("\x1b[31m\u202e") == "\\x1b[31m\\u202e"
    record = hostile_record()
    evil = "tests/test_xss.py::test_evil[\x1b[31m\u202e\x9b]"
    tests = [replace(record.tests[0], nodeid=evil, file="tests/\u202ex.py"), *record.tests[1:]]
    lines = github_annotations(replace(record, tests=tests))
    assert any("test_evil[\\x1b[31m\\u202e\\x9b]" in line for line in lines)
    assert any("file=tests/\\u202ex.py" in line for line in lines)
    for line in lines:
        assert not RAW_CONTROLS.search(line), line
        assert "\n" not in line


# -- Markdown: no autolinks, still readable ----------------------------------------------

LINKY_IDS = [
    "tests/test_links.py::test_bare[example.com]",
    "tests/test_links.py::test_www[www.example.org/path]",
    "tests/test_links.py::test_url[http://x.y/z]",
    "tests/test_links.py::test_https[HTTPS://evil.example/login]",
    "tests/test_links.py::test_email[a@b.co]",
    "tests/test_links.py::test_mailto[mailto:first.last+tag@mail.example.com]",
    "tests/test_links.py::test_ftp[ftp://files.example.net]",
]


def linky_record() -> RunRecord:
    record = sample_record()
    tests: list[TestResult] = [
        replace(t, nodeid=nodeid) for t, nodeid in zip(record.tests, LINKY_IDS, strict=False)
    ]
    return replace(record, tests=tests)


def autolinks(markdown: str) -> list[str]:
    """What GFM's autolink extension would link: ``www.``, ``scheme://``, e-mail
    addresses and domains, outside code spans and not broken by a backslash."""
    text = re.sub(r"`[^`\n]*`", "", markdown)
    return re.findall(
        r"(?i)www\.|[a-z][\w+.-]*:(?://|[\w.+-]+@)|[\w.+-]+@[\w-]+\.\w|\b[a-z0-9-]+\.[a-z]{2,}\b",
        text,
    )


def shown(markdown: str) -> str:
    """What GitHub shows: backslash escapes, entities and code-span fences undone."""
    text = re.sub(r"`([^`\n]*)`", r"\1", markdown)
    return re.sub(r"\\(.)", r"\1", text)


@pytest.mark.parametrize("render", [summary_markdown, comment_body])
def test_test_ids_with_links_are_not_linked_in_markdown(
    render: Callable[[RunRecord], str],
) -> None:
    markdown = render(linky_record())
    # Our own lines may name our own files (e.g. results.json); the test ids may not link.
    rows = [line for line in markdown.splitlines() if "test\\_links" in line]
    assert rows
    for row in rows:
        assert autolinks(row) == [], row
    text = shown("\n".join(rows))
    for nodeid in LINKY_IDS[:4]:
        assert nodeid in text
    assert "`a@b.co`" in markdown


@pytest.mark.parametrize(
    ("raw", "markdown"),
    [
        ("example.com", "example\\.com"),
        ("www.example.org", "www\\.example\\.org"),
        ("http://x.y/z", "http\\://x\\.y/z"),
        ("write a@b.co now", "write `a@b.co` now"),
        ("v1.25 J", "v1.25 J"),
        ("a|b", "a\\|b"),
        ("@user #12 a@b", "@\u2060user #\u206012 a@\u2060b"),
        ("x\n\u202e", "x\\\\n\\\\u202e"),
    ],
)
def test_markdown_text(raw: str, markdown: str) -> None:
    assert escape.markdown_text(raw) == markdown


# -- HTML: no raw bidi or control characters, data intact ---------------------------------


def test_html_has_no_raw_bidi_or_controls_anywhere() -> None:
    record = hostile_record()
    fam = record.families[0]
    variant = replace(fam.variants[1], line=f"line {HOSTILE_TEXT}", variant=f"v {HOSTILE_TEXT}")
    first = record.tests[0]
    assert first.verdict is not None
    tests = [
        replace(
            first,
            nodeid=f"tests/t.py::test_x[{HOSTILE_TEXT}]",
            verdict=replace(first.verdict, reason=f"reason {HOSTILE_TEXT}"),
        ),
        *record.tests[1:],
    ]
    session = replace(
        record.session,
        notices=[f"notice {HOSTILE_TEXT}"],
        machine=replace(record.session.machine, hardware_class=HOSTILE_TEXT),
    )
    hostile = replace(
        record,
        tests=tests,
        session=session,
        families=[replace(fam, variants=[fam.variants[0], variant, *fam.variants[2:]])],
    )
    page = render_html(hostile, history={tests[0].nodeid: [1.0, 2.0]})
    assert not HTML_RAW.search(page)
    assert 'title="reason x\n::error::pwned \\x1b[31mred' in page
    assert "\\u202eevil" in page
    # The data block still carries the exact id: JSON reads \u202e back as the character.
    start = page.index('<script type="application/json"')
    block = page[page.index(">", start) + 1 : page.index("</script>", start)]
    assert json.loads(block)["tests"][0][0] == tests[0].nodeid


def test_html_text_keeps_what_html_shows_and_escapes_the_rest() -> None:
    assert escape.html_text("a\nb\tc\r") == "a\nb\tc\r"
    assert escape.html_text("\u202e\x1b\x00\x85") == "\\u202e\\x1b\\x00\\x85"
    assert json.loads(escape.html_json(["\u202e\u2028\x85"])) == ["\u202e\u2028\x85"]
    assert "\u202e" not in escape.html_json(["\u202e"])


def test_a_results_file_is_never_changed_by_reading_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results.json"
    content = changed(put("tests", [*copy.deepcopy(plain()["tests"]), None]))
    path.write_text(content, encoding="utf-8")
    assert run(capsys, "summary", str(path))[0] == 2
    assert path.read_text(encoding="utf-8") == content
