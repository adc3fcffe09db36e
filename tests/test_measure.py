"""`pytest --energy`: what a user sees, from replayed traces and the CPU-time model."""

from __future__ import annotations

import json
import sys

import pytest
import traces
from inner_runs import XDIST_MODES, by_name

TWO_TESTS = """
def test_first():
    pass

def test_second():
    pass
"""


def test_off_by_default_measures_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TWO_TESTS)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*= energy =*")
    result.stdout.no_fnmatch_line("energy: *")


def test_off_imports_nothing_heavy_and_touches_no_hardware(pytester: pytest.Pytester) -> None:
    """With --energy off, loading the plugin imports no meter, pynvml, torch or jinja2."""
    pytester.makeconftest(
        """
        import sys

        def pytest_unconfigure(config):
            loaded = [m for m in ("pynvml", "torch", "jinja2", "pytest_energy.meters.rapl",
                                  "pytest_energy.meters.nvml", "pytest_energy.meters.model",
                                  "pytest_energy.plugin.hooks", "pytest_energy.measure.recorder")
                      if m in sys.modules]
            print("LOADED:", loaded)
        """
    )
    pytester.makepyfile(TWO_TESTS)
    result = pytester.runpytest_subprocess("-s", "-p", "no:anyio")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["LOADED: []"])


def test_a_plain_energy_run_loads_only_what_it_uses(pytester: pytest.Pytester) -> None:
    """The statistics, the t distribution and the output files' module load where a test
    is judged or a file is written: every module is part of what --energy costs (issue 16)."""
    pytester.makeconftest(
        """
        import sys

        def pytest_unconfigure(config):
            loaded = [m for m in ("pytest_energy.stats", "pytest_energy.student_t",
                                  "pytest_energy.output_files", "pytest_energy.meters.rapl",
                                  "pytest_energy.meters.nvml", "jinja2")
                      if m in sys.modules]
            print("LOADED:", loaded)
        """
    )
    pytester.makepyfile(TWO_TESTS)
    result = pytester.runpytest_subprocess(
        "-s", "-p", "no:anyio", "--energy", "--energy-meter=model"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*= energy =*", "LOADED: []"])
    written = pytester.runpytest_subprocess(
        "-s", "-p", "no:anyio", "--energy", "--energy-meter=model", "--energy-json=results.json"
    )
    written.stdout.fnmatch_lines(["LOADED: [[]*'pytest_energy.output_files'*"])


def test_replay_gives_each_test_its_window(pytester: pytest.Pytester, replay, results) -> None:
    path = replay(traces.windows((12.0, 2.0), (30.0, 3.0)))
    pytester.makepyfile(TWO_TESTS)
    result = pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-json=results.json",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "energy: nvml replayed from trace.json (measured)*measured by hardware counters",
            "*= energy =*",
            "top 2 of 2 tests by energy:",
            "*30.0 J*3.00 s*10.0 W*nvml (measured)*test_second",
            "*12.0 J*2.00 s*6.00 W*nvml (measured)*test_first",
            "session: 2 tests measured, 42.0 J in 5.00 s*measured",
        ]
    )
    data = results()
    assert data["schema_version"] == 1
    tests = by_name(data)
    first = tests["test_first"]["measurement"]
    assert first["total_j"] == pytest.approx(12.0)
    assert first["seconds"] == pytest.approx(2.0)
    assert first["joules"] == {"gpu:0": pytest.approx(12.0)}
    assert first["method"] == "measured"
    assert first["meters"] == ["nvml"]
    assert first["flags"] == []
    assert tests["test_first"]["outcome"] == "passed"
    assert tests["test_first"]["line"] == 1
    assert data["session"]["totals"]["joules"] == pytest.approx(42.0)
    assert data["session"]["method"] == "measured"
    assert data["session"]["finished"] is not None


