"""Security invariants of the GitHub workflows and the composite action.

The workflows cannot run here, so their safety is checked statically: the rules
from GitHub's hardening guide that matter for a gate that runs untrusted PR code
and a privileged job that comments on it. The offline linters (check-jsonschema,
zizmor) run too when installed, and fail the test when they report problems.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ACTIONS = sorted(GITHUB.glob("actions/*/action.yml"))
COMMENT_WORKFLOW = GITHUB / "workflows" / "energy-comment.yml"
ENERGY_WORKFLOW = GITHUB / "workflows" / "energy.yml"
ENERGY_ACTION = GITHUB / "actions" / "energy" / "action.yml"

PINNED = re.compile(r"\A[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}\Z")
USES_LINE = re.compile(r"^\s*(?:-\s*)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
PINNED_RELEASE = re.compile(r"pip install\b.*[\"']?pytest-energy(?:\[[a-z,]+\])?==\d+\.\d+\.\d+")


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: not a YAML mapping"
    return data


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads a bare `on` key as the boolean True.
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict), "a workflow needs `on:`"
    return on


def _jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    jobs = workflow.get("jobs")
    assert isinstance(jobs, dict)
    return jobs


def _steps(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, step) for every step of a workflow's jobs or an action's runs."""
    data = _load(path)
    if "runs" in data:
        for index, step in enumerate(data["runs"].get("steps", [])):
            yield f"{_rel(path)} step {index}", step
        return
    for job_id, job in _jobs(data).items():
        for index, step in enumerate(job.get("steps", [])):
            yield f"{_rel(path)} job {job_id} step {index}", step


def _all_files() -> list[Path]:
    return [*WORKFLOWS, *ACTIONS]


def test_the_expected_files_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "energy.yml", "energy-comment.yml"}
    assert ENERGY_ACTION in ACTIONS


# --- triggers and permissions -------------------------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=_rel)
def test_no_pull_request_target(path: Path) -> None:
    # pull_request_target runs with a write token in the base repository; combined
    # with any checkout of the PR it hands that token to untrusted code.
    assert "pull_request_target" not in _triggers(_load(path))


@pytest.mark.parametrize("path", WORKFLOWS, ids=_rel)
def test_every_workflow_declares_top_level_permissions(path: Path) -> None:
    workflow = _load(path)
    assert "permissions" in workflow, f"{_rel(path)}: add a top-level `permissions:`"
    top = workflow["permissions"]
    assert isinstance(top, dict), f"{_rel(path)}: use a mapping, not {top!r}"
    assert all(level in {"read", "none"} for level in top.values()), (
        f"{_rel(path)}: write access belongs on the job that needs it, not the workflow"
    )


def _grants() -> Iterator[tuple[str, str, Any]]:
    """(workflow, job, permissions) at every level, top level as job '*'."""
    for path in WORKFLOWS:
        workflow = _load(path)
        yield path.name, "*", workflow.get("permissions", {})
        for job_id, job in _jobs(workflow).items():
            if "permissions" in job:
                yield path.name, job_id, job["permissions"]


def test_least_privilege_only_the_comment_job_may_write() -> None:
    for workflow, job, permissions in _grants():
        # Also rules out the shorthands write-all and read-all.
        assert isinstance(permissions, dict), f"{workflow} {job}: {permissions!r}"
        for scope, level in permissions.items():
            privileged = (workflow, job) == ("energy-comment.yml", "comment")
            if level == "write":
                assert privileged, f"{workflow} job {job}: {scope}: write is not needed there"
                assert scope == "pull-requests", f"{workflow} job {job}: {scope}: write"
            if scope == "actions" and level != "none":
                assert privileged, f"{workflow} job {job}: actions: {level} is not needed there"


def test_the_comment_workflow_has_exactly_its_two_permissions() -> None:
    workflow = _load(COMMENT_WORKFLOW)
    assert workflow["permissions"] == {}
    [(job_id, job)] = _jobs(workflow).items()
    assert job_id == "comment"
    assert job["permissions"] == {"pull-requests": "write", "actions": "read"}
    assert set(_triggers(workflow)) == {"workflow_run"}
    trigger = _triggers(workflow)["workflow_run"]
    assert trigger["workflows"] == [_load(ENERGY_WORKFLOW)["name"]]
    assert trigger["types"] == ["completed"]


def test_the_comment_workflow_never_runs_pr_code() -> None:
    steps = [step for _, step in _steps(COMMENT_WORKFLOW)]
    uses = [str(step.get("uses", "")) for step in steps]
    # No checkout at all: nothing of the PR (or of any ref a fork can influence)
    # lands on the privileged runner except the artifact's data files.
    assert not [u for u in uses if u.startswith("actions/checkout@")]
    assert not [u for u in uses if u.startswith("./")], "a local action would come from a checkout"
    runs = "\n".join(str(step.get("run", "")) for step in steps)
    assert PINNED_RELEASE.search(runs), (
        "install a pinned release: pip install 'pytest-energy==X.Y.Z'"
    )
    assert not re.search(r"pip install\s+(-e\s+)?\.", runs)
    download = next(s for s in steps if str(s.get("uses", "")).startswith("actions/download"))
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    # The install comes first, so nothing downloaded can influence it.
    assert steps.index(download) > next(
        i for i, s in enumerate(steps) if PINNED_RELEASE.search(str(s.get("run", "")))
    )


