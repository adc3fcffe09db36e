"""Fresh processes that measure benchmarks again: what they are given, and what comes back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import traces

from pytest_energy.config.settings import REPLICA_ENV, Settings
from pytest_energy.measure.replicas import Replica, kept_arguments, merge
from pytest_energy.meters import parse_meter_spec
from pytest_energy.meters.meter_set import open_meters


@pytest.mark.parametrize(
    ("args", "kept"),
    [
        (["-x", "tests/", "-q", "-k", "slow"], []),
        (["-p", "no:randomly", "-pno:cacheprovider"], ["-p", "no:randomly", "-pno:cacheprovider"]),
        (
            ["-o", "pythonpath=src", "--import-mode=importlib"],
            ["-o", "pythonpath=src", "--import-mode=importlib"],
        ),
        (["--junitxml=out.xml", "--cov=pkg", "--energy-json=r.json"], []),
        (["-c", "ci.ini", "--rootdir", "."], ["-c", "ci.ini", "--rootdir", "."]),
        (["--strict-markers", "-W", "error"], ["--strict-markers", "-W", "error"]),
    ],
)
def test_a_replica_keeps_what_decides_collection_and_drops_other_outputs(
    args: list[str], kept: list[str]
) -> None:
    assert kept_arguments(args) == kept


def test_a_replica_runs_its_parents_settings_and_writes_only_its_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = Settings(
        enabled=True,
        meter=parse_meter_spec(f"replay:{tmp_path}/t-{{process}}.json"),
        rounds=7,
        save_baseline="default",
        history=tmp_path / "h.sqlite",
        html=tmp_path / "r.html",
    )
    spec = {
        "process": 2,
        "nodeids": ["t.py::test_a"],
        "results": str(tmp_path / "p2.json"),
        "settings": parent.to_plain(),
    }
    replica = Settings.for_replica(json.dumps(spec))
    assert (replica.rounds, replica.replica, replica.replica_nodeids) == (7, 2, ("t.py::test_a",))
    assert replica.json == tmp_path / "p2.json"
    assert str(replica.meter) == str(parent.meter)
    # Its parent saves, compares, keeps the history and the reports; a replica only measures.
    assert replica.save_baseline is None
    assert replica.history is None
    assert replica.html is None
    assert replica.processes == 1
    assert replica.idle_seconds == 0
    with pytest.raises(ValueError, match=REPLICA_ENV):
        Settings.for_replica('{"process": 1}')


def test_each_process_can_play_its_own_trace(replay) -> None:
    written = replay(traces.windows((1.0, 1.0)), "t-0.json")
    replay(traces.windows((7.0, 1.0)), "t-3.json")
    # Only the file's name: the folder can hold "t-0" too (pytest's "pytest-0").
    path = written.with_name("t-{process}.json")
    spec = parse_meter_spec(f"replay:{path}")
    for process, joules in ((0, 1.0), (3, 7.0)):
        meters = open_meters(spec, rapl_root=Path("."), model_watts=1.0, process=process)
        start = meters.read()
        stop = meters.read()
        assert stop.joules["gpu:0"] - start.joules["gpu:0"] == pytest.approx(joules)


def test_merge_adds_a_replicas_own_rounds_of_passed_tests(tmp_path: Path) -> None:
    from records import run_record, sample_benchmark

    mine = run_record([sample_benchmark("t.py::test_a", [1.0, 1.1])])
    theirs = run_record(
        [
            sample_benchmark("t.py::test_a", [2.0, 2.1], reference_rounds=[9.0]),
            sample_benchmark("t.py::test_other", [5.0]),
        ]
    )
    merged = merge(mine, [Replica(1, theirs), Replica(2, None, "it crashed")], "confirm")
    (test,) = merged.tests
    assert test.benchmark is not None
    assert [(r.role, r.process) for r in test.benchmark.rounds] == [
        ("candidate", 0),
        ("candidate", 0),
        ("confirm", 1),
        ("confirm", 1),
    ]
    assert test.benchmark.by_process("confirm") == [pytest.approx([2.0, 2.1])]