def test_idle_bracket_gives_net_energy(pytester: pytest.Pytester, replay, results) -> None:
    # Idle bracket: 72 J over 1 s (72 W); then one test: 300 J over 2 s.
    path = replay(traces.trace([0.0, 72.0, 100.0, 400.0], times=[0.0, 1.0, 2.0, 4.0]))
    pytester.makepyfile("def test_one():\n    pass\n")
    result = pytester.runpytest(
        "--energy", f"--energy-meter=replay:{path}", "--energy-json=results.json"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*300 J above idle? (72.0 W idle)*".replace("300 J above idle?", "156 J above idle")]
    )
    data = results()
    assert data["session"]["idle"]["total_watts"] == pytest.approx(72.0)
    (test,) = data["tests"]
    assert test["measurement"]["total_j"] == pytest.approx(300.0)
    assert test["net_j"] == pytest.approx(300.0 - 72.0 * 2.0)


def test_model_meter_is_labelled_modelled_and_never_zero_for_cpu_work(
    pytester: pytest.Pytester, results
) -> None:
    pytester.makepyfile(
        """
        def test_busy():
            total = 0
            for i in range(300_000):
                total += i * i
            assert total
        """
    )
    result = pytester.runpytest("--energy", "--energy-meter=model", "--energy-json=results.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "energy: model (modelled: process CPU time x 3.5 W per core)*MODELLED estimates*",
            "numbers are MODELLED from CPU time*",
        ]
    )
    (test,) = results()["tests"]
    assert test["measurement"]["method"] == "modelled"
    assert test["measurement"]["total_j"] > 0
    assert results()["session"]["idle"] is None  # the model counts only this process


def test_top_n_is_configurable(pytester: pytest.Pytester, replay) -> None:
    path = replay(traces.windows((1.0, 1.0), (2.0, 1.0), (3.0, 1.0)))
    pytester.makepyfile("def test_a(): pass\ndef test_b(): pass\ndef test_c(): pass\n")
    result = pytester.runpytest(
        "--energy", f"--energy-meter=replay:{path}", "--energy-idle-seconds=0", "--energy-top=1"
    )
    result.stdout.fnmatch_lines(["top 1 of 3 tests by energy:", "*3.00 J*test_c"])
    result.stdout.no_fnmatch_line("*test_b")


def test_wrap_around_is_undone_and_flagged(pytester: pytest.Pytester, replay, results) -> None:
    # A 32-bit-style counter with a 1000 J range wraps during the window.
    path = replay(traces.trace([990.0, 40.0], times=[0.0, 2.0], range_j=1000.0))
    pytester.makepyfile("def test_one(): pass\n")
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-json=results.json",
    ).assert_outcomes(passed=1)
    (test,) = results()["tests"]
    assert test["measurement"]["total_j"] == pytest.approx(50.0)
    assert "wrapped" in test["measurement"]["flags"]


def test_stuck_counter_is_flagged(pytester: pytest.Pytester, replay, results) -> None:
    path = replay(traces.trace([500.0, 500.0], times=[0.0, 5.0]))
    pytester.makepyfile("def test_one(): pass\n")
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-json=results.json",
    ).assert_outcomes(passed=1)
    (test,) = results()["tests"]
    assert test["measurement"]["flags"] == ["counter_stalled"]


def test_short_window_is_below_resolution(pytester: pytest.Pytester, replay, results) -> None:
    # NVML ticks every 0.1 s: a 0.3-s window is shorter than 10 ticks.
    path = replay(traces.trace([0.0, 20.0], times=[0.0, 0.3]))
    pytester.makepyfile("def test_one(): pass\n")
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-json=results.json",
    ).assert_outcomes(passed=1)
    (test,) = results()["tests"]
    assert test["measurement"]["flags"] == ["below_resolution"]


def test_foreign_gpu_process_flags_window(pytester: pytest.Pytester, replay, results) -> None:
    path = replay(traces.trace([0.0, 20.0, 20.0, 40.0], notes={1: ["gpu_shared"]}))
    pytester.makepyfile(TWO_TESTS)
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-json=results.json",
    ).assert_outcomes(passed=2)
    tests = by_name(results())
    assert tests["test_first"]["measurement"]["flags"] == ["gpu_shared"]
    assert tests["test_second"]["measurement"]["flags"] == []


