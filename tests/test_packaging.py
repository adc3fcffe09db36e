"""The built wheel: templates inside, entry points, package data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = out.glob("pytest_energy-*.whl")
    return built


def test_templates_are_inside_the_wheel(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "pytest_energy/templates/report.html.j2" in names
    for template in (ROOT / "templates").iterdir():
        assert f"pytest_energy/templates/{template.name}" in names


def test_data_and_typing_marker_are_inside_the_wheel(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "pytest_energy/py.typed" in names
    assert "pytest_energy/data/grid-intensity-countries.csv" in names
    assert "pytest_energy/data/grid-intensity-cloud-regions.csv" in names
    assert "pytest_energy/schema/results.schema.json" in names


def test_entry_points_and_metadata(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    info = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
    entry_points = archive.read(info).decode()
    assert "[pytest11]\nenergy = pytest_energy.plugin" in entry_points
    assert "pytest-energy = pytest_energy.cli:main" in entry_points
    metadata = archive.read(info.replace("entry_points.txt", "METADATA")).decode()
    assert "Classifier: Framework :: Pytest" in metadata
    assert "Requires-Python: >=3.10" in metadata
    assert "Requires-Dist: pytest>=8" in metadata
    assert "Provides-Extra: nvidia" in metadata
    assert "torch" not in [
        line.split(";")[0].split(">")[0].split("Requires-Dist: ")[-1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
