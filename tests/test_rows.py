"""Plain tests' results kept as rows (``pytest_energy.measure.rows``), issue 16.

A row stands for a record: the session's results, files and reports must be the same
with rows as without them, and a row's line in the results file must be its record's.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
import traces

from pytest_energy.measure import rows as rows_module
from pytest_energy.measure.recorder import SessionRecorder
from pytest_energy.measure.rows import RowShape
from pytest_energy.meters.model import ModelMeter
from pytest_energy.record import Carbon, Measurement, TestResult, load
from pytest_energy.record_lines import appended_lines, encode_test
from pytest_energy.storage.history import History
from pytest_energy.storage.history_schema import record_json_text

pytest_plugins = ("pytester",)

#: Every kind of outcome a plain test can have, a budget (a record, not a row), and node
#: ids that need escaping in JSON, or that a format string would read (%, braces).
INNER_TESTS = """
import pytest

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown fails")

def test_pass():
    pass

def test_fail():
    assert False

def test_skip_in_body():
    pytest.skip("not here")

@pytest.mark.skip(reason="never")
def test_skip_marked():
    pass

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False

def test_teardown_error(broken_teardown):
    pass

@pytest.mark.energy(max_joules=1e9)
def test_budget():
    pass

@pytest.mark.parametrize("n", ["\\u00e9\\u2603", "%s%%", 'q"uote\\\\', "{b}{{"])
def test_param(n):
    pass
"""


def _trace(readings: int = 80) -> dict[str, object]:
    """Counters that rise by uneven amounts at uneven times: idle before, the tests, idle after."""
    rng = random.Random(16)
    energies, times, counter, clock = [], [], 1000.0, 0.0
    for _ in range(readings):
        energies.append(counter)
        times.append(clock)
        counter += rng.uniform(0.1, 40.0) / 3.0
        clock += rng.uniform(0.3, 2.0) / 7.0
    return traces.trace(energies, times=times, domain="gpu:0")


def _run(pytester: pytest.Pytester, trace: Path, name: str) -> pytest.RunResult:
    return pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{trace}",
        f"--energy-json={name}.json",
        f"--energy-history={name}.sqlite",
        "--energy-top=20",
    )


def _energy_section(result: pytest.RunResult) -> list[str]:
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "= energy =" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    return [line for line in lines[start:end] if not line.startswith(("results:", "history:"))]


def _test_lines(results: Path) -> list[str]:
    """The tests' lines of a results file, a test a line."""
    return [line for line in results.read_text().splitlines() if "nodeid" in line]


def _history_test_lines(history: Path) -> list[str]:
    """The tests' lines of the history's copy of its one run, as it stores the text."""
    with sqlite3.connect(history) as db:
        ((stored,),) = db.execute("SELECT record FROM runs").fetchall()
    return [line for line in record_json_text(stored).splitlines() if "nodeid" in line]


