"""The composite actions' scripts, run the way a GitHub runner runs them.

GitHub cannot run here, so this file plays the runner for ``.github/actions/*``:
it evaluates each step's ``if:``, ``env:`` and ``with:`` expressions, gives each
``run:`` script the files and variables a runner gives it (``GITHUB_OUTPUT``,
``GITHUB_STEP_SUMMARY``, ``GITHUB_ENV``, ``RUNNER_TEMP``, ``GITHUB_*``; a PATH
without the Python that runs the tests; ``bash -eo pipefail``; the step's
working-directory) and stands in for the nested actions with small fakes: an
Actions cache that restores an exact key, else the newest entry of the first
matching prefix, and an artifact store. The scripts themselves run unmodified
against a small suite measured through the replay meter, so every figure is
scripted and the outcome does not depend on this machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import traces
from test_github_comment import FakeGitHub, github_handler

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
ENERGY_ACTION = ROOT / ".github" / "actions" / "energy" / "action.yml"
COMMENT_ACTION = ROOT / ".github" / "actions" / "comment" / "action.yml"
#: A PATH without the test interpreter's folder: the action must not need it on PATH.
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"

# --- GitHub's expression language, the part the actions use -----------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||!|\(|\)|,|\.)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "", "false") if not isinstance(value, str) else value != ""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2)
    return str(value)


class Expression:
    """A recursive-descent evaluator of ``${{ }}`` expressions over a context."""

    def __init__(self, source: str, context: dict[str, Any]) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(source.rstrip()):
            match = _TOKEN.match(source, position)
            assert match, f"cannot parse {source!r} at {position}"
            kind = match.lastgroup
            assert kind is not None
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.context = context
        self.index = 0

    def value(self) -> Any:
        result = self._or()
        assert self.index == len(self.tokens), f"trailing tokens in {self.tokens}"
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.index][1] if self.index < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _or(self) -> Any:
        # Like GitHub: `a || b` is a if a is truthy, else b; `a && b` is b if a is truthy.
        return self._chain("||", self._and, lambda left, right: left if _truthy(left) else right)

    def _and(self) -> Any:
        return self._chain("&&", self._unary, lambda left, right: right if _truthy(left) else left)

    def _chain(
        self, op: str, operand: Callable[[], Any], combine: Callable[[Any, Any], Any]
    ) -> Any:
        left = operand()
        while self._peek() == op:
            self._take()
            left = combine(left, operand())
        return left

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not _truthy(self._unary())
        left = self._primary()
        if self._peek() in {"==", "!="}:
            op = self._take()[1]
            right = self._primary()
            equal = _text(left).lower() == _text(right).lower()
            return equal if op == "==" else not equal
        return left

    def _primary(self) -> Any:
        kind, token = self._take()
        if token == "(":
            inner = self._or()
            assert self._take()[1] == ")"
            return inner
        if kind == "str":
            return token[1:-1].replace("''", "'")
        if kind == "num":
            return float(token)
        if token in {"true", "false", "null"}:
            return {"true": True, "false": False, "null": None}[token]
        if self._peek() == "(":
            self._take()
            args = []
            while self._peek() != ")":
                args.append(self._or())
                if self._peek() == ",":
                    self._take()
            self._take()
            return self._call(token, args)
        value: Any = self.context.get(token)
        while self._peek() == ".":
            self._take()
            key = self._take()[1]
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def _call(self, name: str, args: list[Any]) -> Any:
        if name == "cancelled":
            return False
        if name == "always":
            return True
        if name == "success":
            return not self.context["_failed"]
        if name == "failure":
            return self.context["_failed"]
        if name == "toJSON":
            return json.dumps(args[0], indent=2)
        if name == "fromJSON":
            return json.loads(args[0])
        if name == "contains":
            return args[1] in args[0]
        if name == "format":
            return re.sub(r"\{(\d+)\}", lambda m: _text(args[1 + int(m.group(1))]), args[0])
        raise AssertionError(f"function {name} is not modelled")


def evaluate(text: Any, context: dict[str, Any]) -> str:
    """A value with ``${{ }}`` parts replaced, as the runner does before a step runs."""
    return re.sub(
        r"\$\{\{(.*?)\}\}", lambda m: _text(Expression(m.group(1), context).value()), str(text)
    )


def condition(text: Any, context: dict[str, Any]) -> bool:
    source = str(text).strip()
    if source.startswith("${{") and source.endswith("}}"):
        source = source[3:-2]
    return _truthy(Expression(source, context).value())


# --- the runner --------------------------------------------------------------------


@dataclass
class FakeCache:
    """The Actions cache: entries in order of creation, never overwritten."""

    entries: dict[str, Path] = field(default_factory=dict)
    root: Path = Path()

    def save(self, key: str, source: Path) -> None:
        if key in self.entries or not source.exists():
            return  # GitHub: "another job may be creating this cache" / nothing to save
        stored = self.root / f"entry-{len(self.entries)}"
        if source.is_dir():
            shutil.copytree(source, stored / "data")
        else:
            stored.mkdir(parents=True)
            shutil.copy2(source, stored / "data")
        self.entries[key] = stored

    def restore(self, key: str, prefixes: list[str], target: Path) -> str:
        matched = key if key in self.entries else ""
        for prefix in prefixes if not matched else []:
            newest = [k for k in self.entries if k.startswith(prefix)]
            if newest:
                matched = newest[-1]
                break
        if matched:
            data = self.entries[matched] / "data"
            target.parent.mkdir(parents=True, exist_ok=True)
            if data.is_dir():
                shutil.copytree(data, target, dirs_exist_ok=True)
            else:
                shutil.copy2(data, target)
        return matched


@dataclass
class Job:
    """One job's world: workspace, runner temp, cache, artifacts, event."""

    workspace: Path
    temp: Path
    cache: FakeCache
    artifacts: dict[str, Path] = field(default_factory=dict)
    summary: str = ""
    log: str = ""
    steps_run: list[str] = field(default_factory=list)


