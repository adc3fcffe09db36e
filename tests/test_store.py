"""Baseline files: what a user commits, reviews in a diff, and the gate reads back."""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from records import GPU, run_record, sample_benchmark, window_test

from pytest_energy.record import (
    Quality,
    RunRecord,
    TestResult,
    VariantResult,
)
from pytest_energy.storage.baseline_file import FORMAT_VERSION, Baseline, BaselineError
from pytest_energy.storage.baselines import BaselineStore

H100 = "cpu=Xeon 8480|gpu=H100|measured"
A10 = "cpu=EPYC 7R32|gpu=A10G|measured"
REPO = Path(__file__).resolve().parents[1]


# --- factories: the shared exact builders, on an H100 machine --------------------------------


def make_record(
    tests: Sequence[TestResult],
    *,
    hardware_class: str = H100,
    cpu_model: str = "Intel Xeon Platinum 8480",
    **changes: Any,
) -> RunRecord:
    # The fingerprint's volatile GPU facts (UUID, memory in use) must never reach a baseline.
    gpu = {"name": GPU, "driver": "580.65", "uuid": "GPU-1234", "memory_used_mib": 512}
    return run_record(tests, hardware_class=hardware_class, cpu=cpu_model, gpus=[gpu], **changes)


def standard_run(scale: float = 1.0, **kwargs: Any) -> RunRecord:
    return make_record(
        [
            sample_benchmark(
                "tests/test_model.py::test_fp32", [1.0 * scale, 1.02 * scale, 0.99 * scale]
            ),
            sample_benchmark(
                "tests/test_model.py::test_int8", [0.5 * scale, 0.51 * scale, 0.49 * scale]
            ),
            window_test("tests/test_io.py::test_load", 12.5 * scale),
        ],
        **kwargs,
    )


@pytest.fixture
def store(tmp_path: Path) -> BaselineStore:
    return BaselineStore(tmp_path / ".energy")