def test_gpu_that_disappears_fails_the_run_and_keeps_earlier_results(
    pytester: pytest.Pytester, replay, results
) -> None:
    path = replay(
        traces.trace([0.0, 20.0, 20.0, "GPU 0 (NVIDIA H100) stopped answering: GPU is lost"])
    )
    pytester.makepyfile(TWO_TESTS + "\ndef test_third():\n    pass\n")
    result = pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-json=results.json",
    )
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["energy measurement failed: GPU 0 (NVIDIA H100) stopped answering: GPU is lost"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    tests = by_name(results())
    assert tests["test_first"]["measurement"]["total_j"] == pytest.approx(20.0)
    assert tests["test_second"]["measurement"] is None
    assert tests["test_third"]["error"].startswith("not measured: GPU 0")


def test_protocol_scope_includes_setup_and_teardown(pytester: pytest.Pytester, results) -> None:
    pytester.makepyfile(
        """
        import pytest

        def burn():
            total = 0
            for i in range(400_000):
                total += i * i
            return total

        @pytest.fixture
        def heavy():
            burn()
            yield
            burn()

        def test_light(heavy):
            pass
        """
    )
    pytester.runpytest("--energy", "--energy-meter=model", "--energy-json=call.json")
    pytester.runpytest(
        "--energy", "--energy-meter=model", "--energy-scope=protocol", "--energy-json=protocol.json"
    )
    call = results("call.json")["tests"][0]
    protocol = results("protocol.json")["tests"][0]
    assert call["scope"] == "call"
    assert protocol["scope"] == "protocol"
    # The fixture's CPU work is billed only when setup and teardown are in the window.
    assert protocol["measurement"]["total_j"] > 20 * call["measurement"]["total_j"]


def test_outcomes_are_recorded(pytester: pytest.Pytester, results) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_ok(): pass
        def test_bad(): assert False
        def test_skipped_in_body(): pytest.skip("no")
        @pytest.mark.skip
        def test_skipped_before(): pass
        """
    )
    pytester.runpytest("--energy", "--energy-meter=model", "--energy-json=results.json")
    tests = by_name(results())
    assert tests["test_ok"]["outcome"] == "passed"
    assert tests["test_bad"]["outcome"] == "failed"
    assert tests["test_skipped_in_body"]["outcome"] == "skipped"
    assert "test_skipped_before" not in tests  # never ran, never measured


def test_outcomes_come_from_the_reports_as_logged(pytester: pytest.Pytester, results) -> None:
    # pytest-rerunfailures logs a failed attempt's call as "rerun" (recorded as failed),
    # xfail turns a failure into a skip, and a plugin may log a report of its own.
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_makereport(item, call):
            report = yield
            if item.name == "test_retried" and report.when == "call":
                report.outcome = "rerun"
            return report

        def pytest_runtest_teardown(item):
            if item.name == "test_ok":
                report = pytest.TestReport(
                    "elsewhere::x", ("x", 0, "x"), {}, "failed", None, "teardown"
                )
                item.ihook.pytest_runtest_logreport(report=report)
        """
    )
    pytester.makepyfile(
        """
        import pytest

        def test_ok(): pass
        def test_retried(): assert False
        @pytest.mark.xfail
        def test_expected_to_fail(): assert False
        """
    )
    pytester.runpytest("--energy", "--energy-meter=model", "--energy-json=results.json")
    tests = by_name(results())
    assert {name: test["outcome"] for name, test in tests.items()} == {
        "test_ok": "passed",
        "test_retried": "failed",
        "test_expected_to_fail": "skipped",
    }