@dataclass
class Run:
    outputs: dict[str, str]
    steps: dict[str, dict[str, Any]]
    failed: bool
    summary: str
    log: str
    env_seen: dict[str, dict[str, str]]


def _read_outputs(path: Path) -> dict[str, str]:
    outputs: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").splitlines() if path.exists() else [])
    for line in lines:
        if "<<" in line and "=" not in line.split("<<", 1)[0]:
            name, delimiter = line.split("<<", 1)
            collected = []
            for inner in lines:
                if inner == delimiter:
                    break
                collected.append(inner)
            outputs[name] = "\n".join(collected)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


def _fake_uses(step: dict[str, Any], given: dict[str, str], job: Job) -> dict[str, str]:
    """Stand-ins for the nested actions; returns the step's outputs."""
    uses = str(step["uses"])
    if uses.startswith("actions/cache/restore@"):
        prefixes = [line.strip() for line in given["restore-keys"].splitlines() if line.strip()]
        matched = job.cache.restore(given["key"], prefixes, job.workspace / given["path"])
        hit = "true" if matched == given["key"] else "false"
        return {"cache-matched-key": matched, "cache-hit": hit if matched else ""}
    if uses.startswith("actions/cache/save@"):
        job.cache.save(given["key"], job.workspace / given["path"])
        return {}
    if uses.startswith("actions/upload-artifact@"):
        stored = job.temp.parent / "artifact-store" / given["name"]
        shutil.copytree(given["path"], stored, dirs_exist_ok=True)
        job.artifacts[given["name"]] = stored
        return {}
    if uses.startswith("actions/download-artifact@"):
        pattern = re.compile(re.escape(given["pattern"]).replace(r"\*", ".*") + r"\Z")
        for name, stored in job.artifacts.items():
            if pattern.match(name):
                shutil.copytree(stored, Path(given["path"]) / name, dirs_exist_ok=True)
        return {}
    raise AssertionError(f"no stand-in for {uses}")


