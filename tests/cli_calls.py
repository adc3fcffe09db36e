"""Calling the ``pytest-energy`` CLI in-process, as the tests of its commands do."""

from __future__ import annotations

from pathlib import Path

import pytest
from records import sample_record

from pytest_energy import cli


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit status, standard output and standard error of one command."""
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def one_error_line(err: str) -> str:
    """The one error line a command prints for a user's mistake (never a traceback)."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pytest-energy: error: "), err
    assert "Traceback" not in err
    assert len(lines[0]) < 600, "a whole object quoted back would swamp the line"
    return lines[0]


def sample_results(directory: Path) -> Path:
    """``results.json`` in ``directory``, holding the golden-file record."""
    path = directory / "results.json"
    path.write_text(sample_record().to_json(), encoding="utf-8")
    return path