def test_interrupted_run_still_writes_finished_tests(pytester: pytest.Pytester, results) -> None:
    pytester.makepyfile(
        """
        def test_first(): pass
        def test_interrupt(): raise KeyboardInterrupt
        def test_never(): pass
        """
    )
    result = pytester.runpytest_subprocess(
        "--energy", "--energy-meter=model", "--energy-json=results.json"
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    data = results()
    assert data["session"]["interrupted"] is True
    assert "test_first" in by_name(data)
    assert "test_never" not in by_name(data)


def test_crash_leaves_results_of_finished_tests(pytester: pytest.Pytester, results) -> None:
    """A hard crash (no sessionfinish) keeps what was checkpointed before it."""
    pytester.makepyfile(
        """
        import os

        def test_first(): pass
        def test_crash(): os._exit(9)
        """
    )
    result = pytester.runpytest_subprocess(
        "--energy", "--energy-meter=model", "--energy-json=results.json"
    )
    assert result.ret == 9
    data = results()
    assert list(by_name(data)) == ["test_first"]
    assert data["session"]["finished"] is None


@pytest.mark.parametrize("mode", XDIST_MODES)
def test_xdist_results_reach_the_controller(
    pytester: pytest.Pytester, results, mode: list[str]
) -> None:
    pytester.makepyfile(TWO_TESTS + "\ndef test_third():\n    pass\n")
    result = pytester.runpytest(
        "--energy", "--energy-meter=model", "--energy-json=results.json", "-p", "xdist", *mode
    )
    result.assert_outcomes(passed=3)
    data = results()
    assert sorted(by_name(data)) == ["test_first", "test_second", "test_third"]
    parallel = mode == ["-n", "2"]
    for test in data["tests"]:
        assert ("concurrent" in test["measurement"]["flags"]) is parallel
    assert data["session"]["machine"]["meters"] == ["model"]
    if parallel:
        result.stdout.fnmatch_lines(["*run the energy job serially*"])
        assert data["session"]["workers"] == 2


def test_works_without_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TWO_TESTS)
    result = pytester.runpytest("--energy", "--energy-meter=model", "-p", "no:xdist")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*= energy =*"])


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TWO_TESTS)
    result = pytester.runpytest("-p", "no:energy")
    result.assert_outcomes(passed=2)
    result = pytester.runpytest("-p", "no:energy", "--energy")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # the option no longer exists


def test_results_file_round_trips_through_the_api(pytester: pytest.Pytester, replay) -> None:
    from pytest_energy import load_results

    path = replay(traces.windows((5.0, 2.0)))
    pytester.makepyfile("def test_one(): pass\n")
    pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-json=results.json",
    )
    record = load_results(pytester.path / "results.json")
    assert record.tests[0].measurement is not None
    assert record.tests[0].measurement.watts == pytest.approx(2.5)
    assert json.loads(record.to_json())["tests"][0]["nodeid"].endswith("::test_one")


def test_report_header_and_hook(pytester: pytest.Pytester, replay) -> None:
    path = replay(traces.windows((5.0, 2.0)))
    pytester.makeconftest(
        """
        def pytest_energy_test_result(config, result):
            print("HOOK", result.nodeid, result.measurement.total_j)

        def pytest_energy_run_record(config, record):
            print("RECORD", len(record.tests))
        """
    )
    pytester.makepyfile("def test_one(): pass\n")
    result = pytester.runpytest(
        "--energy", f"--energy-meter=replay:{path}", "--energy-idle-seconds=0", "-s"
    )
    result.stdout.fnmatch_lines(["*HOOK *::test_one 5.0*", "*RECORD 1*"])