def run_action(
    action: Path,
    job: Job,
    *,
    inputs: dict[str, str],
    github: dict[str, Any],
    matrix: dict[str, Any] | None = None,
    extra_env: dict[str, str] | None = None,
) -> Run:
    """Run every step of a composite action as the runner would."""
    metadata = yaml.safe_load(action.read_text(encoding="utf-8"))
    runner = {"temp": str(job.temp), "os": "Linux", "arch": "X64"}
    github = {**github, "action_path": str(action.parent), "workspace": str(job.workspace)}
    base_context: dict[str, Any] = {
        "github": github,
        "runner": runner,
        "matrix": matrix,
        "strategy": {"job-index": 0},
        "_failed": False,
    }
    given_inputs = {}
    for name, spec in metadata.get("inputs", {}).items():
        default = evaluate(spec.get("default", ""), base_context)
        given_inputs[name] = inputs.get(name, default)
    unknown = set(inputs) - set(given_inputs)
    assert not unknown, f"the action has no inputs {unknown}"
    steps: dict[str, dict[str, Any]] = {}
    env_file_values: dict[str, str] = {}
    env_seen: dict[str, dict[str, str]] = {}
    failed = False
    event = github.get("event", {})
    base_env = {
        "PATH": BARE_PATH,
        "HOME": str(job.temp.parent / "home"),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(job.workspace),
        "RUNNER_TEMP": str(job.temp),
        "RUNNER_OS": runner["os"],
        "RUNNER_ARCH": runner["arch"],
        "GITHUB_JOB": github["job"],
        "GITHUB_REF": github["ref"],
        "GITHUB_REF_NAME": github["ref_name"],
        "GITHUB_SHA": github["sha"],
        "GITHUB_EVENT_NAME": github["event_name"],
        "GITHUB_RUN_ID": github["run_id"],
        "GITHUB_RUN_ATTEMPT": github["run_attempt"],
        "GITHUB_REPOSITORY": github["repository"],
        "GITHUB_HEAD_REF": str(event.get("pull_request", {}).get("head", {}).get("ref", "")),
        "GITHUB_BASE_REF": str(event.get("pull_request", {}).get("base", {}).get("ref", "")),
        **(extra_env or {}),
    }
    for index, step in enumerate(metadata["runs"]["steps"]):
        context = {**base_context, "inputs": given_inputs, "steps": steps, "_failed": failed}
        step_id = step.get("id", f"__step{index}")
        if not condition(step.get("if", "success()"), context):
            steps[step_id] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
            continue
        job.steps_run.append(step.get("name", step_id))
        if "uses" in step:
            given = {k: evaluate(v, context) for k, v in (step.get("with") or {}).items()}
            outputs = _fake_uses(step, given, job)
            steps[step_id] = {"outputs": outputs, "outcome": "success", "conclusion": "success"}
            continue
        files = job.temp.parent / "runner-files" / f"{index}"
        files.mkdir(parents=True, exist_ok=True)
        output, summary, env_file = files / "output", files / "summary", files / "env"
        for path in (output, summary, env_file):
            path.write_text("", encoding="utf-8")
        env = {**base_env, **env_file_values}
        env.update({k: evaluate(v, context) for k, v in (step.get("env") or {}).items()})
        env.update(GITHUB_OUTPUT=str(output), GITHUB_STEP_SUMMARY=str(summary))
        env["GITHUB_ENV"] = str(env_file)
        env_seen[step_id] = env
        cwd = job.workspace / evaluate(step.get("working-directory", "."), context)
        script = files / "script.sh"
        script.write_text(str(step["run"]), encoding="utf-8")
        assert step.get("shell") == "bash"
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        job.log += done.stdout + done.stderr
        job.summary += summary.read_text(encoding="utf-8")
        env_file_values.update(_read_outputs(env_file))
        outcome = "success" if done.returncode == 0 else "failure"
        failed = failed or done.returncode != 0
        steps[step_id] = {"outputs": _read_outputs(output), "outcome": outcome}
    context = {**base_context, "inputs": given_inputs, "steps": steps, "_failed": failed}
    outputs = {
        name: evaluate(spec["value"], context) for name, spec in metadata.get("outputs", {}).items()
    }
    return Run(outputs, steps, failed, job.summary, job.log, env_seen)