def test_a_session_with_rows_is_the_session_with_records(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_kinds=INNER_TESTS)
    trace = traces.write(pytester.path / "trace.json", _trace())
    with_rows = _run(pytester, trace, "rows")
    # Without a results file, the history's copy writes the rows' lines from the template.
    unfiled = pytester.runpytest(
        "--energy", f"--energy-meter=replay:{trace}", "--energy-history=unfiled.sqlite"
    )
    made: list[str] = []
    real_row = RowShape.row

    def count(shape: RowShape, nodeid: str, *args: object) -> object:
        made.append(nodeid)
        return real_row(shape, nodeid, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(RowShape, "row", count)
    _run(pytester, trace, "counted")
    monkeypatch.setattr(RowShape, "row", lambda *args: None)
    without = _run(pytester, trace, "records")

    outcomes = {"passed": 7, "failed": 1, "skipped": 2, "xfailed": 1, "errors": 1}
    with_rows.assert_outcomes(**outcomes)
    unfiled.assert_outcomes(**outcomes)
    without.assert_outcomes(**outcomes)
    # Every measured test but the one with a budget was a row.
    assert len(made) == 9
    assert not any("test_budget" in nodeid for nodeid in made)

    rows, records = load(pytester.path / "rows.json"), load(pytester.path / "records.json")
    assert rows.tests == records.tests
    assert rows.session.totals == records.session.totals
    assert any(t.net_j is not None for t in rows.tests)  # idle measured: net figures too
    # The files hold the same lines, a test a line.
    text = _test_lines(pytester.path / "rows.json")
    assert text == _test_lines(pytester.path / "records.json")
    assert len(text) == 10
    assert History(pytester.path / "rows.sqlite").record(1).tests == rows.tests
    assert _history_test_lines(pytester.path / "records.sqlite") == text
    assert _history_test_lines(pytester.path / "unfiled.sqlite") == text
    assert _energy_section(with_rows) == _energy_section(without)


#: The model meter made deterministic: CPU time and the clock advance by fixed steps at
#: each read, so that two sessions read the same numbers in the same order. The steps
#: give windows that are long and short (under 10 periods of 10 ms), with and without
#: CPU time: every flag a model window can get.
DETERMINISTIC_MODEL = """
import itertools
from pytest_energy.meters import model

_cpu_steps = itertools.cycle([0.0, 0.004, 0.25, 0.0, 0.03, 0.0])
_clock_steps = itertools.cycle([0.01, 0.2, 0.05, 0.5, 0.002])
_cpu, _clock = [100.0], [5000.0]

def _cpu_seconds():
    _cpu[0] += next(_cpu_steps)
    return _cpu[0]

def _time():
    _clock[0] += next(_clock_steps)
    return _clock[0]

model.process_cpu_seconds = _cpu_seconds
model.clock = _time
"""


def test_the_model_meters_windows_read_as_edges_are_the_windows_read_as_records(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the model meter alone, a plain test's window is two (time, joules) edges and
    # its row is written from their numbers (SessionRecorder.plain_meter). The session
    # must be the one the general path (readings, window, measurement) gives.
    pytester.makeconftest(DETERMINISTIC_MODEL)
    pytester.makepyfile(test_kinds=INNER_TESTS)

    def run(name: str) -> pytest.RunResult:
        return pytester.runpytest_inprocess(
            "--energy",
            "--energy-meter=model",
            "--energy-embodied=server",
            f"--energy-json={name}.json",
            f"--energy-history={name}.sqlite",
            "--energy-top=20",
            "-p",
            "no:randomly",
        )

    read: list[int] = []
    real_edge = ModelMeter.edge

    def edge(meter: ModelMeter) -> tuple[float, float]:
        read.append(1)
        return real_edge(meter)

    with monkeypatch.context() as patch:  # not undo(): pytester's own patches stay
        patch.setattr(ModelMeter, "edge", edge)
        patch.setattr(ModelMeter, "read", lambda meter: pytest.fail("read a Reading"))
        edges = run("edges")
    monkeypatch.setattr(SessionRecorder, "plain_meter", lambda recorder: None)
    windows = run("windows")

    outcomes = {"passed": 7, "failed": 1, "skipped": 2, "xfailed": 1, "errors": 1}
    edges.assert_outcomes(**outcomes)
    windows.assert_outcomes(**outcomes)
    assert len(read) == 2 * 10  # every measured window, the budgeted test's too
    with_edges, with_windows = (
        load(pytester.path / "edges.json"),
        load(pytester.path / "windows.json"),
    )
    assert with_edges.tests == with_windows.tests
    assert with_edges.session.totals == with_windows.session.totals
    flags = {tuple(t.flags) for t in with_edges.tests if t.measurement}
    assert flags == {(), ("below_resolution",), ("uncounted",)}
    assert all(t.carbon and t.carbon.embodied_grams for t in with_edges.tests if t.measurement)
    budget = next(t for t in with_edges.tests if "test_budget" in t.nodeid)
    assert budget.budget  # a record, its measurement made from the edges
    assert budget.budget[0].limit == 1e9
    assert _test_lines(pytester.path / "edges.json") == _test_lines(pytester.path / "windows.json")
    assert History(pytester.path / "edges.sqlite").record(1).tests == with_edges.tests
    assert _energy_section(edges) == _energy_section(windows)


def test_plain_tests_results_make_the_garbage_collector_run_no_more_than_a_plain_run(
    pytester: pytest.Pytester,
) -> None:
    # What the rows are for: results that live to the end of the session without making
    # the collector run more often than in a plain run. It runs a young collection every
    # 700 more container objects alive, so what counts is the net number the test loop
    # adds (counted with the collector off; records were 4 a test).
    pytester.makeconftest(
        """
        import gc
        import pytest

        @pytest.hookimpl(wrapper=True, tryfirst=True)
        def pytest_runtestloop(session):
            gc.collect()
            gc.disable()
            before = gc.get_count()[0]
            try:
                return (yield)
            finally:
                print(f"NET {gc.get_count()[0] - before} NET")
                gc.enable()
        """
    )

    def net(tests: int, *args: str) -> int:
        pytester.makepyfile(
            test_many=f"import pytest\n\n@pytest.mark.parametrize('n', range({tests}))\n"
            "def test_n(n): pass\n"
        )
        result = pytester.runpytest(*args, "-s", "-p", "no:randomly")
        result.assert_outcomes(passed=tests)
        (line,) = [line for line in result.stdout.lines if "NET " in line]
        return int(line.split("NET ")[1].split()[0])  # the count between the markers

    energy = ("--energy", "--energy-meter=model", "--energy-json=results.json")
    # Per test: the difference between 400 and 200 tests, so that what a session
    # allocates once (its checkpoint, its line template) does not count.
    plain = net(400, "-p", "no:energy") - net(200, "-p", "no:energy")
    measured = net(400, *energy) - net(200, *energy)
    assert measured - plain < 200 / 4
    assert len(load(pytester.path / "results.json").tests) == 200


def _carbon_of(grams: float, embodied: float | None) -> Carbon:
    return Carbon(
        grams=grams,
        intensity_g_per_kwh=472.94,
        pue=1.25,
        source="100% source (lifecycle)",
        year=2024,
        region="WORLD",
        embodied_grams=embodied,
    )


def _number(rng: random.Random) -> float:
    special = [0.0, -0.0, 5e-324, 1e308, -1e308, math.inf, -math.inf, math.nan, 1 / 3, 0.1]
    if rng.random() < 0.15:
        return rng.choice(special)
    return rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)


@pytest.mark.parametrize("names", [("cpu",), ("rapl:package", "nvml:gpu0")])
def test_a_rows_line_is_its_records_line(names: tuple[str, ...]) -> None:
    meters = ["model"] if len(names) == 1 else ["rapl", "nvml"]
    shape = RowShape("call", "measured", meters, _carbon_of, [])
    flag_lists: list[list[str]] = [["below_resolution"], [], ["concurrent", "wrapped"]]
    nodeids = ["t.py::a[\u00e9\u2603]", 'x%s%%::y["q\\"]', "new\nline", ""]
    rng = random.Random(1)
    for _ in range(3000):
        measurement = Measurement(
            seconds=_number(rng),
            joules={name: _number(rng) for name in names},
            total_j=_number(rng),
            method="measured",
            meters=meters,
            flags=rng.choice(flag_lists),
        )
        row = shape.row(
            rng.choice(nodeids),
            "t.py",
            rng.choice([None, 0, 7, 10**20]),
            rng.choice(["passed", "failed", "skipped", "error"]),
            measurement,
            rng.choice([None, _number(rng)]),
            _number(rng),
            rng.choice([None, _number(rng)]),
        )
        assert row is not None
        record = shape.record(row)
        # The same float objects: equal even when NaN (identity before ==).
        assert record.measurement == measurement
        assert shape.line(row) == encode_test(record)
        json.loads(shape.line(row))  # one valid JSON document (non-finite written as null)


def test_expanded_rows_give_their_lines_for_these_very_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The history's copy of a run without a results file reads the tests' text from
    # RowShape.expand's source: the rows' lines from the template, a record's encoded.
    shape = RowShape("call", "modelled", ["model"], _carbon_of, [])
    rng = random.Random(3)
    no_flags: list[str] = []  # shared, as the windows' flag lists are

    def row(nodeid: str) -> int:
        joules = rng.uniform(0, 5)  # finite: a non-finite one's line comes from its record
        measurement = Measurement(
            seconds=rng.uniform(0, 1),
            joules={"cpu": joules},
            total_j=joules,
            method="modelled",
            meters=shape._meters,
            flags=no_flags,
        )
        made = shape.row(nodeid, "t.py", 3, "passed", measurement, None, rng.random(), None)
        assert made is not None
        return made

    kept = shape.record(row("t.py::kept"))  # a result kept as a record: a budget's
    entries: list[TestResult | int] = [row(f"t.py::r{n}") for n in range(40)]
    entries[7:7] = [kept]
    shape.line(0)  # the session's line template is made (from a record) on first use
    written = shape.expand(entries)
    records: list[TestResult] = [e for e in entries if isinstance(e, TestResult)]
    assert len(records) == 41

    encoded: list[object] = []

    def encode(test: TestResult) -> str:
        encoded.append(test)
        return encode_test(test)

    monkeypatch.setattr(rows_module, "encode_test", encode)
    text = written(list(records))  # another list of the same records will do
    assert text is not None
    assert "".join(text) == appended_lines(records, 0)
    assert encoded == [kept]  # every other line came from its row
    # Any other tests than these records: no text, the caller encodes them.
    assert written(records[:-1]) is None
    assert written([*records[:-1], replace(records[-1])]) is None  # equal, not the same

    # A few rows and no template yet: encoding their records is cheaper than making it.
    few = RowShape("call", "modelled", ["model"], _carbon_of, [])
    shape = few  # row() above adds to `shape`
    assert few.expand([row("t.py::a"), row("t.py::b")]) is None
    assert few.expand([row(f"t.py::r{n}") for n in range(64)]) is not None


def test_a_big_session_without_a_results_file_stores_the_rows_lines(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # End to end: the history's copy of a run without a results file is written from the
    # rows' lines, the same text as from the records, without encoding a record.
    pytester.makepyfile(
        test_many="import pytest\n\n"
        "@pytest.mark.parametrize('n', [f'\\u00e9 %s%% q\"{i}' for i in range(100)])\n"
        "def test_n(n): pass\n"
    )
    encoded: list[object] = []

    def encode(test: TestResult) -> str:
        encoded.append(test)
        return encode_test(test)

    def run(name: str) -> None:
        result = pytester.runpytest_inprocess(
            "--energy", "--energy-meter=model", f"--energy-history={name}.sqlite",
            "-p", "no:randomly",
        )  # fmt: skip
        result.assert_outcomes(passed=100)

    with monkeypatch.context() as patch:  # not undo(): pytester's own patches stay
        patch.setattr(rows_module, "encode_test", encode)
        run("rows")
    assert len(encoded) == 1  # the record the session's line template is made from
    with monkeypatch.context() as patch:
        patch.setattr(RowShape, "row", lambda *args: None)
        run("records")
    rows, records = (
        [json.loads(line.rstrip(",")) for line in _history_test_lines(pytester.path / name)]
        for name in ("rows.sqlite", "records.sqlite")
    )
    assert len(rows) == 100
    # The model meter's numbers differ run to run: compare the lines' keys and node ids.
    assert [test["nodeid"] for test in rows] == [test["nodeid"] for test in records]
    assert [list(test) for test in rows] == [list(test) for test in records]


def test_a_measurement_unlike_the_sessions_stays_a_record() -> None:
    shape = RowShape("call", "modelled", ["model"], _carbon_of, [])

    def measurement(**changes: object) -> Measurement:
        fields: dict[str, object] = {
            "seconds": 1.0,
            "joules": {"cpu": 2.0},
            "total_j": 2.0,
            "method": "modelled",
            "meters": shape._meters,
            "flags": [],
        }
        fields.update(changes)
        return Measurement(**fields)  # type: ignore[arg-type]

    assert shape.row("a", "f", 1, "passed", measurement(), None, 0.0, None) is not None
    # Another method, another meter list, other joules' names: records.
    assert shape.row("a", "f", 1, "passed", measurement(method="measured"), None, 0.0, None) is None
    assert shape.row("a", "f", 1, "passed", measurement(meters=["model"]), None, 0.0, None) is None
    other = measurement(joules={"gpu": 2.0})
    assert shape.row("a", "f", 1, "passed", other, None, 0.0, None) is None


#: Counts the garbage collections from the session's end to the plugin's unconfigure
#: (this conftest's hooks run just before the plugin's), and says whether the collector
#: runs after it.
COLLECTIONS_AT_THE_END = """
import gc
import os
import pytest

_started = []

def _count(phase, info):
    if phase == "start":
        _started.append(info["generation"])

if os.environ.get("UNPAUSED"):  # the control: the plugin's end without its pause
    import types
    from pytest_energy.plugin import session_end

    session_end.gc = types.SimpleNamespace(
        isenabled=gc.isenabled, disable=lambda: None, enable=gc.enable
    )

class _Last:
    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config):
        print(f"COLLECTOR AFTER {gc.isenabled()}")

def pytest_configure(config):
    gc.set_threshold(100, 2, 2)  # often: any collection the session's end allows, it makes
    if os.environ.get("USER_PAUSED"):
        gc.disable()
    config.pluginmanager.register(_Last(), "last")

@pytest.hookimpl(tryfirst=True)  # just before the plugin's, registered before this file
def pytest_sessionfinish(session):
    gc.callbacks.append(_count)

@pytest.hookimpl(wrapper=True)  # around every unconfigure, the plugin's too
def pytest_unconfigure(config):
    gc.callbacks.remove(_count)
    print(f"END COLLECTIONS {len(_started)}")
    return (yield)
"""


@pytest.mark.parametrize("user_paused", [False, True])
def test_the_sessions_end_pauses_the_collector_until_its_records_are_gone(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, user_paused: bool
) -> None:
    # The records the end makes from the rows (four objects a test) met the collections
    # of the session's end, which walked them. Paused from the session's end until the
    # plugin lets go of them, the collector runs none there; it runs again afterwards,
    # unless it was paused before.
    pytester.makeconftest(COLLECTIONS_AT_THE_END)
    pytester.makepyfile(
        test_many="import pytest\n\n@pytest.mark.parametrize('n', range(300))\n"
        "def test_n(n): pass\n"
    )
    if user_paused:
        monkeypatch.setenv("USER_PAUSED", "1")

    def run() -> tuple[int, str]:
        result = pytester.runpytest_subprocess(
            "--energy", "--energy-meter=model", "--energy-json=results.json", "-s",
            "-p", "no:randomly",
        )  # fmt: skip
        result.assert_outcomes(passed=300)
        assert len(load(pytester.path / "results.json").tests) == 300
        (count,) = [line for line in result.stdout.lines if "END COLLECTIONS" in line]
        (after,) = [line for line in result.stdout.lines if "COLLECTOR AFTER" in line]
        return int(count.split()[-1]), after.split()[-1]

    assert run() == (0, str(not user_paused))
    if not user_paused:  # the control: without the pause, the end collects
        monkeypatch.setenv("UNPAUSED", "1")
        collections, after = run()
        assert collections > 0
        assert after == "True"
