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
RELEASE_WORKFLOW = GITHUB / "workflows" / "release.yml"
ENERGY_ACTION = GITHUB / "actions" / "energy" / "action.yml"
COMMENT_ACTION = GITHUB / "actions" / "comment" / "action.yml"
DEPENDABOT = GITHUB / "dependabot.yml"

PINNED = re.compile(r"\A[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}\Z")
USES_LINE = re.compile(r"^\s*(?:-\s*)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
#: Anything that fetches code from a package registry.
REGISTRY_INSTALL = re.compile(
    r"\b(?:pip3?|pipx|uv|poetry|conda|mamba|npm|npx|yarn|pnpm|gem|cargo|go)\b"
    r"(?:\s+-\S+)*\s+(?:install|add|tool|run|exec|get|sync)\b"
    r"|\bpython3?\s+-m\s+pip\b|\b(?:npx|pipx|uvx|bunx)\s"
)
#: A `pytest-energy` command found on PATH (steps must call "$PYTHON" -m pytest_energy).
CLI_ON_PATH = re.compile(
    r"(?:^|[\s;&|(`])pytest-energy\s+"
    r"(?:summary|annotate|comment|comment-body|export|report|history|compare|ab)\b",
    re.MULTILINE,
)
#: Write scopes each privileged job needs, and no other job has any.
WRITERS = {
    ("energy-comment.yml", "comment"): {"pull-requests"},
    ("release.yml", "attest"): {"id-token", "attestations"},
    ("release.yml", "publish"): {"id-token"},
}


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
    assert {p.name for p in WORKFLOWS} >= {
        "ci.yml",
        "energy.yml",
        "energy-comment.yml",
        "release.yml",
    }
    assert ENERGY_ACTION in ACTIONS
    assert COMMENT_ACTION in ACTIONS
    assert DEPENDABOT.is_file()


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


def test_least_privilege_only_the_comment_and_publish_jobs_may_write() -> None:
    for workflow, job, permissions in _grants():
        # Also rules out the shorthands write-all and read-all.
        assert isinstance(permissions, dict), f"{workflow} {job}: {permissions!r}"
        allowed = WRITERS.get((workflow, job), set())
        for scope, level in permissions.items():
            if level == "write":
                assert scope in allowed, f"{workflow} job {job}: {scope}: write is not needed there"
            if scope == "actions" and level != "none":
                commenting = (workflow, job) == ("energy-comment.yml", "comment")
                assert commenting, f"{workflow} job {job}: actions: {level} is not needed there"


def _writing_jobs() -> Iterator[tuple[Path, str, dict[str, Any]]]:
    for path in WORKFLOWS:
        for job_id, job in _jobs(_load(path)).items():
            levels = (job.get("permissions") or {}).values()
            if "write" in levels:
                yield path, job_id, job


def _scripts_run_by(job: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, script) for the job's own steps and the local actions it uses."""
    for index, step in enumerate(job.get("steps", [])):
        if "run" in step:
            yield f"step {index}", str(step["run"])
        uses = str(step.get("uses", ""))
        if uses.startswith("./"):
            for where, inner in _steps(ROOT / uses.removeprefix("./") / "action.yml"):
                if "run" in inner:
                    yield where, str(inner["run"])


def test_no_job_holding_a_write_token_installs_from_a_registry() -> None:
    # A package fetched by name runs its code with the token (a comment job) or
    # can mint one (a publish job): whoever controls the name controls the job.
    jobs = list(_writing_jobs())
    assert {(p.name, j) for p, j, _ in jobs} == set(WRITERS)
    for path, job_id, job in jobs:
        for where, script in _scripts_run_by(job):
            found = REGISTRY_INSTALL.search(script)
            assert found is None, f"{_rel(path)} job {job_id} {where}: {found.group()!r}"
        uses = [str(s.get("uses", "")) for s in job.get("steps", [])]
        assert not [u for u in uses if "setup-python" in u or "setup-node" in u], (
            f"{_rel(path)} job {job_id}: nothing to set up; the runner's python3 suffices"
        )


def test_the_registry_install_pattern_catches_the_usual_forms() -> None:
    for script in (
        'python -m pip install "pytest-energy==0.1.0"',
        "pip install pytest-energy",
        "uv pip install x",
        "uv tool run zizmor",
        "pipx run x",
        "npx something",
        "python3 -m pip download x",
    ):
        assert REGISTRY_INSTALL.search(script), script
    assert not REGISTRY_INSTALL.search('"$PYTHON" -E -S -m pytest_energy comment --when always')


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
    # Exactly: a checkout of the default branch (workflow_run runs there; never a
    # ref or repository a fork can name), then the comment action from it.
    assert [str(s.get("uses", "")).split("@")[0] for s in steps] == [
        "actions/checkout",
        "./.github/actions/comment",
    ]
    checkout = steps[0].get("with") or {}
    assert set(checkout) == {"persist-credentials"}, "no ref:, repository: or path: override"
    assert not any("run" in s for s in steps), "the action does the work; nothing else runs"


def test_the_comment_action_runs_its_own_code_and_installs_nothing() -> None:
    action = _load(COMMENT_ACTION)
    steps = action["runs"]["steps"]
    [download] = [s for s in steps if str(s.get("uses", "")).startswith("actions/download")]
    assert download["with"]["run-id"] == "${{ inputs.run-id }}"
    assert action["inputs"]["run-id"]["default"] == "${{ github.event.workflow_run.id }}"
    # Untrusted files go where Python never looks for modules.
    assert download["with"]["path"].startswith("${{ runner.temp }}/")
    [post] = [s for s in steps if "run" in s]
    assert post["working-directory"] == "${{ github.action_path }}/../../.."
    # -E: no PYTHON* variables (PYTHONPATH); -S: no site-packages, so only the
    # standard library and this checkout can be imported.
    assert re.search(r'"\$PYTHON" -E -S -m pytest_energy comment ', post["run"])
    assert "--results-dir" in post["run"]
    assert post["env"]["ARTIFACTS"] == download["with"]["path"]
    assert steps.index(download) < steps.index(post)
    for _, step in _steps(COMMENT_ACTION):
        assert not REGISTRY_INSTALL.search(str(step.get("run", "")))
    assert set(action["inputs"]["comment"]["description"].split()) >= {
        '"always"',
        '"on-alert":',
        '"never":',
    }


@pytest.mark.parametrize("path", ACTIONS, ids=_rel)
def test_every_step_calls_the_cli_through_its_interpreter(path: Path) -> None:
    # `pytest-energy` on PATH fails (127) when `python:` is a virtual environment
    # that is not on PATH, and may be another copy than the one installed.
    for where, step in _steps(path):
        script = str(step.get("run", ""))
        assert not CLI_ON_PATH.search(script), f'{where}: call "$PYTHON" -m pytest_energy'


def test_the_cli_on_path_pattern_catches_a_bare_call() -> None:
    assert CLI_ON_PATH.search('if [ -f x ]; then pytest-energy annotate "$RESULTS"; fi')
    assert CLI_ON_PATH.search('pytest-energy summary "$RESULTS" >> "$GITHUB_STEP_SUMMARY"')
    assert not CLI_ON_PATH.search('"$PYTHON" -m pytest_energy summary "$RESULTS"')
    assert not CLI_ON_PATH.search('echo "pytest-energy: the run exited with 1"')


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


def test_a_baseline_is_saved_only_by_a_passing_planned_run() -> None:
    # Which events save is decided by the plan step (run for real, event by event,
    # in tests/test_action_scripts.py); the save itself also needs a passing gate.
    steps = [step for _, step in _steps(ENERGY_ACTION)]
    saves = [s for s in steps if str(s.get("uses", "")).startswith("actions/cache/save@")]
    [baseline] = [s for s in saves if s["with"]["path"].endswith("/ci-baseline")]
    condition = " ".join(baseline["if"].split())
    assert "steps.plan.outputs.save == 'true'" in condition
    assert "steps.pytest.outputs.exit-code == '0'" in condition
    # Keys: commit-keyed, matrix-safe, computed (and sanitised) by the plan step.
    assert baseline["with"]["key"] == "${{ steps.plan.outputs.baseline-key }}"
    [history] = [s for s in saves if s["with"]["path"].endswith("/history.sqlite")]
    assert "steps.plan.outputs.history-save == 'true'" in history["if"]
    restores = [s for s in steps if str(s.get("uses", "")).startswith("actions/cache/restore@")]
    [restore] = [s for s in restores if s["with"]["path"].endswith("/ci-baseline")]
    assert restore["with"]["key"] == "${{ steps.plan.outputs.baseline-lookup }}"
    assert restore["with"]["restore-keys"].splitlines() == [
        "${{ steps.plan.outputs.baseline-prefix }}",
        "${{ steps.plan.outputs.baseline-fallback }}",
    ]
    plan = next(s for s in steps if s.get("id") == "plan")
    assert plan["env"]["MATRIX"] == "${{ toJSON(matrix) }}"
    assert steps.index(plan) == 0, "the plan comes first: every later step reads it"


def test_the_energy_workflow_gates_prs_the_merge_queue_and_main() -> None:
    triggers = _triggers(_load(ENERGY_WORKFLOW))
    assert set(triggers) == {"pull_request", "merge_group", "push"}
    assert triggers["push"]["branches"] == ["main"]


def test_the_release_workflow_publishes_tags_with_trusted_publishing() -> None:
    workflow = _load(RELEASE_WORKFLOW)
    triggers = _triggers(workflow)
    assert set(triggers) == {"push"}
    assert set(triggers["push"]) == {"tags"}
    jobs = _jobs(workflow)
    assert jobs["build"]["permissions"] == {"contents": "read"}
    publish = jobs["publish"]
    assert publish["permissions"] == {"id-token": "write"}
    assert publish["needs"] == ["build", "attest"]  # nothing unattested is published
    assert publish["environment"]["name"] == "pypi"
    attest = jobs["attest"]
    assert attest["permissions"] == {"id-token": "write", "attestations": "write"}
    assert [str(s.get("uses", "")).split("@")[0] for s in attest["steps"]] == [
        "actions/download-artifact",
        "actions/attest-build-provenance",
    ]
    assert attest["steps"][-1]["with"]["subject-path"] == "dist/*"
    uses = [str(s.get("uses", "")) for s in publish["steps"]]
    assert [u.split("@")[0] for u in uses] == [
        "actions/download-artifact",
        "pypa/gh-action-pypi-publish",
    ]
    publish_with = publish["steps"][-1].get("with") or {}
    assert "password" not in publish_with, "trusted publishing: no long-lived token"
    build_runs = "\n".join(str(s.get("run", "")) for s in jobs["build"]["steps"])
    assert "python -m build" in build_runs
    assert "twine check --strict" in build_runs


def test_dependabot_updates_the_pinned_actions_everywhere() -> None:
    config = _load(DEPENDABOT)
    [actions] = [u for u in config["updates"] if u["package-ecosystem"] == "github-actions"]
    # The composite actions hold pins too; "/" alone covers only .github/workflows.
    assert set(actions["directories"]) == {"/", "/.github/actions/*"}


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


def test_the_actions_match_githubs_schema() -> None:
    tool = _tool("check-jsonschema")
    done = _run(tool, "--builtin-schema", "vendor.github-actions", *map(str, ACTIONS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_dependabot_config_matches_its_schema() -> None:
    tool = _tool("check-jsonschema")
    done = _run(tool, "--builtin-schema", "vendor.dependabot", str(DEPENDABOT))
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing() -> None:
    tool = _tool("zizmor")
    done = _run(tool, "--offline", "--no-progress", str(GITHUB))
    assert done.returncode == 0, done.stdout + done.stderr


# --- the documented setup ---------------------------------------------------------------

DOCS = ROOT / "docs" / "github-actions.md"
RELEASE_PIN = "<release SHA>"


def _documented_workflows() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    return [b for b in blocks if re.search(r"^jobs:", b, re.MULTILINE)]


def test_the_documented_workflows_are_the_two_to_copy() -> None:
    energy, comment = _documented_workflows()
    assert "pytest-energy/pytest-energy/.github/actions/energy@<release SHA> # v" in energy
    assert "pytest-energy/pytest-energy/.github/actions/comment@<release SHA> # v" in comment
    assert "merge_group:" in energy
    documented = yaml.safe_load(comment)
    assert documented["permissions"] == {}
    [job] = documented["jobs"].values()
    assert job["permissions"] == {"pull-requests": "write", "actions": "read"}
    assert len(job["steps"]) == 1, "the comment job needs nothing but the action"
    assert not REGISTRY_INSTALL.search(comment)


def test_the_documented_workflows_pass_the_linters(tmp_path: Path) -> None:
    tool = _tool("check-jsonschema")
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    paths = []
    for index, text in enumerate(_documented_workflows()):
        path = folder / f"documented-{index}.yml"
        path.write_text(text.replace(RELEASE_PIN, "0" * 40), encoding="utf-8")
        paths.append(str(path))
    done = _run(tool, "--builtin-schema", "vendor.github-workflows", *paths)
    assert done.returncode == 0, done.stdout + done.stderr
    zizmor = _tool("zizmor")
    done = _run(zizmor, "--offline", "--no-progress", str(tmp_path / ".github"))
    assert done.returncode == 0, done.stdout + done.stderr