@pytest.mark.skipif(sys.platform != "linux", reason="RAPL is Linux-only")
def test_auto_uses_rapl_from_a_powercap_tree(
    pytester: pytest.Pytester, results, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from powercap_tree import make_powercap_tree

    # Outside the inner rootdir: sysfs-style symlink loops must not be collected.
    tree = make_powercap_tree(tmp_path_factory.mktemp("sys") / "powercap", sockets=2, dram=True)
    pytester.makepyfile(
        f"""
        from pathlib import Path
        from powercap_tree import PowercapTree

        def test_one():
            PowercapTree.load(Path(r"{tree.root}")).advance("intel-rapl:0", 3_000_000)
        """
    )
    pytester.syspathinsert(str(__import__("pathlib").Path(__file__).parent))
    result = pytester.runpytest(
        "--energy",
        f"--energy-rapl-root={tree.root}",
        "--energy-idle-seconds=0",
        "--energy-json=results.json",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["energy: rapl (measured: package x2 sockets, dram)*"])
    (test,) = results()["tests"]
    assert test["measurement"]["joules"]["package"] == pytest.approx(3.0)
    assert test["measurement"]["meters"] == ["rapl"]


def test_auto_falls_back_to_the_model_when_rapl_is_root_only(
    pytester: pytest.Pytester, results, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from powercap_tree import make_powercap_tree

    tree = make_powercap_tree(tmp_path_factory.mktemp("sys") / "powercap", sockets=1)
    # Tests run as root, where chmod cannot deny a read: patch the meter's one read seam,
    # in a subprocess so the patch cannot leak into other tests.
    pytester.makeconftest(
        """
        import pytest_energy.meters.rapl as rapl

        def denied(source):
            raise PermissionError(13, "Permission denied")

        rapl._read_counter = denied
        """
    )
    pytester.makepyfile("def test_one(): pass\n")
    result = pytester.runpytest_subprocess(
        "--energy", f"--energy-rapl-root={tree.root}", "--energy-json=results.json"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "energy: model (modelled*",
            "energy: rapl: *root*udev*",
            "energy: no readable energy counter; energy is modelled from CPU time",
        ]
    )
    assert results()["tests"][0]["measurement"]["method"] == "modelled"


def test_html_and_markdown_reports_are_written(pytester: pytest.Pytester, replay) -> None:
    path = replay(traces.windows((5.0, 2.0), (7.0, 2.0)))
    pytester.makepyfile(TWO_TESTS)
    result = pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-html=out/report.html",
        "--energy-markdown=out/summary.md",
    )
    result.assert_outcomes(passed=2)
    html = (pytester.path / "out" / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") or html.lower().startswith("<!doctype html>")
    assert "test_second" in html
    assert "Content-Security-Policy" in html
    summary = (pytester.path / "out" / "summary.md").read_text(encoding="utf-8")
    assert "test\\_first" in summary  # Markdown-escaped


def test_intensity_provider_hook_supplies_a_live_figure(
    pytester: pytest.Pytester, replay, results
) -> None:
    path = replay(traces.windows((3_600.0, 2.0)))  # 1 Wh
    pytester.makeconftest(
        """
        from pytest_energy.carbon import LiveIntensity

        class Contract:
            name = "our-contract"

            def intensity(self, region):
                return LiveIntensity(g_per_kwh=100.0, zone=region, datetime="2026-11-26T10:00Z",
                                     basis="operational", source="grid contract",
                                     attribution="ACME Power")

        def pytest_energy_intensity_provider(config):
            return Contract()
        """
    )
    pytester.makepyfile("def test_one(): pass\n")
    result = pytester.runpytest(
        "--energy",
        f"--energy-meter=replay:{path}",
        "--energy-idle-seconds=0",
        "--energy-region=FR",
        "--energy-json=results.json",
    )
    result.assert_outcomes(passed=1)
    (test,) = results()["tests"]
    assert test["carbon"]["intensity_g_per_kwh"] == 100.0
    assert test["carbon"]["grams"] == pytest.approx(0.1)  # 1 Wh at 100 g/kWh
    assert test["carbon"]["year"] == 2026
    assert results()["session"]["carbon"]["kind"] == "live"


def test_a_sessions_records_share_their_lists(pytester: pytest.Pytester) -> None:
    # Every test's record lives until the session ends, and each list in it is one more
    # object the garbage collector walks at every full collection (issue 16): the meter
    # names, a flag combination and the empty budget are one list each per session.
    pytester.makeconftest(
        """
        import pytest

        seen = []

        def pytest_energy_test_result(config, result):
            seen.append(result)

        def pytest_sessionfinish(session):
            first, *rest = seen
            m = first.measurement
            shared = [
                all(r.measurement.meters is m.meters for r in rest),
                all(r.measurement.flags is m.flags for r in rest),
                all(r.budget is first.budget for r in rest),
            ]
            print("SHARED", shared, m.meters, m.flags, first.budget)
        """
    )
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.parametrize('n', range(5))\ndef test_n(n): pass\n"
    )
    result = pytester.runpytest("--energy", "--energy-meter=model", "-s", "-p", "no:randomly")
    expected = "SHARED [True, True, True] ['model'] ['below_resolution'] []"
    assert expected in result.stdout.str()
