"""Options refused before the first test: one line, exit 4, no test run, nothing written.

Each case is a mistake a user made on a real command line (issue 12): an output
path that is the history or a baseline, two outputs in one file, a test path
swallowed as a baseline name, a baseline that cannot be written, a named meter
that is not there under pytest-xdist, rounds above their cap. The test file of
every inner run leaves a marker file when it runs, so "no test ran" is checked,
and the history and the baseline are compared byte for byte.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest
import traces

MARKS_THAT_IT_RAN = """
import pathlib

def test_marks_that_it_ran():
    pathlib.Path(__file__).with_name("ran").write_text("yes")
"""

MEASURED = ("--energy", "--energy-meter=model", "--energy-idle-seconds=0")


@dataclass
class Project:
    """A project that has saved a baseline and has one run in its history."""

    path: Path

    @property
    def history(self) -> Path:
        return self.path / ".energy" / "history.sqlite"

    @property
    def baseline(self) -> Path:
        return self.path / ".energy" / "baselines" / "default.json"

    def files(self) -> dict[str, bytes]:
        """Every file of the project and its bytes, but pytest's caches and captures."""
        return {
            str(p.relative_to(self.path)): p.read_bytes()
            for p in sorted(self.path.rglob("*"))
            if p.is_file()
            and not {"__pycache__", ".pytest_cache"} & set(p.parts)
            # runpytest_subprocess captures the inner run's output in these two files.
            and p.relative_to(self.path).parts not in (("stdout",), ("stderr",))
        }


@pytest.fixture
def project(pytester: pytest.Pytester) -> Project:
    pytester.makepyfile(test_marker=MARKS_THAT_IT_RAN)
    result = pytester.runpytest(*MEASURED, "--energy-save-baseline")
    assert result.ret == pytest.ExitCode.OK
    (pytester.path / "ran").unlink()
    made = Project(pytester.path)
    assert made.history.is_file()
    assert made.baseline.is_file()
    return made