# --- actions and scripts --------------------------------------------------------------


@pytest.mark.parametrize("path", _all_files(), ids=_rel)
def test_third_party_actions_are_pinned_to_a_full_commit_sha(path: Path) -> None:
    for where, step in _steps(path):
        ref = step.get("uses")
        if ref is None or str(ref).startswith("./"):
            continue
        assert PINNED.match(str(ref)), f"{where}: pin {ref} to a 40-hex commit SHA"
    for job_id, job in _jobs(_load(path)).items() if path in WORKFLOWS else []:
        ref = job.get("uses")  # a reusable workflow
        assert ref is None or str(ref).startswith("./") or PINNED.match(str(ref)), job_id


@pytest.mark.parametrize("path", _all_files(), ids=_rel)
def test_every_pin_names_its_version_in_a_comment(path: Path) -> None:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = USES_LINE.match(line)
        if match and not match["ref"].startswith("./"):
            assert re.search(r"#\s*v\d", match["rest"]), f"{_rel(path)}:{number}: add '# vX.Y.Z'"


def test_each_action_is_pinned_to_the_same_sha_everywhere() -> None:
    seen: dict[str, set[str]] = {}
    for path in _all_files():
        for _, step in _steps(path):
            ref = str(step.get("uses", ""))
            if "@" in ref:
                name, sha = ref.split("@", 1)
                seen.setdefault(name.split("/")[0] + "/" + name.split("/")[1], set()).add(sha)
    assert {name: shas for name, shas in seen.items() if len(shas) > 1} == {}


@pytest.mark.parametrize("path", _all_files(), ids=_rel)
def test_no_expressions_inside_run_scripts(path: Path) -> None:
    # `${{ }}` is pasted into the script before the shell sees it: a branch name or
    # PR title becomes code. Values go through `env:` and are quoted as "$VAR".
    for where, step in _steps(path):
        assert "${{" not in str(step.get("run", "")), f"{where}: pass the value through env:"


@pytest.mark.parametrize("path", _all_files(), ids=_rel)
def test_checkouts_do_not_persist_credentials(path: Path) -> None:
    for where, step in _steps(path):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            value = (step.get("with") or {}).get("persist-credentials")
            assert value in {False, "false"}, f"{where}: set persist-credentials: false"


@pytest.mark.parametrize("path", ACTIONS, ids=_rel)
def test_every_composite_run_step_has_a_shell(path: Path) -> None:
    assert _load(path)["runs"]["using"] == "composite"
    for where, step in _steps(path):
        if "run" in step:
            assert step.get("shell") == "bash", f"{where}: add shell: bash"


def test_the_action_uploads_even_when_the_gate_fails_and_exits_last() -> None:
    steps = [step for _, step in _steps(ENERGY_ACTION)]
    [upload] = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert re.search(r"always\(\)|!cancelled\(\)", upload["if"])
    pytest_step = next(s for s in steps if s.get("id") == "pytest")
    assert "set +e" in pytest_step["run"], "pytest's status is recorded, not raised"
    last = steps[-1]
    assert last["run"].strip() == 'exit "$EXIT_CODE"'
    assert last["env"]["EXIT_CODE"] == "${{ steps.pytest.outputs.exit-code }}"
    assert "if" not in last


def test_only_a_default_branch_push_saves_the_baseline_by_default() -> None:
    steps = [step for _, step in _steps(ENERGY_ACTION)]
    mode = next(s for s in steps if s.get("id") == "mode")
    condition = " ".join(mode["env"]["SAVE_BASELINE"].split())
    assert "github.event_name == 'push'" in condition
    assert "github.event.repository.default_branch" in condition
    # A pull request never writes the cache other pull requests restore from.
    [save] = [s for s in steps if str(s.get("uses", "")).startswith("actions/cache/save@")]
    assert "steps.mode.outputs.save-baseline == 'true'" in save["if"]
    triggers = _triggers(_load(ENERGY_WORKFLOW))
    assert set(triggers) == {"pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]


# --- offline linters ------------------------------------------------------------------


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_workflows_match_githubs_schema() -> None:
    tool = _tool("check-jsonschema")
    done = _run(tool, "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_action_matches_githubs_schema() -> None:
    tool = _tool("check-jsonschema")
    done = _run(tool, "--builtin-schema", "vendor.github-actions", *map(str, ACTIONS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing() -> None:
    tool = _tool("zizmor")
    done = _run(tool, "--offline", "--no-progress", str(GITHUB))
    assert done.returncode == 0, done.stdout + done.stderr
