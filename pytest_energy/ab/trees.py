"""The two trees an A/B comparison measures: git revisions, worktrees, ``--setup``.

The base (and a head given as a revision) is checked out into a temporary git
worktree; a head given as a path, or left out (the working tree), is used where
it is. Worktrees are removed on every way out, Ctrl-C and SIGTERM included
(:mod:`pytest_energy.ab.command` holds the ``finally``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pytest_energy.cli.common import CommandError
from pytest_energy.frozen import frozen

#: How many changed files a dirty-tree error names.
_NAMED = 3


@frozen
class Tree:
    """One side of the comparison: where its code is, and which commit it is."""

    side: str  # "base" or "head"
    path: Path
    ref: str
    commit: str
    #: A worktree this run made (and removes).
    temporary: bool = False

    @property
    def short(self) -> str:
        return self.commit[:7] if self.commit else self.ref


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise CommandError(f"cannot run git: {exc.strerror or exc}") from None


def repository_root(repo: Path) -> Path:
    """The top of the git repository holding ``repo``, or one line saying it is not one."""
    if not repo.is_dir():
        raise CommandError(f"--repo {repo}: not a directory")
    done = git(repo, "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise CommandError(
            f"{repo} is not inside a git repository: run pytest-energy ab from the "
            "repository under test, or pass --repo PATH"
        )
    return Path(done.stdout.strip())


def resolve(repo: Path, ref: str, option: str) -> str:
    """The full commit id of ``ref``, or one line naming the unknown revision."""
    if not ref or ref.startswith("-"):
        raise CommandError(f"{option}: not a git revision: {ref!r}")
    done = git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if done.returncode != 0:
        raise CommandError(
            f"{option} {ref}: unknown revision in {repo}; fetch it first "
            f"(e.g. git fetch origin {ref}, with enough depth to reach it)"
        )
    return done.stdout.strip()


def uncommitted(repo: Path) -> list[str]:
    """Tracked files with uncommitted changes (untracked files do not count)."""
    done = git(repo, "status", "--porcelain", "--untracked-files=no")
    return [line[3:] for line in done.stdout.splitlines() if line.strip()]


def working_tree(root: Path) -> Tree:
    """The head as the working tree: refused when it has uncommitted changes.

    Its results would name the commit HEAD while measuring other code; measuring a
    tree as it is stays possible, explicitly, with ``--head PATH``.
    """
    changed = uncommitted(root)
    if changed:
        named = ", ".join(changed[:_NAMED]) + (", ..." if len(changed) > _NAMED else "")
        raise CommandError(
            f"the working tree has uncommitted changes to {len(changed)} tracked file(s) "
            f"({named}): commit or stash them, or pass --head {root} to measure it as it is"
        )
    return Tree("head", root, "HEAD", resolve(root, "HEAD", "--head"))


def path_tree(path: Path) -> Tree:
    """A head given as a directory, measured as it is."""
    done = git(path, "rev-parse", "HEAD")
    commit = done.stdout.strip() if done.returncode == 0 else ""
    suffix = " + uncommitted changes" if commit and uncommitted(path) else ""
    return Tree("head", path.resolve(), f"{path}{suffix}", commit)


def checkout(repo: Path, side: str, ref: str, commit: str, folder: Path) -> Tree:
    """``commit`` checked out, detached, into a new worktree under ``folder``."""
    where = folder / side
    done = git(repo, "worktree", "add", "--detach", "--quiet", str(where), commit)
    if done.returncode != 0:
        message = (done.stderr.strip().splitlines() or ["git worktree add failed"])[-1]
        raise CommandError(f"cannot check out {ref} for the {side} side: {message}")
    return Tree(side, where, ref, commit, temporary=True)


def remove(repo: Path, tree: Tree) -> None:
    """Remove a worktree this run made; never touches any other tree."""
    if not tree.temporary:
        return
    git(repo, "worktree", "remove", "--force", str(tree.path))
    shutil.rmtree(tree.path, ignore_errors=True)
    git(repo, "worktree", "prune")


def run_setup(tree: Tree, command: str, log: Path) -> None:
    """``--setup`` in the tree (e.g. an editable install), or one line saying it failed."""
    with log.open("w") as out:
        try:
            done = subprocess.run(
                command,
                shell=True,
                cwd=tree.path,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        except OSError as exc:
            raise CommandError(f"--setup could not start in the {tree.side} tree: {exc}") from None
    if done.returncode != 0:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        last = lines[-1][:200] if lines else "no output"
        raise CommandError(
            f"--setup failed in the {tree.side} tree ({tree.short}) with exit "
            f"{done.returncode}: {last}"
        )
