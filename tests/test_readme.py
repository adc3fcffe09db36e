"""The README's two commands are what CI runs, verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _command(name: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(rf"<!-- {name} -->\n```bash\n(.+?)\n```\n<!-- /{name} -->", text, re.S)
    assert block, f"README.md has no {name} block"
    return block.group(1).strip()


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    head = text[: text.index("## What you see")]
    assert "<!-- main-command -->" in head
    assert "<!-- test-command -->" in head


def test_ci_runs_the_readme_commands_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for name in ("main-command", "test-command"):
        assert _command(name) in ci.splitlines(), f"{name} differs between README.md and .ci/run"


def test_main_command_runs_the_examples_with_reports() -> None:
    command = _command("main-command")
    assert "pytest --energy examples/" in command
    assert "--energy-json=" in command
    assert "torch==2.13.0" in command


def test_ci_fails_on_an_empty_test_run() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert '[ "$status" -eq 5 ]' in ci


def test_ci_runs_the_gate_demo_and_insists_it_fails() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for line in _command("gate-demo").splitlines():
        assert line in ci, f"{line!r} of the README's gate demo is not in .ci/run"
    assert '[ "$status" -ne 1 ]' in "\n".join(ci)
    planted = (ROOT / "examples" / "test_digits_variants.py").read_text(encoding="utf-8")
    assert "ENERGY_EXAMPLES_EXTRA_WORK" in planted