def one_line_error(exc: pytest.ExceptionInfo[BaselineError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert message
    return message


# --- round trip and format -------------------------------------------------------------------


def test_save_then_load_round_trips_the_numbers(store: BaselineStore) -> None:
    path = store.save_run(standard_run(), "default")

    assert path == store.baselines_dir / "default.json"
    baseline = store.load("default")
    assert baseline.name == "default"
    entries = baseline.entries_for(H100)
    assert entries is not None
    assert sorted(entries) == [
        "tests/test_io.py::test_load",
        "tests/test_model.py::test_fp32",
        "tests/test_model.py::test_int8",
    ]
    fp32 = entries["tests/test_model.py::test_fp32"]
    assert fp32.samples == pytest.approx([1.0, 1.02, 0.99])
    assert fp32.median == pytest.approx(1.0)
    assert (fp32.unit, fp32.units_per_call, fp32.calls_per_round, fp32.n) == ("sample", 8.0, 10, 3)
    assert (fp32.method, fp32.meters) == ("measured", ["nvml"])
    assert fp32.saved_at == "2025-03-01T12:00:05+00:00"
    assert fp32.commit == "1a2b3c4"
    assert fp32.reason is None
    plain = entries["tests/test_io.py::test_load"]
    assert (plain.unit, plain.samples, plain.n, plain.calls_per_round) == ("test", [12.5], 1, 1)
    machine = baseline.classes[H100].machine
    assert machine == {
        "cpu_model": "Intel Xeon Platinum 8480",
        "gpus": [{"driver": "580.65", "name": "NVIDIA H100 80GB HBM3"}],
        "method": "measured",
        "meters": ["nvml"],
    }


def test_commit_argument_overrides_the_session_commit(store: BaselineStore) -> None:
    store.save_run(standard_run(), "default", commit="feedbee")
    entries = store.load("default").entries_for(H100)
    assert entries is not None
    assert {e.commit for e in entries.values()} == {"feedbee"}


def test_file_is_sorted_pretty_json_with_six_significant_digits(store: BaselineStore) -> None:
    record = make_record(
        [sample_benchmark("t.py::test_a", [1.23456789, 0.000123456789, 98765.4321])]
    )
    text = store.save_run(record, "default").read_text(encoding="utf-8")

    data = json.loads(text)
    assert data["pytest_energy_baseline"] == FORMAT_VERSION
    assert list(data) == sorted(data)
    assert text.endswith("}\n")
    assert not text.endswith("\n\n")
    entry = data["classes"][H100]["tests"]["t.py::test_a"]
    assert list(entry) == sorted(entry)
    assert entry["samples"] == [1.23457, 0.000123457, 98765.4]
    # A list of numbers is one line, like a row of a table, so a changed round is one changed line.
    assert '"samples": [1.23457, 0.000123457, 98765.4],' in text
    assert '      "tests": {\n        "t.py::test_a": {\n' in text


def test_saving_the_same_run_twice_gives_identical_bytes(tmp_path: Path) -> None:
    first = BaselineStore(tmp_path / "one").save_run(standard_run(), "default")
    second = BaselineStore(tmp_path / "two").save_run(standard_run(), "default")
    assert first.read_bytes() == second.read_bytes()

    again = BaselineStore(tmp_path / "one").save_run(standard_run(), "default", replace=True)
    assert again.read_bytes() == second.read_bytes()


def block_lines(text: str, nodeid: str) -> range:
    """Line numbers of a test's block: from its key to its closing brace."""
    lines = text.splitlines()
    start = lines.index(f"        {json.dumps(nodeid)}: {{")
    end = next(i for i in range(start, len(lines)) if lines[i] in ("        }", "        },"))
    return range(start, end + 1)


def test_updating_one_test_changes_only_its_block(store: BaselineStore) -> None:
    path = store.save_run(standard_run(), "default")
    before = path.read_text(encoding="utf-8")

    slower = standard_run(scale=1.3, finished="2025-03-09T08:00:00+00:00", commit="5e6f7a8")
    store.update_entries(
        slower, "default", ["tests/test_model.py::test_int8"], reason="new tokenizer: +30% accepted"
    )
    after = path.read_text(encoding="utf-8")

    assert before != after
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    changes = [(j1, j2) for tag, _, _, j1, j2 in matcher.get_opcodes() if tag != "equal"]
    block = block_lines(after, "tests/test_model.py::test_int8")
    assert changes
    assert all(block.start <= j1 and j2 <= block.stop for j1, j2 in changes)
    entry = json.loads(after)["classes"][H100]["tests"]["tests/test_model.py::test_int8"]
    assert entry["reason"] == "new tokenizer: +30% accepted"
    assert entry["commit"] == "5e6f7a8"
    assert entry["saved_at"] == "2025-03-09T08:00:00+00:00"
    assert entry["median"] == pytest.approx(0.65)
    untouched = json.loads(before)["classes"][H100]["tests"]
    for nodeid in ("tests/test_model.py::test_fp32", "tests/test_io.py::test_load"):
        assert json.loads(after)["classes"][H100]["tests"][nodeid] == untouched[nodeid]


def test_update_keeps_unknown_fields_of_other_entries(store: BaselineStore) -> None:
    """A file written by a later 1.x release (extra keys) is not stripped by an update."""
    path = store.save_run(standard_run(), "default")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["classes"][H100]["tests"]["tests/test_io.py::test_load"]["note"] = "hand-written"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    store.update_entries(standard_run(2.0), "default", ["tests/test_model.py::test_fp32"], "why")

    kept = json.loads(path.read_text(encoding="utf-8"))["classes"][H100]["tests"]
    assert kept["tests/test_io.py::test_load"]["note"] == "hand-written"


# --- what a run contributes ------------------------------------------------------------------


def test_only_passed_tests_with_a_usable_figure_are_saved(store: BaselineStore) -> None:
    record = make_record(
        [
            window_test("t.py::test_ok", 3.0),
            window_test("t.py::test_failed", 3.0, outcome="failed"),
            window_test("t.py::test_meter_failed", 3.0, flags=["meter_failed"]),
            window_test("t.py::test_shared", 3.0, flags=["concurrent"]),
            TestResult("t.py::test_none", "t.py", 1, "passed", "call", None),
        ]
    )
    store.save_run(record, "default")

    entries = store.load("default").entries_for(H100)
    assert entries is not None
    assert sorted(entries) == ["t.py::test_ok", "t.py::test_shared"]
    # A tainted number is kept, with its flag, so the gate can decide what it is worth.
    assert entries["t.py::test_shared"].flags == ["concurrent"]
    assert entries["t.py::test_ok"].flags == []


def test_a_run_without_usable_tests_saves_nothing(store: BaselineStore) -> None:
    record = make_record([window_test("t.py::test_failed", 3.0, outcome="failed")])
    with pytest.raises(BaselineError) as exc:
        store.save_run(record, "default")
    assert "nothing to save" in one_line_error(exc)
    assert not store.directory.exists()


def test_variants_keep_family_quality_and_only_their_own_rounds(store: BaselineStore) -> None:
    record = make_record(
        [
            sample_benchmark(
                "tests/test_bert.py::test_energy[int8]",
                [0.4, 0.42],
                variant=VariantResult(
                    family="bert",
                    reference="fp32",
                    variant="int8",
                    unit="sample",
                    method="measured",
                    energy_per_unit=0.41,
                    energy_ratio=0.45,
                    ci_low=0.44,
                    ci_high=0.46,
                    verdict="pass",
                    line="int8: 0.45x",
                ),
                quality=[Quality("accuracy", 0.912345678)],
                reference_rounds=[0.9, 0.91],
            )
        ]
    )
    store.save_run(record, "default")

    entries = store.load("default").entries_for(H100)
    assert entries is not None
    entry = entries["tests/test_bert.py::test_energy[int8]"]
    assert (entry.family, entry.variant) == ("bert", "int8")
    assert entry.samples == pytest.approx([0.4, 0.42])
    assert entry.quality == {"accuracy": {"value": 0.912346, "higher_is_better": True}}


def test_energy_per_unit_falls_back_to_the_summary_without_rounds() -> None:
    test = sample_benchmark("t.py::test_a", [2.0, 4.0])
    per_unit = test.per_unit_samples()
    assert per_unit is not None
    assert per_unit[0] == "sample"
    assert per_unit[1] == pytest.approx([2.0, 4.0])
    assert test.benchmark is not None
    bare = dataclasses.replace(test, benchmark=dataclasses.replace(test.benchmark, rounds=[]))
    assert bare.per_unit_samples() == ("sample", [3.0])


# --- hardware classes ------------------------------------------------------------------------


def test_hardware_classes_are_kept_apart(store: BaselineStore) -> None:
    store.save_run(standard_run(), "default")
    store.save_run(
        standard_run(scale=3.0, hardware_class=A10, cpu_model="AMD EPYC 7R32"), "default"
    )

    baseline = store.load("default")
    assert baseline.hardware_classes == sorted([H100, A10])
    h100, a10 = baseline.entries_for(H100), baseline.entries_for(A10)
    assert h100 is not None
    assert a10 is not None
    assert h100["tests/test_io.py::test_load"].median == pytest.approx(12.5)
    assert a10["tests/test_io.py::test_load"].median == pytest.approx(37.5)
    assert baseline.classes[A10].machine["cpu_model"] == "AMD EPYC 7R32"
    assert baseline.unavailable_reason(H100) is None


def test_a_baseline_for_other_hardware_only_says_which(store: BaselineStore) -> None:
    store.save_run(standard_run(), "default")
    store.save_run(standard_run(hardware_class=A10), "default")

    baseline = store.load("default")
    assert baseline.entries_for("cpu=i7|gpu=none|modelled") is None
    reason = baseline.unavailable_reason("cpu=i7|gpu=none|modelled")
    assert reason is not None
    assert "\n" not in reason
    assert repr(H100) in reason
    assert repr(A10) in reason
    assert "'cpu=i7|gpu=none|modelled'" in reason


def test_saving_another_class_leaves_the_first_class_bytes_alone(store: BaselineStore) -> None:
    path = store.save_run(standard_run(), "default")
    h100_block = json.dumps(json.loads(path.read_text(encoding="utf-8"))["classes"][H100])

    store.save_run(standard_run(scale=2.0, hardware_class=A10), "default")

    data = json.loads(path.read_text(encoding="utf-8"))
    assert json.dumps(data["classes"][H100]) == h100_block


# --- overwrite rules -------------------------------------------------------------------------


def test_saving_over_existing_entries_is_refused_without_replace(store: BaselineStore) -> None:
    path = store.save_run(standard_run(), "default")
    before = path.read_bytes()

    with pytest.raises(BaselineError) as exc:
        store.save_run(standard_run(scale=2.0), "default")

    message = one_line_error(exc)
    assert "already has entries for 3 of these tests" in message
    assert "--energy-update-baseline" in message
    assert path.read_bytes() == before


def test_new_tests_are_added_to_an_existing_class(store: BaselineStore) -> None:
    path = store.save_run(standard_run(), "default")
    before = json.loads(path.read_text(encoding="utf-8"))

    store.save_run(make_record([window_test("tests/test_new.py::test_it", 4.0)]), "default")

    tests = json.loads(path.read_text(encoding="utf-8"))["classes"][H100]["tests"]
    assert tests["tests/test_new.py::test_it"]["median"] == 4.0
    for nodeid, entry in before["classes"][H100]["tests"].items():
        assert tests[nodeid] == entry


def test_replace_rewrites_this_runs_tests_and_keeps_the_rest(store: BaselineStore) -> None:
    store.save_run(standard_run(), "default")
    subset = make_record([window_test("tests/test_io.py::test_load", 20.0)])

    store.save_run(subset, "default", replace=True, reason="faster disk")

    entries = store.load("default").entries_for(H100)
    assert entries is not None
    assert entries["tests/test_io.py::test_load"].median == 20.0
    assert entries["tests/test_io.py::test_load"].reason == "faster disk"
    assert entries["tests/test_model.py::test_fp32"].median == pytest.approx(1.0)


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
def test_update_requires_a_reason(store: BaselineStore, reason: str) -> None:
    path = store.save_run(standard_run(), "default")
    before = path.read_bytes()

    with pytest.raises(BaselineError) as exc:
        store.update_entries(standard_run(2.0), "default", ["tests/test_io.py::test_load"], reason)

    assert "needs a reason" in one_line_error(exc)
    assert path.read_bytes() == before


def test_a_multi_line_reason_is_stored_on_one_line(store: BaselineStore) -> None:
    store.save_run(standard_run(), "default")
    store.update_entries(
        standard_run(2.0), "default", ["tests/test_io.py::test_load"], "bigger fixture\n  see #42"
    )
    entries = store.load("default").entries_for(H100)
    assert entries is not None
    assert entries["tests/test_io.py::test_load"].reason == "bigger fixture see #42"


@pytest.mark.parametrize(
    ("nodeids", "expected"),
    [
        (["tests/test_gone.py::test_x"], "not in this run"),
        (["t.py::test_failed"], "no usable energy figure in this run (outcome failed"),
        ([], "no tests were named"),
    ],
)
def test_update_refuses_tests_without_a_figure(
    store: BaselineStore, nodeids: list[str], expected: str
) -> None:
    path = store.save_run(standard_run(), "default")
    before = path.read_bytes()
    record = make_record([window_test("t.py::test_failed", 1.0, outcome="failed")])

    with pytest.raises(BaselineError) as exc:
        store.update_entries(record, "default", nodeids, "because")

    assert expected in one_line_error(exc)
    assert path.read_bytes() == before


def test_update_of_a_missing_baseline_lists_the_available_ones(store: BaselineStore) -> None:
    store.save_run(standard_run(), "main")
    with pytest.raises(BaselineError) as exc:
        store.update_entries(standard_run(), "mian", ["tests/test_io.py::test_load"], "typo")
    assert "no baseline named 'mian'" in one_line_error(exc)
    assert "(available: main)" in str(exc.value)
    assert not store.resolve("mian").exists()


# --- names and paths -------------------------------------------------------------------------


def test_resolve_names_and_paths(store: BaselineStore) -> None:
    assert store.resolve("default") == store.directory / "baselines" / "default.json"
    assert store.resolve("gpu-h100_v2.1") == store.directory / "baselines" / "gpu-h100_v2.1.json"
    assert store.resolve("ci/energy.json") == Path("ci/energy.json")
    assert store.resolve("energy.json") == Path("energy.json")
    assert store.resolve("../other/base") == Path("../other/base")


@pytest.mark.parametrize("name", ["", ".hidden", "-rf", "a b", "x:y"])
def test_resolve_rejects_names_that_are_not_file_names(store: BaselineStore, name: str) -> None:
    with pytest.raises(BaselineError) as exc:
        store.resolve(name)
    assert "invalid baseline name" in one_line_error(exc)


def test_a_baseline_can_live_at_an_explicit_path(tmp_path: Path, store: BaselineStore) -> None:
    target = tmp_path / "ci" / "gpu-baseline.json"
    path = store.save_run(standard_run(), str(target))

    assert path == target
    assert store.load(str(target)).name == "gpu-baseline"
    assert store.load(target).entries_for(H100) is not None
    # An explicit path outside the store creates no store folder.
    assert not store.directory.exists()


def test_names_lists_saved_baselines(store: BaselineStore) -> None:
    assert store.names() == []
    store.save_run(standard_run(), "main")
    store.save_run(standard_run(), "default")
    assert store.names() == ["default", "main"]


# --- the folder's .gitignore -----------------------------------------------------------------


def test_creating_the_folder_writes_a_gitignore_for_local_files(store: BaselineStore) -> None:
    store.save_run(standard_run(), "default")

    lines = (store.directory / ".gitignore").read_text(encoding="utf-8").splitlines()
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert "history.sqlite*" in patterns
    assert not any("baseline" in p or p in ("*", "*.json") for p in patterns)


def test_git_commits_baselines_and_ignores_the_local_files(
    store: BaselineStore, tmp_path: Path
) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not available")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, capture_output=True)
    store.save_run(standard_run(), "default")
    local = [
        ".energy/history.sqlite",
        ".energy/history.sqlite-wal",
        ".energy/baselines/.default.json.lock",
        ".energy/baselines/.default.json.x1.tmp",
    ]
    checked = subprocess.run(
        ["git", "check-ignore", "--no-index", *local, ".energy/baselines/default.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert sorted(checked.stdout.split()) == sorted(local)


def test_an_existing_folder_gets_no_gitignore_behind_the_users_back(
    store: BaselineStore,
) -> None:
    store.directory.mkdir()
    store.save_run(standard_run(), "default")
    assert not (store.directory / ".gitignore").exists()


# --- bad files: one line, file untouched -----------------------------------------------------


def valid_text() -> str:
    return json.dumps(
        {
            "pytest_energy_baseline": 1,
            "name": "default",
            "classes": {
                H100: {
                    "machine": {},
                    "tests": {
                        "t.py::test_a": {
                            "method": "measured",
                            "meters": ["nvml"],
                            "unit": "test",
                            "units_per_call": 1.0,
                            "samples": [1.0],
                            "median": 1.0,
                            "n": 1,
                            "calls_per_round": 1,
                            "saved_at": "2025-01-01T00:00:00+00:00",
                        }
                    },
                }
            },
        },
        indent=2,
    )


BAD_FILES = {
    "corrupt": ("{ this is not json", "not valid JSON"),
    "truncated": (valid_text()[:-40], "truncated"),
    "empty": ("", "truncated"),
    "not an object": ("[1, 2]", "must hold a JSON object"),
    "not a baseline": ('{"schema_version": 1, "session": {}}', "not a pytest-energy baseline"),
    "unknown version": (
        valid_text().replace('"pytest_energy_baseline": 1', '"pytest_energy_baseline": 2'),
        "format version 2; this pytest-energy reads version 1",
    ),
    "version as string": (
        valid_text().replace('"pytest_energy_baseline": 1', '"pytest_energy_baseline": "1"'),
        "format version '1'",
    ),
    "classes not an object": (
        valid_text().replace(f'"{H100}": {{', '"x": 1, "y": {', 1),
        "classes['x'] must be an object",
    ),
    "samples not numbers": (
        valid_text().replace('"samples": [\n', '"samples": ["a", \n'),
        "samples must be a non-empty list of numbers",
    ),
    "NaN sample": (
        valid_text().replace('"samples": [\n', '"samples": [NaN, \n'),
        "NaN is not allowed",
    ),
    "missing unit": (valid_text().replace('"unit": "test",', ""), ".unit must be str"),
    "bool as number": (valid_text().replace('"n": 1', '"n": true'), ".n must be int"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_baseline_is_one_line_and_never_overwritten(store: BaselineStore, case: str) -> None:
    text, expected = BAD_FILES[case]
    path = store.resolve("default")
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    before = path.read_bytes()

    for attempt in (
        lambda: store.load("default"),
        lambda: store.save_run(standard_run(), "default"),
        lambda: store.save_run(standard_run(), "default", replace=True),
        lambda: store.update_entries(
            standard_run(), "default", ["tests/test_io.py::test_load"], "try to repair"
        ),
    ):
        with pytest.raises(BaselineError) as exc:
            attempt()
        assert expected in one_line_error(exc)
        assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [".default.json.lock", "default.json"]


def test_the_valid_text_used_above_is_valid(store: BaselineStore) -> None:
    path = store.resolve("default")
    path.parent.mkdir(parents=True)
    path.write_text(valid_text(), encoding="utf-8")
    assert isinstance(store.load("default"), Baseline)


def test_missing_baseline_names_the_available_ones(store: BaselineStore) -> None:
    store.save_run(standard_run(), "main")
    store.save_run(standard_run(), "nightly")

    with pytest.raises(BaselineError) as exc:
        store.load("x")

    assert one_line_error(exc) == (
        f"no baseline named 'x' in {store.baselines_dir} (available: main, nightly)"
    )


def test_missing_baseline_in_an_empty_store(store: BaselineStore) -> None:
    with pytest.raises(BaselineError) as exc:
        store.load("default")
    assert "(available: none saved yet)" in one_line_error(exc)


def test_missing_baseline_path(store: BaselineStore, tmp_path: Path) -> None:
    with pytest.raises(BaselineError) as exc:
        store.load(str(tmp_path / "nope.json"))
    assert one_line_error(exc) == f"baseline file {tmp_path / 'nope.json'} does not exist"


def test_a_directory_instead_of_a_file(store: BaselineStore) -> None:
    store.resolve("default").mkdir(parents=True)
    with pytest.raises(BaselineError) as exc:
        store.load("default")
    assert "cannot read baseline file" in one_line_error(exc)


# --- concurrent writers ----------------------------------------------------------------------

WRITER = """
import sys
from pathlib import Path
from pytest_energy import record as results
from pytest_energy.storage.baselines import BaselineStore

record_path, directory, worker, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
record = results.load(Path(record_path))
store = BaselineStore(Path(directory))
nodeid = f"tests/test_w.py::test_{worker}"
for i in range(rounds):
    store.update_entries(record, "default", [nodeid], reason=f"worker {worker} update {i}")
    store.save_run(record, "default", replace=True)
"""


def test_concurrent_writers_leave_a_valid_file_and_lose_no_update(
    store: BaselineStore, tmp_path: Path
) -> None:
    workers, rounds = 4, 15
    record = make_record(
        [window_test(f"tests/test_w.py::test_{w}", 1.0 + w) for w in range(workers)]
        + [window_test("tests/test_w.py::test_untouched", 9.0)]
    )
    record_path = tmp_path / "record.json"
    record_path.write_text(record.to_json(), encoding="utf-8")
    path = store.save_run(record, "default")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}

    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(record_path),
                str(store.directory),
                str(w),
                str(rounds),
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    errors = [p.communicate(timeout=300)[1] for p in processes]

    assert [p.returncode for p in processes] == [0] * workers, errors
    baseline = store.load("default")
    entries = baseline.entries_for(H100)
    assert entries is not None
    assert len(entries) == workers + 1
    assert entries["tests/test_w.py::test_untouched"].median == 9.0
    assert sorted(p.name for p in path.parent.iterdir()) == [".default.json.lock", "default.json"]
    # Saving the same run over and over converges on the bytes of a single save.
    fresh = BaselineStore(tmp_path / "fresh").save_run(record, "default")
    assert path.read_bytes() == fresh.read_bytes()


def test_concurrent_updates_of_different_tests_all_land(
    store: BaselineStore, tmp_path: Path
) -> None:
    """Without the lock, two read-modify-writes interleave and one update is lost."""
    workers, rounds = 4, 15
    record = make_record(
        [window_test(f"tests/test_w.py::test_{w}", 1.0 + w) for w in range(workers)]
    )
    record_path = tmp_path / "record.json"
    record_path.write_text(record.to_json(), encoding="utf-8")
    store.save_run(record, "default")
    only_updates = WRITER.replace('    store.save_run(record, "default", replace=True)\n', "")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}

    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                only_updates,
                str(record_path),
                str(store.directory),
                str(w),
                str(rounds),
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    errors = [p.communicate(timeout=300)[1] for p in processes]

    assert [p.returncode for p in processes] == [0] * workers, errors
    entries = store.load("default").entries_for(H100)
    assert entries is not None
    assert {nodeid: e.reason for nodeid, e in entries.items()} == {
        f"tests/test_w.py::test_{w}": f"worker {w} update {rounds - 1}" for w in range(workers)
    }


def test_a_save_refreshes_the_machine_but_an_update_does_not(store: BaselineStore) -> None:
    path = store.save_run(standard_run(), "default")
    newer = dataclasses.replace(
        standard_run(),
        session=dataclasses.replace(
            standard_run().session,
            machine=dataclasses.replace(
                standard_run().session.machine,
                gpus=[{"name": "NVIDIA H100 80GB HBM3", "driver": "590.10"}],
            ),
        ),
    )

    store.update_entries(newer, "default", ["tests/test_io.py::test_load"], "driver bump")
    assert store.load("default").classes[H100].machine["gpus"][0]["driver"] == "580.65"

    store.save_run(newer, "default", replace=True)
    assert store.load("default").classes[H100].machine["gpus"][0]["driver"] == "590.10"
    assert path.read_text(encoding="utf-8").count('"machine"') == 1