def assert_refused(
    result: pytest.RunResult, project: Project, before: dict[str, bytes], line: str
) -> None:
    """Exit 4 with one ``ERROR:`` line, no traceback, no test run, every file unchanged."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [text for text in result.stderr.lines if text.strip()]
    assert len(errors) == 1, errors
    assert fnmatch(errors[0], f"ERROR: {line}"), errors[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (project.path / "ran").exists()
    assert project.files() == before


def refused(
    pytester: pytest.Pytester, project: Project, args: tuple[str, ...] | list[str], line: str
) -> None:
    before = project.files()
    assert_refused(pytester.runpytest(*MEASURED, *args), project, before, line)


# -- item 2: an output written over the history, a baseline, or another output ----------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--energy-json=.energy/history.sqlite"],
            "--energy-json: */.energy/history.sqlite is the run history (--energy-history); "
            "writing there would destroy it, choose another path",
        ),
        (
            ["--energy-html=.energy/history.sqlite-wal"],
            "--energy-html: */history.sqlite-wal is the run history (--energy-history)*",
        ),
        (
            ["--energy-history=runs.db", "--energy-markdown=runs.db-journal"],
            "--energy-markdown: */runs.db-journal is the run history (--energy-history)*",
        ),
        (
            ["--energy-json=.energy/baselines/default.json"],
            "--energy-json: */.energy/baselines/default.json is in the baselines folder "
            "*/.energy/baselines; writing there would destroy it, choose another path",
        ),
        (
            ["--energy-json=.energy/baselines/new.json"],
            "--energy-json: */baselines/new.json is in the baselines folder*",
        ),
        (
            ["--energy-json=results.json", "--energy-html=results.json"],
            "--energy-json and --energy-html both write */results.json; "
            "give each output its own file",
        ),
        (
            ["--energy-markdown=summary.md", "--junitxml=summary.md"],
            "--energy-markdown and --junitxml both write */summary.md*",
        ),
    ],
    ids=["history", "wal", "journal", "baseline", "baselines-folder", "json-html", "junit"],
)
def test_an_output_over_kept_data_is_refused(
    pytester: pytest.Pytester, project: Project, args: list[str], line: str
) -> None:
    refused(pytester, project, args, line)


def test_outputs_are_compared_after_following_symlinks(
    pytester: pytest.Pytester, project: Project
) -> None:
    (project.path / "kept").mkdir()
    (project.path / "report.html").symlink_to("kept/results.json")
    (project.path / "history-link").symlink_to(".energy/history.sqlite")
    refused(
        pytester,
        project,
        ["--energy-json=kept/results.json", "--energy-html=report.html"],
        "--energy-json and --energy-html both write */kept/results.json*",
    )
    refused(
        pytester,
        project,
        ["--energy-json=history-link"],
        "--energy-json: */history-link is the run history*",
    )


def test_a_hard_link_to_the_baseline_is_refused(
    pytester: pytest.Pytester, project: Project
) -> None:
    os.link(project.baseline, project.path / "copy.json")
    refused(
        pytester,
        project,
        ["--energy-compare=copy.json", "--energy-json=copy.json"],
        "--energy-json: */copy.json is the baseline compared with (--energy-compare)*",
    )


def test_the_replay_trace_is_not_an_output(pytester: pytest.Pytester, project: Project) -> None:
    trace = traces.write(project.path / "trace.json", traces.windows((12.0, 2.0)))
    before = project.files()
    result = pytester.runpytest(
        "--energy", f"--energy-meter=replay:{trace}", "--energy-json=trace.json"
    )
    assert_refused(
        result, project, before, "--energy-json: */trace.json is the replay meter's trace*"
    )


def test_a_refused_run_creates_no_folder(pytester: pytest.Pytester, project: Project) -> None:
    refused(
        pytester,
        project,
        ["--energy-json=out/sub/results.json", "--energy-html=out/sub/results.json"],
        "--energy-json and --energy-html both write *",
    )
    assert not (project.path / "out").exists()


# -- item 4: a baseline that cannot be written --------------------------------------------


def test_an_energy_dir_that_is_a_file_is_refused(
    pytester: pytest.Pytester, project: Project
) -> None:
    (project.path / "notes").write_text("mine")
    refused(
        pytester,
        project,
        ["--energy-save-baseline=main", "--energy-dir=notes"],
        "--energy-dir: cannot write */notes/baselines: */notes is not a directory",
    )
    refused(
        pytester,
        project,
        ["--energy-save-baseline=main", "--energy-dir=notes/deeper"],
        "--energy-dir: cannot write */notes/deeper/baselines: */notes is not a directory",
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_energy_dir_that_is_not_writable_is_refused(
    pytester: pytest.Pytester, project: Project
) -> None:
    locked = project.path / "locked"
    locked.mkdir(mode=0o500)
    try:
        refused(
            pytester,
            project,
            ["--energy-save-baseline", "--energy-dir=locked/.energy"],
            "--energy-dir: cannot write */locked/.energy/baselines: Permission denied",
        )
    finally:
        locked.chmod(0o700)


def test_a_baseline_path_that_is_a_folder_is_refused(
    pytester: pytest.Pytester, project: Project
) -> None:
    (project.path / "out.json").mkdir()
    refused(
        pytester,
        project,
        ["--energy-save-baseline=out.json"],
        "--energy-save-baseline: *out.json is a directory, expected a baseline file",
    )


# -- item 9: baseline errors that were found only at the end -------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--energy-save-baseline=..hidden"],
            "--energy-save-baseline: invalid baseline name '..hidden'*",
        ),
        (["--energy-compare=-x-"], "--energy-compare: invalid baseline name '-x-'*"),
        (
            ["--energy-save-baseline", "--energy-compare"],
            "--energy-save-baseline and --energy-compare both name baseline "
            "*/.energy/baselines/default.json: this run would be compared with the numbers "
            "it then overwrites*",
        ),
        (
            ["--energy-save-baseline=.energy/baselines/default.json", "--energy-compare"],
            "--energy-save-baseline and --energy-compare both name baseline*",
        ),
        (
            ["--energy-update-baseline", "--energy-reason=faster", "--energy-compare=main"],
            "--energy-update-baseline: no baseline named 'main' in */.energy/baselines "
            "(available: default); save one before updating it (--energy-save-baseline)",
        ),
        (
            ["--energy-save-baseline"],
            "--energy-save-baseline: baseline */default.json already has entries for 1 of the "
            "selected tests on hardware class '*' (first: test_marker.py::test_marks_that_it_ran)"
            "; a save never overwrites them*--energy-update-baseline*",
        ),
    ],
    ids=["invalid-save", "invalid-compare", "same-name", "same-file", "update-none", "clash"],
)
def test_baseline_mistakes_are_refused_before_the_first_test(
    pytester: pytest.Pytester, project: Project, args: list[str], line: str
) -> None:
    refused(pytester, project, args, line)


def test_a_refused_save_writes_no_results_file(pytester: pytest.Pytester, project: Project) -> None:
    refused(
        pytester,
        project,
        ["--energy-save-baseline", "--energy-json=results.json"],
        "--energy-save-baseline: baseline * already has entries*",
    )
    assert not (project.path / "results.json").exists()


def test_a_corrupt_baseline_is_refused_before_a_save(
    pytester: pytest.Pytester, project: Project
) -> None:
    project.baseline.write_text('{"format": ')
    refused(
        pytester,
        project,
        ["--energy-save-baseline"],
        "--energy-save-baseline: baseline file */default.json is truncated*left untouched*",
    )


# -- item 11: a test path swallowed as a baseline name --------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--energy-save-baseline", "tests/"],
            "--energy-save-baseline takes its name as --energy-save-baseline=NAME; "
            "'tests/' looks like a test path, so it was not taken as one",
        ),
        (
            ["--energy-compare", "test_marker.py"],
            "--energy-compare takes its name as --energy-compare=NAME; 'test_marker.py' looks*",
        ),
        (
            ["--energy-compare", "test_marker.py::test_marks_that_it_ran"],
            "--energy-compare takes its name as --energy-compare=NAME; "
            "'test_marker.py::test_marks_that_it_ran' looks*",
        ),
        (
            ["--energy-compare", "tests"],
            "--energy-compare takes its name as --energy-compare=NAME; 'tests' looks*",
        ),
        (
            ["--energy-history-baseline", "tests/"],
            "--energy-history-baseline: expected a whole number, got 'tests/'",
        ),
    ],
    ids=[
        "save-folder",
        "compare-module",
        "compare-nodeid",
        "compare-existing-folder",
        "history-baseline",
    ],
)
def test_a_test_path_is_not_taken_as_a_baseline_name(
    pytester: pytest.Pytester, project: Project, args: list[str], line: str
) -> None:
    (project.path / "tests").mkdir()
    refused(pytester, project, args, line)


def test_a_test_path_after_addopts_is_not_taken_as_a_name(
    pytester: pytest.Pytester, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # addopts come first: a flag at their end swallows the command line's first path.
    monkeypatch.setenv("PYTEST_ADDOPTS", " ".join([*MEASURED, "--energy-compare"]))
    before = project.files()
    result = pytester.runpytest("test_marker.py")
    assert_refused(
        result, project, before, "--energy-compare takes its name as --energy-compare=NAME*"
    )


def test_a_name_given_as_a_separate_argument_still_works(
    pytester: pytest.Pytester, project: Project
) -> None:
    shutil.copy(project.baseline, project.baseline.with_name("main.json"))
    result = pytester.runpytest(*MEASURED, "--energy-compare", "main", "test_marker.py")
    assert result.ret == pytest.ExitCode.OK
    assert (project.path / "ran").exists()


# -- item 8: rounds above their cap ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--energy-max-rounds=2", "--energy-rounds=10"],
            "--energy-rounds=10 is above --energy-max-rounds=2, the cap on a benchmark's "
            "rounds; raise the cap or ask for fewer rounds",
        ),
        (
            ["--energy-rounds=30"],
            "--energy-rounds=30 is above --energy-max-rounds (20 by default)*",
        ),
    ],
    ids=["both-given", "default-cap"],
)
def test_rounds_above_their_cap_are_refused(
    pytester: pytest.Pytester, project: Project, args: list[str], line: str
) -> None:
    refused(pytester, project, args, line)


def test_a_cap_from_the_environment_or_the_ini_is_named(
    pytester: pytest.Pytester, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_ENERGY_MAX_ROUNDS", "3")
    refused(
        pytester,
        project,
        ["--energy-rounds=4"],
        "--energy-rounds=4 is above PYTEST_ENERGY_MAX_ROUNDS=3*",
    )
    monkeypatch.delenv("PYTEST_ENERGY_MAX_ROUNDS")
    pytester.makeini("[pytest]\nenergy_max_rounds = 3\n")
    refused(
        pytester,
        project,
        ["--energy-rounds=4"],
        "--energy-rounds=4 is above energy_max_rounds in tox.ini (3), the cap*",
    )


# -- item 10: a named meter that is not there, under pytest-xdist -----------------------------


def test_a_missing_meter_is_refused_once_by_the_xdist_controller(
    pytester: pytest.Pytester, project: Project
) -> None:
    # conftest.py points PYTEST_ENERGY_RAPL_ROOT at an empty powercap tree.
    before = project.files()
    result = pytester.runpytest_subprocess(
        "-p", "xdist", "-n", "2", "--energy", "--energy-meter=rapl"
    )
    assert_refused(result, project, before, "--energy-meter=rapl: no RAPL powercap zones under *")
    assert "worker" not in result.stdout.str() + result.stderr.str()
