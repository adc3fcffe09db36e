"""``pytest-energy`` end to end on results files, and every way the input can be bad.

Commands run in-process through ``cli.main([...])``; one test runs
``python -m pytest_energy`` in a subprocess from the repository root.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_calls import one_error_line, run, sample_results
from records import sample_record, scale_history

from pytest_energy import __version__, cli
from pytest_energy.report.annotations import github_annotations
from pytest_energy.report.export import csv_text
from pytest_energy.report.html import render_html
from pytest_energy.report.markdown import comment_body, summary_markdown

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return sample_results(tmp_path)


# -- every command, end to end ------------------------------------------------------------


def test_report_writes_the_html_page(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "report.html"
    assert run(capsys, "report", str(results), "-o", str(out)) == (0, "", "")
    assert out.read_text(encoding="utf-8") == render_html(sample_record())


def test_report_to_stdout(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "report", str(results))
    assert status == 0
    assert out == render_html(sample_record())


def test_report_with_a_json_history(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = scale_history(sample_record())
    path = tmp_path / "history.json"
    path.write_text(json.dumps(history), encoding="utf-8")
    out = tmp_path / "report.html"
    assert run(capsys, "report", str(results), "-o", str(out), "--history", str(path))[0] == 0
    assert out.read_text(encoding="utf-8") == render_html(sample_record(), history)


def test_report_with_the_sqlite_history(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_energy.storage.history import History

    db = tmp_path / "history.sqlite"
    for _ in range(3):
        History(db).append(sample_record())
    out = tmp_path / "report.html"
    assert run(capsys, "report", str(results), "-o", str(out), "--history", str(db))[0] == 0
    assert out.read_text(encoding="utf-8").count('<svg class="spark"') == 7 + 3  # rows + cards


def test_summary(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "summary", str(results))
    assert (status, err) == (0, "")
    assert out == summary_markdown(sample_record())
    target = tmp_path / "summary.md"
    assert run(capsys, "summary", str(results), "--format", "markdown", "-o", str(target))[0] == 0
    assert target.read_text(encoding="utf-8") == out


def test_annotate(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "annotate", str(results))
    assert status == 0
    assert out.splitlines() == github_annotations(sample_record())
    status, out, _ = run(capsys, "annotate", str(results), "--max-per-kind", "1")
    assert out.splitlines()[-1].startswith("::notice title=More energy changes::")


def test_comment_body(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "comment.md"
    assert run(capsys, "comment-body", str(results), "-o", str(target)) == (0, "", "")
    assert target.read_text(encoding="utf-8") == comment_body(sample_record())
    status, out, _ = run(capsys, "comment-body", str(results), "--marker", "<!-- energy:gpu -->")
    assert status == 0
    assert out.startswith("<!-- energy:gpu -->\n")


def test_export(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "export", str(results), "--format", "github-action-benchmark")
    assert status == 0
    assert next(e["name"] for e in json.loads(out)) == "tests/test_io.py::test_load_dataset"
    target = tmp_path / "energy.csv"
    assert run(capsys, "export", str(results), "--format", "csv", "-o", str(target))[0] == 0
    assert target.read_bytes().decode("utf-8") == csv_text(sample_record())
    assert next(csv.reader(io.StringIO(target.read_text(encoding="utf-8"))))[0] == "nodeid"


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")
    assert status == 0
    for name in ("report", "summary", "annotate", "comment-body", "export", "comment"):
        assert f"    {name}" in out
    assert run(capsys, "--version") == (0, f"pytest-energy {__version__}\n", "")
    status, out, _ = run(capsys, "report", "--help")
    assert status == 0
    assert "--history PATH" in out


def test_python_dash_m(results: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_energy", "summary", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
        timeout=120,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == summary_markdown(sample_record())
    missing = subprocess.run(
        [sys.executable, "-m", "pytest_energy", "report", str(tmp_path / "nope.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert missing.returncode == 2
    assert (
        missing.stderr == f"pytest-energy: error: results file {tmp_path / 'nope.json'} "
        "does not exist\n"
    )


# -- bad input: one line on stderr, exit 2, never a traceback ----------------------------


@pytest.mark.parametrize("command", ["report", "summary", "annotate", "comment-body", "export"])
def test_missing_results_file(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--format", "csv"] if command == "export" else []
    status, out, err = run(capsys, command, str(tmp_path / "missing.json"), *extra)
    assert (status, out) == (2, "")
    assert "does not exist" in one_error_line(err)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"schema_version": 99}', "unsupported schema_version 99"),
        ('{"schema_version": 1, "session": {}}', "malformed results"),
        (None, "is not valid JSON"),  # truncated: the first half of a real file
        (b"\xff\xfe\x00", "cannot read results file"),
    ],
)
def test_bad_results_files(
    content: str | bytes | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results.json"
    if content is None:
        text = sample_record().to_json()
        path.write_text(text[: len(text) // 2], encoding="utf-8")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    for command in (["report"], ["summary"], ["export", "--format", "csv"]):
        status, out, err = run(capsys, command[0], str(path), *command[1:])
        assert (status, out) == (2, "")
        assert message in one_error_line(err)


def test_unwritable_output(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    for target in (blocker / "report.html", tmp_path):  # under a file; a directory
        status, out, err = run(capsys, "report", str(results), "-o", str(target))
        assert (status, out) == (2, "")
        assert one_error_line(err).startswith(f"pytest-energy: error: cannot write {target}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "results.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{", "is not valid JSON"),
        (b'{"t": [1, "x"]}', "must map to a list of numbers"),
        (b"[1]", "must hold an object"),
        (b"\xff\xfe", "neither SQLite nor JSON"),
        (b"SQLite format 3\x00" + b"\x00" * 200, "cannot read history"),
    ],
)
def test_bad_history(
    content: bytes, message: str, results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = tmp_path / "history"
    history.write_bytes(content)
    status, _, err = run(capsys, "report", str(results), "--history", str(history))
    assert status == 2
    assert message in one_error_line(err)
    status, _, err = run(capsys, "report", str(results), "--history", str(tmp_path / "none"))
    assert "history file" in one_error_line(err)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["report"],
        ["export", "x.json"],
        ["export", "x.json", "--format", "xml"],
        ["summary", "x.json", "--format", "html"],
        ["annotate", "x.json", "--max-per-kind", "many"],
        ["report", "x.json", "--unknown"],
    ],
)
def test_usage_errors_are_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, *argv)
    assert (status, out) == (2, "")
    one_error_line(err)


def test_bad_option_values(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "annotate", str(results), "--max-per-kind", "-1")
    assert status == 2
    assert "--max-per-kind must be 0 or more" in one_error_line(err)
    status, _, err = run(capsys, "comment-body", str(results), "--marker", "oops")
    assert status == 2
    assert "--marker must be one HTML comment" in one_error_line(err)


# -- the registry ---------------------------------------------------------------------------


def test_comment_is_imported_lazily_and_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pytest_energy.cli.comment", None)  # as if it were missing
    status, out, err = run(capsys, "comment", "--body-file", "x.md")
    assert (status, out) == (2, "")
    line = one_error_line(err)
    assert line.startswith("pytest-energy: error: the 'comment' command is not available: ")
    # The other commands do not import it at all.
    assert run(capsys, "--help")[0] == 0


def test_other_commands_do_not_import_the_github_module(results: Path) -> None:
    code = (
        "import sys; from pytest_energy import cli; "
        f"cli.main(['summary', {str(results)!r}]); "
        "print('pytest_energy.cli.comment' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stderr.strip() == "False"


def test_registering_a_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "COMMANDS", list(cli.COMMANDS))

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name")

    def hello(args: argparse.Namespace) -> int:
        if args.name == "bad":
            raise cli.CommandError("bad name")
        print(f"hello {args.name}")
        return 3

    cli.register(cli.Command("hello", "Say hello.", add_arguments, hello))
    assert run(capsys, "hello", "you") == (3, "hello you\n", "")
    status, _, err = run(capsys, "hello", "bad")
    assert (status, err) == (2, "pytest-energy: error: bad name\n")
    assert "hello" in run(capsys, "--help")[1]
    # A string target is imported only when its command runs.
    cli.register(cli.Command("later", "Not installed.", "no_such_module:add", "no_such_module:run"))
    assert run(capsys, "summary", "--help")[0] == 0
    status, _, err = run(capsys, "later")
    assert status == 2
    assert "the 'later' command is not available: No module named 'no_such_module'" in err
