"""The commit and branch of a run, read from the repository's files as git would report them.

Reading ``.git`` directly saves two ``git`` processes at the end of every run (issue 16);
each case here is checked against git itself.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_energy.measure.machine import git_revision

ENV_VARS = ("GITHUB_SHA", "CI_COMMIT_SHA", "GITHUB_HEAD_REF", "GITHUB_REF_NAME", "GIT_DIR")


@pytest.fixture(autouse=True)
def no_ci_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def what_git_says(cwd: Path) -> tuple[str | None, str | None]:
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=False
    )
    branch = git(cwd, "rev-parse", "--abbrev-ref", "HEAD") if commit.returncode == 0 else None
    return (
        commit.stdout.strip() if commit.returncode == 0 else None,
        None if branch == "HEAD" else branch,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "a.txt").write_text("a\n", encoding="utf-8")
    git(root, "add", "a.txt")
    git(root, "commit", "-q", "-m", "first")
    return root


def no_git_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("git was started")

    monkeypatch.setattr(subprocess, "run", refuse)


def test_a_branch_is_read_from_the_files_without_starting_git(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = what_git_says(repo)
    (repo / "sub").mkdir()
    no_git_process(monkeypatch)
    assert git_revision(repo / "sub") == expected
    assert expected[1] == "main"


def test_packed_refs_a_detached_head_and_a_linked_worktree(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(repo, "pack-refs", "--all")
    packed = what_git_says(repo)
    worktree = repo.parent / "other"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(worktree))
    (worktree / "b.txt").write_text("b\n", encoding="utf-8")
    git(worktree, "add", "b.txt")
    git(worktree, "commit", "-q", "-m", "second")
    linked = what_git_says(worktree)
    git(repo, "checkout", "-q", "--detach")
    detached = what_git_says(repo)
    no_git_process(monkeypatch)
    assert git_revision(repo) == detached
    assert detached == (packed[0], None)
    assert git_revision(worktree) == linked
    assert linked[1] == "feature"


def test_an_unborn_branch_and_a_folder_outside_any_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q", "-b", "trunk")
    outside = tmp_path / "plain"
    outside.mkdir()
    no_git_process(monkeypatch)
    assert git_revision(fresh) == (None, "trunk")
    if not any((parent / ".git").exists() for parent in (outside, *outside.parents)):
        assert git_revision(outside) == (None, None)


def test_ci_variables_win_and_git_dir_is_left_to_git(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_SHA", "f" * 40)
    monkeypatch.setenv("GITHUB_REF_NAME", "release")
    assert git_revision(repo) == ("f" * 40, "release")
    monkeypatch.delenv("GITHUB_SHA")
    monkeypatch.delenv("GITHUB_REF_NAME")
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    expected = what_git_says(repo)
    started: list[object] = []
    real_run = subprocess.run

    def counted(*args: object, **kwargs: object) -> object:
        started.append(args)
        return real_run(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", counted)
    assert git_revision(repo.parent) == expected
    assert started  # GIT_DIR is git's to interpret
