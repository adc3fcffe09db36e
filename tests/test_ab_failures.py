"""``pytest-energy ab`` on bad input and faults: one clear line each, nothing left behind.

Every case checks the exit status, that the message is one line, and that no
worktree and no temporary folder remain; faults in one test leave the others compared.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import traces
from ab_repos import (
    alive,
    bench,
    bench_file,
    constant_trace,
    make_repo,
    private_tmp,
    run_ab,
    worktrees,
)

from pytest_energy.record import load

BASE = {"tests/test_bench.py": bench_file(bench("test_one", 10), bench("test_two", 10))}


def left_behind(repo: Path, tmp: Path) -> list[str]:
    return [*worktrees(repo)[1:], *(p.name for p in tmp.iterdir())]


def one_line(result: pytest.RunResult) -> str:
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in result.stderr.str()
    return lines[0]


def test_an_unknown_revision(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = private_tmp(pytester, monkeypatch)
    repo = make_repo(pytester.path, BASE, {})
    result = run_ab(pytester, repo, constant_trace(pytester.path), "--base", "no-such-branch")
    assert result.ret == 2
    assert "--base no-such-branch: unknown revision" in one_line(result)
    assert left_behind(repo, tmp) == []


def test_a_dirty_working_tree(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = private_tmp(pytester, monkeypatch)
    repo = make_repo(pytester.path, BASE, {})
    (repo / "src" / "demo" / "__init__.py").write_text("def work(n):\n    return n\n")
    result = run_ab(pytester, repo, constant_trace(pytester.path), "--base", "base")
    assert result.ret == 2
    line = one_line(result)
    assert "uncommitted changes to 1 tracked file(s) (src/demo/__init__.py)" in line
    assert f"--head {repo}" in line
    assert left_behind(repo, tmp) == []


def test_a_base_tree_whose_collection_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = private_tmp(pytester, monkeypatch)
    broken = {"tests/test_bench.py": "import demo\ndef test_x(:\n"}
    repo = make_repo(pytester.path, broken, BASE)
    result = run_ab(pytester, repo, constant_trace(pytester.path), "--base", "base")
    assert result.ret == 2
    line = one_line(result)
    assert "the base tree" in line
    assert "fails to collect: tests/test_bench.py" in line
    assert left_behind(repo, tmp) == []


def test_a_test_failing_on_one_side_fails_and_the_others_are_compared(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = private_tmp(pytester, monkeypatch)
    head = {
        "tests/test_bench.py": bench_file(
            bench("test_one", 10, "assert False, 'broken by the change'"), bench("test_two", 10)
        )
    }
    repo = make_repo(pytester.path, BASE, head)
    out = pytester.path / "ab.json"
    result = run_ab(
        pytester, repo, constant_trace(pytester.path), "--base", "base", "--json", str(out)
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["failed: tests/test_bench.py::test_one: failed on the head side: *broken by the change*"]
    )
    record = load(out)
    outcome = {
        t.nodeid.split("::")[-1]: (t.outcome, t.verdict.status if t.verdict else None)
        for t in record.tests
    }
    assert outcome == {"test_one": ("failed", "not_gated"), "test_two": ("passed", "unchanged")}
    assert left_behind(repo, tmp) == []


def test_a_crashing_worker_costs_only_its_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = private_tmp(pytester, monkeypatch)
    crash = "def crash(n):\n    os._exit(7)\n\n\n"
    head = {
        "tests/test_bench.py": bench_file(
            crash + bench("test_one", 10).replace("(work,", "(crash,"), bench("test_two", 10)
        )
    }
    repo = make_repo(pytester.path, BASE, head)
    out = pytester.path / "ab.json"
    result = run_ab(
        pytester, repo, constant_trace(pytester.path), "--base", "base", "--json", str(out)
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["crashed: tests/test_bench.py::test_one: a worker process crashed while measuring it: *"]
    )
    statuses = {t.nodeid.split("::")[-1]: t.ab.status if t.ab else None for t in load(out).tests}
    assert statuses == {"test_one": "crashed", "test_two": "compared"}
    assert left_behind(repo, tmp) == []


def test_an_installed_copy_that_shadows_a_tree_is_refused(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package is not under an import root of its tree (``lib/``), and the environment
    points at the head's copy: the base worker would measure the head's code."""
    tmp = private_tmp(pytester, monkeypatch)
    files = {
        "lib/demo/__init__.py": "def work(n):\n    return sum(range(n))\n",
        "src/demo/__init__.py": None,
        "pytest.ini": "[pytest]\n",
    }
    repo = make_repo(
        pytester.path, {**BASE, **files}, {"lib/demo/__init__.py": "def work(n):\n    return n\n"}
    )
    monkeypatch.setenv("PYTHONPATH", f"{repo / 'lib'}")
    result = run_ab(pytester, repo, constant_trace(pytester.path), "--base", "base")
    assert result.ret == 2
    line = one_line(result)
    assert "the base tree's module 'demo' was imported from" in line
    assert str(repo / "lib") in line
    assert "--setup" in line
    assert left_behind(repo, tmp) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_removes_workers_and_worktrees(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, signum: int
) -> None:
    tmp = private_tmp(pytester, monkeypatch)
    pids = pytester.path / "pids"
    pids.mkdir()
    # The benchmarked function notes its worker's pid, then takes a while per call.
    slow = (
        f"def slow(n):\n    open({str(pids)!r} + f'/{{os.getpid()}}', 'w').close()\n"
        "    import time\n    time.sleep(0.05)\n\n\n"
    )
    files = {
        "tests/test_bench.py": bench_file(slow + bench("test_one", 10).replace("(work,", "(slow,"))
    }
    repo = make_repo(pytester.path, files, {})
    trace = constant_trace(pytester.path)
    command = [
        sys.executable,
        "-m",
        "pytest_energy",
        "ab",
        "--repo",
        str(repo),
        "--base",
        "base",
        "--budget",
        "600",
        "--",
        f"--energy-meter=replay:{trace}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(6000):  # wait until both sides are measuring (not a timing check)
            if len(list(pids.iterdir())) >= 2 or process.poll() is not None:
                break
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert err.strip() == "pytest-energy: ab interrupted: worker processes and worktrees removed"
    assert [int(p.name) for p in pids.iterdir() if alive(int(p.name))] == []
    assert left_behind(repo, tmp) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--base", "base", "--processes", "1"], "--processes must be at least 2"),
        (["--base", "base", "--budget", "0"], "must be above 0"),
        (["--base", "base", "--json", "."], "is a directory"),
        (["--base", "base", "--fail", "abc"], "--fail"),
    ],
)
def test_bad_options(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    tmp = private_tmp(pytester, monkeypatch)
    repo = make_repo(pytester.path, BASE, {})
    result = run_ab(pytester, repo, constant_trace(pytester.path), *args)
    assert result.ret == 2
    assert message in one_line(result)
    assert left_behind(repo, tmp) == []


def test_not_a_git_repository(pytester: pytest.Pytester) -> None:
    result = pytester.run(
        sys.executable, "-m", "pytest_energy", "ab", "--repo", str(pytester.path), "--base", "main"
    )
    assert result.ret == 2
    assert "is not inside a git repository" in one_line(result)


def test_a_meter_that_fails_mid_comparison(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every worker's meter dies at the same reading: the test in progress is not
    gated and says why, and the command ends with the usual report."""
    tmp = private_tmp(pytester, monkeypatch)
    repo = make_repo(pytester.path, BASE, {})
    energies: list[float | str] = [10.0 * i for i in range(9)] + ["RAPL went away"]
    document = traces.trace(energies, meter="rapl", domain="package-0", scope="cpu-package")
    trace = traces.write(pytester.path / "trace.json", document)
    out = pytester.path / "ab.json"
    result = run_ab(pytester, repo, trace, "--base", "base", "--json", str(out))
    assert result.ret == 1, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*the meter failed in the * worker *"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert left_behind(repo, tmp) == []