# --- the project under test ------------------------------------------------------------

BENCH = """
def test_bench(energy_benchmark):
    energy_benchmark.pedantic(lambda: None, rounds=5, calls_per_round=1, units=10,
                              unit="sample")
"""

QUIET = [10.0, 10.05, 9.95, 10.02, 9.98]
OFFSETS = (1.0, 1.004, 0.996)
#: Enough traces for this session, the baseline's fresh processes and any confirmations.
PROCESSES = 16


@dataclass
class World:
    workspace: Path
    project: Path
    cache: FakeCache
    tmp: Path
    runs: int = 0

    def job(self) -> Job:
        self.runs += 1
        temp = self.tmp / f"job{self.runs}" / "runner-temp"
        temp.mkdir(parents=True)
        return Job(self.workspace, temp, self.cache)

    def meter(self, level: float) -> str:
        """Replay traces where every round of ``test_bench`` costs about ``level`` J."""
        name = f"t{self.runs}"
        folder = self.tmp / "traces"
        folder.mkdir(exist_ok=True)
        for index in range(PROCESSES):
            offset = OFFSETS[index % len(OFFSETS)]
            rounds = [r * level / 10 * offset for r in QUIET]
            traces.write(folder / f"{name}-{index}.json", traces.benchmark_rounds(rounds))
        return (
            f"--energy-meter=replay:{folder}/{name}-{{process}}.json "
            "--energy-idle-seconds=0 --energy-calibration=off -p no:cacheprovider"
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    workspace = tmp_path / "workspace"
    project = workspace / "proj"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_bench.py").write_text(BENCH, encoding="utf-8")
    # The project's own rootdir, so pytest does not walk up into this repository.
    (project / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    cache = FakeCache(root=tmp_path / "cache-store")
    return World(workspace, project, cache, tmp_path)


def relative_python(project: Path) -> str:
    """This interpreter as a path relative to the working directory, not on PATH."""
    return os.path.relpath(sys.executable, project)


def push(sha: str, before: str, *, branch: str = "main") -> dict[str, Any]:
    return {
        "event_name": "push",
        "ref": f"refs/heads/{branch}",
        "ref_name": branch,
        "sha": sha * 40 if len(sha) == 1 else sha,
        "job": "energy",
        "run_id": f"100{sha[0]}",  # each push is its own workflow run
        "run_attempt": "1",
        "repository": "octo/energy",
        "event": {
            "before": before * 40 if len(before) == 1 else before,
            "repository": {"default_branch": "main"},
        },
    }


def pull_request(base_sha: str, *, number: int = 7) -> dict[str, Any]:
    return {
        "event_name": "pull_request",
        "ref": f"refs/pull/{number}/merge",
        "ref_name": f"{number}/merge",
        "sha": "e" * 40,
        "job": "energy",
        "run_id": "2000",
        "run_attempt": "1",
        "repository": "octo/energy",
        "event": {
            "pull_request": {
                "number": number,
                "base": {"sha": base_sha * 40 if len(base_sha) == 1 else base_sha, "ref": "main"},
                "head": {"sha": "f" * 40, "ref": "feature"},
            },
            "repository": {"default_branch": "main"},
        },
    }


def energy(
    world: World,
    github: dict[str, Any],
    level: float,
    *,
    matrix: dict[str, Any] | None = None,
    **inputs: str,
) -> Run:
    job = world.job()
    given = {
        "working-directory": "proj",
        "python": relative_python(world.project),
        "install": "false",
        "pytest-args": world.meter(level),
        **inputs,
    }
    return run_action(ENERGY_ACTION, job, inputs=given, github=github, matrix=matrix)


def annotations(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith(("::error", "::warning"))]


# --- the energy action ------------------------------------------------------------------


@pytest.fixture
def main_with_baseline(world: World) -> Run:
    """A first push to main: measured, not gated, and this commit's baseline saved."""
    first = energy(world, push("1", "0"), 10.0)
    assert first.outputs["exit-code"] == "0", first.log
    return first


def test_the_first_push_records_a_baseline_and_the_history(
    world: World, main_with_baseline: Run
) -> None:
    run = main_with_baseline
    assert run.outputs["mode"] == "record"
    assert not run.failed
    assert "No earlier baseline in the Actions cache" in run.summary
    assert "Energy not gated" in run.summary  # the Markdown summary followed
    keys = list(world.cache.entries)
    assert keys == [
        "pytest-energy-Linux-X64-energy-single-baseline-main~" + "1" * 40,
        "pytest-energy-Linux-X64-energy-single-history-main~1001-1",
    ]
    saved = world.cache.entries[keys[0]] / "data"
    # This commit's baseline, and no previous.json left from the comparison.
    assert {p.name for p in saved.iterdir() if not p.name.endswith(".lock")} == {"baseline.json"}
    results = Path(run.outputs["results-path"])
    assert results.is_absolute()
    assert results.parent.parent == world.project
    # The step ran with a PATH that holds no Python of the tests' environment.
    assert run.env_seen["pytest"]["PATH"] == BARE_PATH
    assert shutil.which("pytest-energy", path=BARE_PATH) is None


def test_a_regression_on_main_is_gated_and_not_saved(world: World, main_with_baseline: Run) -> None:
    run = energy(world, push("2", "1"), 13.0)
    assert run.outputs["mode"] == "record"
    assert run.outputs["exit-code"] == "1"
    assert run.failed, "the last step exits with the gate's status"
    assert f"cached baseline of commit {'1' * 12}, the previous commit" in run.summary
    assert "Energy check failed" in run.summary
    # The regression does not become the next baseline; the history keeps the run.
    assert not [k for k in world.cache.entries if k.endswith("~" + "2" * 40)]
    assert "pytest-energy-Linux-X64-energy-single-history-main~1002-1" in world.cache.entries
    # Annotations name the file from the repository root, not from proj/.
    [error] = [a for a in annotations(run.log) if a.startswith("::error")]
    assert "file=proj/tests/test_bench.py," in error
    # Uploaded although the gate failed.
    [(name, uploaded)] = [(n, p) for n, p in world_artifacts(world) if n.endswith("-0")][-1:]
    assert name == "pytest-energy-energy-0"
    assert sorted(p.name for p in uploaded.iterdir()) == [
        "history.sqlite",
        "report.html",
        "results.json",
    ]
    # The history in the artifact answers `pytest-energy history`: both main runs.
    shown = subprocess.run(
        [sys.executable, "-m", "pytest_energy", "history", "--history", "history.sqlite"],
        cwd=uploaded,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "tests/test_bench.py::test_bench" in shown.stdout
    assert re.search(r"test_bench\s+\S*\s*2\s", shown.stdout), shown.stdout


def test_a_pr_restores_its_base_commits_baseline_and_charts_the_trend(
    world: World, main_with_baseline: Run
) -> None:
    energy(world, push("2", "1"), 10.0)  # a second main run: two points on the trend
    run = energy(world, pull_request("1"), 10.0, compare="baseline")
    assert run.outputs["mode"] == "compare"
    assert run.outputs["exit-code"] == "0", run.log
    assert not run.failed
    assert f"cached baseline of commit {'1' * 12}, the base commit" in run.summary
    assert "Energy check passed" in run.summary
    assert "```mermaid\nxychart-beta" in run.summary
    assert "Energy on main: last 2 runs" in run.summary
    # A pull request never saves a baseline or the history.
    assert not [k for k in world.cache.entries if "e" * 40 in k or "~2000-" in k]
    hint = json.loads((Path(run.outputs["results-path"]).parent / "pr.json").read_text())
    assert hint == {"pr": 7, "head_sha": "f" * 40}


def test_a_pr_whose_base_has_no_entry_takes_the_newest_of_its_branch(
    world: World, main_with_baseline: Run
) -> None:
    run = energy(world, pull_request("9"), 10.0, compare="baseline")
    assert run.outputs["exit-code"] == "0", run.log
    assert (
        f"the newest cached baseline of branch main, from commit {'1' * 12}; "
        f"commit {'9' * 12} has none in the cache" in run.summary
    )


def test_matrix_entries_never_share_a_baseline(world: World, main_with_baseline: Run) -> None:
    run = energy(world, pull_request("1"), 10.0, compare="baseline", matrix={"gpu": "h100"})
    assert "No baseline in the Actions cache yet" in run.summary
    assert run.outputs["exit-code"] == "0"


def test_a_committed_baseline_is_never_saved_to_the_cache(world: World) -> None:
    run = energy(world, push("1", "0"), 10.0, baseline="committed")
    # No committed baseline: the plugin's own message, and nothing cached.
    assert run.outputs["mode"] == "compare"
    assert not [k for k in world.cache.entries if "-baseline-" in k]


def test_a_bad_input_is_one_error_line(world: World) -> None:
    run = energy(world, push("1", "0"), 10.0, compare="sometimes")
    assert run.failed
    assert "::error title=pytest-energy::compare: 'sometimes' is not ab or baseline" in run.log
    assert run.steps["pytest"]["outcome"] == "skipped"


def _ab_available() -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_energy", "ab", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    return done.returncode == 0


@pytest.mark.skipif(not _ab_available(), reason="ab command not built yet")
def test_a_pr_is_measured_ab_against_its_fetched_base_commit(world: World) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    origin = world.tmp / "origin"
    shutil.copytree(world.project, origin / "proj")
    subprocess.run([*git, "init", "-q", "-b", "main", str(origin)], check=True)
    subprocess.run([*git, "-C", str(origin), "add", "."], check=True)
    subprocess.run([*git, "-C", str(origin), "commit", "-qm", "base"], check=True)
    base = subprocess.run(
        ["git", "-C", str(origin), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (origin / "proj" / "tests" / "test_new.py").write_text("def test_new():\n    pass\n")
    subprocess.run([*git, "-C", str(origin), "add", "."], check=True)
    subprocess.run([*git, "-C", str(origin), "commit", "-qm", "head"], check=True)
    shutil.rmtree(world.workspace)
    # A shallow clone, as actions/checkout makes: the base commit is not in it.
    subprocess.run(
        ["git", "clone", "-q", "--depth=1", f"file://{origin}", str(world.workspace)], check=True
    )
    # The CPU-time model: each side's workers measure their own processes.
    run = energy(world, pull_request(base), 10.0, **{"pytest-args": "--energy-meter=model"})
    assert run.outputs["mode"] == "ab"
    assert run.outputs["exit-code"] in {"0", "1"}, run.log
    # Judged against the fetched base commit, not a stored baseline.
    assert f"base commit {base[:7]}" in run.summary, run.summary
    assert "measured in the same job, interleaved" in run.summary
    assert not [k for k in world.cache.entries if "-baseline-" in k]


# --- the comment action ------------------------------------------------------------------


@pytest.fixture
def github_api() -> Iterator[FakeGitHub]:
    """The loopback fake GitHub of tests/test_github_comment.py, serving in a thread."""
    import threading
    from http.server import ThreadingHTTPServer

    fake = FakeGitHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), github_handler(fake))
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


def test_the_comment_code_imports_only_the_standard_library(tmp_path: Path) -> None:
    # -E -S as the action runs it: no site-packages at all. Anything beyond the
    # standard library on the comment path would fail to import here.
    from records import sample_record

    folder = tmp_path / "artifacts" / "pytest-energy-energy-0"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(sample_record().to_json(), encoding="utf-8")
    probe = (
        "import sys\n"
        "from pytest_energy.cli import main\n"
        "from pytest_energy.cli.comment_sections import render_sections\n"
        "import pytest_energy.cli.comment\n"
        "body = render_sections(__import__('pathlib').Path(sys.argv[1])).body\n"
        "assert 'Energy check failed' in body, body[:200]\n"
        "assert main(['comment', '--help']) == 0\n"
        "outside = sorted(m.split('.')[0] for m in sys.modules\n"
        "    if m.split('.')[0] not in sys.stdlib_module_names\n"
        "    and m.split('.')[0] not in ('pytest_energy', '__main__'))\n"
        "print('OUTSIDE', outside)\n"
    )
    done = subprocess.run(
        [sys.executable, "-E", "-S", "-c", probe, str(tmp_path / "artifacts")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": BARE_PATH},
    )
    assert done.returncode == 0, done.stderr
    assert "OUTSIDE []" in done.stdout


def test_the_comment_action_posts_from_the_downloaded_artifacts(
    world: World,
    main_with_baseline: Run,
    github_api: FakeGitHub,
) -> None:
    from test_github_comment import BOT, REPO, TOKEN

    regressed = energy(world, pull_request("1"), 13.0, compare="baseline")
    assert regressed.outputs["exit-code"] == "1"
    fake = github_api
    fake.add_pull(7, "f" * 40)
    job = Job(
        world.workspace, world.job().temp, world.cache, artifacts=dict(world_artifacts(world))
    )
    run = comment_job(job, fake, head_repository=REPO)
    assert not run.failed, run.log
    [posted] = fake.comments[7]
    assert posted["user"]["login"] == BOT
    assert posted["body"].startswith("<!-- pytest-energy -->")
    assert "Energy check failed" in posted["body"]
    assert TOKEN not in run.log
    assert "created the energy comment on #7" in run.log


def comment_job(job: Job, fake: FakeGitHub, head_repository: str = "", **inputs: str) -> Run:
    """The comment action in a workflow_run job after the energy run 2000 of PR head f…f."""
    from test_github_comment import REPO, TOKEN

    finished_run: dict[str, Any] = {"id": 2000, "head_sha": "f" * 40}
    if head_repository:
        finished_run["head_repository"] = {"full_name": head_repository}
    return run_action(
        COMMENT_ACTION,
        job,
        inputs={"python": sys.executable, "github-token": TOKEN, **inputs},
        github={
            "event_name": "workflow_run",
            "ref": "refs/heads/main",
            "ref_name": "main",
            "sha": "1" * 40,
            "job": "comment",
            "run_id": "3000",
            "run_attempt": "1",
            "repository": REPO,
            "event": {"workflow_run": finished_run},
        },
        extra_env={"GITHUB_API_URL": fake.base, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"},
    )


def world_artifacts(world: World) -> Iterator[tuple[str, Path]]:
    store = world.tmp
    for folder in sorted(store.glob("job*/artifact-store/*")):
        yield folder.name, folder


@pytest.mark.parametrize("when", ["never", "on-alert"])
def test_the_comment_action_respects_the_comment_input(
    world: World, github_api: FakeGitHub, when: str
) -> None:
    fake = github_api
    fake.add_pull(7, "f" * 40)
    job = world.job()
    # No artifact at all: the energy run uploaded nothing.
    run = comment_job(job, fake, comment=when)
    assert not run.failed, run.log
    assert fake.requests("POST") == []
    if when == "never":
        assert fake.seen == []
        assert "Download the results artifacts (untrusted data)" not in job.steps_run


# --- the CLI options the action relies on ------------------------------------------------


def _history(path: Path, branches_and_commits: list[tuple[str, str]], scale: float = 1.0) -> None:
    """A history with one run of the sample record per (branch, commit), growing 10 % each."""
    import dataclasses

    from records import sample_record

    from pytest_energy.storage.history import History

    base = sample_record()
    history = History(path)
    for index, (branch, commit) in enumerate(branches_and_commits):
        factor = scale * (1.1**index)
        tests = [
            dataclasses.replace(
                t,
                measurement=dataclasses.replace(
                    t.measurement, total_j=t.measurement.total_j * factor
                )
                if t.measurement
                else None,
            )
            for t in base.tests
        ]
        session = dataclasses.replace(base.session, branch=branch, commit=commit)
        history.append(dataclasses.replace(base, session=session, tests=tests))


def test_summary_charts_the_default_branch_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_calls import run, sample_results

    history = tmp_path / "history.sqlite"
    _history(history, [("main", "a" * 40), ("feature", "b" * 40), ("main", "c" * 40)])
    status, out, err = run(
        capsys, "summary", str(sample_results(tmp_path)), "--trend", str(history)
    )
    assert status == 0, err
    assert "#### Energy on main: last 2 runs" in out
    assert '    x-axis ["aaaaaaa", "ccccccc"]' in out
    # Two runs 21 % apart (1.1 ** 2): the feature branch's run is not on the line.
    assert "+21.0% from the first to the last run" in out
    assert "measured" in out.split("```mermaid")[0].rsplit("####", 1)[1]


def test_summary_escapes_a_hostile_branch_in_the_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_calls import run, sample_results

    branch = 'x"]\n```\n<img src=x>'
    history = tmp_path / "history.sqlite"
    _history(history, [(branch, "not a sha"), (branch, "a" * 40)])
    status, out, _ = run(
        capsys,
        "summary",
        str(sample_results(tmp_path)),
        "--trend",
        str(history),
        "--trend-branch",
        branch,
    )
    assert status == 0
    chart = out.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert '"run 1", "aaaaaaa"' in chart
    assert "<img" not in chart
    assert "\n```" not in chart
    assert 'title "Energy on x___' in chart
    assert "<img" not in out


def test_summary_without_a_readable_history_still_prints_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_calls import run, sample_results

    results = str(sample_results(tmp_path))
    status, out, _ = run(capsys, "summary", results, "--trend", str(tmp_path / "none.sqlite"))
    assert status == 0
    assert "Energy check failed" in out
    assert "_No energy trend yet: no history at" in out

    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    status, out, err = run(capsys, "summary", results, "--trend", str(corrupt))
    assert status == 0
    assert "Energy check failed" in out
    assert "_No energy trend: " in out
    assert err.startswith("pytest-energy: warning: no trend chart: ")
    assert err.count("\n") == 1


def test_summary_refuses_a_trend_of_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_calls import one_error_line, run, sample_results

    status, _, err = run(capsys, "summary", str(sample_results(tmp_path)), "--trend-runs", "1")
    assert status == 2
    assert "--trend-runs must be 2 or more" in one_error_line(err)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("proj", "proj/"), ("./proj/sub/", "proj/sub/"), (".", ""), ("", "")],
)
def test_annotate_puts_the_working_directory_before_each_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prefix: str, expected: str
) -> None:
    from cli_calls import run, sample_results

    status, out, _ = run(capsys, "annotate", str(sample_results(tmp_path)), "--path-prefix", prefix)
    assert status == 0
    files = re.findall(r"file=([^,]+),", out)
    assert files
    assert all(f.startswith(expected + "tests/") for f in files), files


@pytest.mark.parametrize("prefix", ["/abs", "..", "../up", "a/../../up"])
def test_annotate_refuses_a_prefix_outside_the_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prefix: str
) -> None:
    from cli_calls import one_error_line, run, sample_results

    status, _, err = run(capsys, "annotate", str(sample_results(tmp_path)), "--path-prefix", prefix)
    assert status == 2
    assert "expected a folder inside the repository" in one_error_line(err)
