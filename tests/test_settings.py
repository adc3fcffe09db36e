"""Options: one precedence chain (CLI > env > ini > default) and one-line errors."""

from __future__ import annotations

import pytest
import traces

THREE = "def test_a(): pass\ndef test_b(): pass\ndef test_c(): pass\n"


def test_help_lists_every_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "energy measurement (pytest-energy):",
            "*--energy *Measure the energy of every test*",
            "*--energy-meter=SPEC*",
            "*--energy-json=PATH*",
            "*--energy-compare=*NAME|PATH*",
            "*--energy-fail=PERCENT*",
            "*--energy-region=REGION*",
            "*--energy-html=PATH*",
            "*energy_meter (string)*",
        ]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--energy-meter=gpu"],
            "ERROR: --energy-meter: unknown meter 'gpu'; expected one of "
            "auto, rapl, nvml, model, ops, replay:PATH",
        ),
        (["--energy-meter=model,rapl"], "ERROR: --energy-meter: only counters combine*"),
        (["--energy-top=-1"], "ERROR: --energy-top: must not be negative, got '-1'"),
        (
            ["--energy-idle-seconds=soon"],
            "ERROR: --energy-idle-seconds: expected a number, got 'soon'",
        ),
        (
            ["--energy-scope=module"],
            "ERROR: --energy-scope: expected one of call, protocol, got 'module'",
        ),
        (["--energy-fail=5"], "ERROR: --energy-fail: expected a percentage such as 5%, got '5'"),
        (["--energy-fail=-3%"], "ERROR: --energy-fail: must be a positive percentage*"),
        (["--energy-rounds=0"], "ERROR: --energy-rounds: must be at least 1, got '0'"),
        (
            ["--energy-on-modelled=explode"],
            "ERROR: --energy-on-modelled: expected one of fail, warn, ignore*",
        ),
        (
            ["--energy-meter=replay:missing.json"],
            "ERROR: --energy-meter=replay:*missing.json: trace file *missing.json does not exist",
        ),
        (["--energy-carbon-intensity=-5"], "ERROR: *intensity*-5*"),
        (["--energy-pue=cheap"], "ERROR: invalid PUE 'cheap' from --energy-pue*"),
        (["--energy-region=narnia"], "ERROR: unknown region 'narnia' (from --energy-region)*"),
        (["--energy-update-baseline"], "ERROR: --energy-update-baseline needs --energy-reason=*"),
        (
            ["--energy-compare", "--energy-history-baseline=3"],
            "ERROR: --energy-compare and --energy-history-baseline*",
        ),
    ],
)
def test_bad_values_are_one_line_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile(THREE)
    result = pytester.runpytest("--energy", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_unwritable_json_path_is_refused_up_front(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(THREE)
    pytester.mkdir("out")
    (pytester.path / "blocker").write_text("a file, not a folder")
    result = pytester.runpytest("--energy", "--energy-meter=model", "--energy-json=out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --energy-json: *out is a directory, expected a file path"])
    result = pytester.runpytest(
        "--energy", "--energy-meter=model", "--energy-json=blocker/results.json"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --energy-json: cannot write *blocker/results.json: *"])


def test_unreadable_trace_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(THREE)
    (pytester.path / "bad.json").write_text("{not json")
    result = pytester.runpytest("--energy", "--energy-meter=replay:bad.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --energy-meter=replay:*bad.json: trace file *bad.json is not valid JSON*"]
    )


def test_named_meter_that_is_unavailable_is_a_usage_error(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pytester.makepyfile(THREE)
    empty = tmp_path_factory.mktemp("no-powercap")
    result = pytester.runpytest("--energy", "--energy-meter=rapl", f"--energy-rapl-root={empty}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --energy-meter=rapl: no RAPL powercap zones under *"])


def test_permission_error_in_named_meter_names_the_fix(pytester: pytest.Pytester, replay) -> None:
    path = replay(
        traces.trace(
            [0.0, 1.0],
            open_error={
                "kind": "permission",
                "message": "energy_uj is readable by root only; "
                "run the energy job as root or add a udev rule",
            },
        )
    )
    pytester.makepyfile(THREE)
    result = pytester.runpytest("--energy", f"--energy-meter=replay:{path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --energy-meter=replay:*: energy_uj is readable by root "
            "only; run the energy job as root or add a udev rule"
        ]
    )


def _top(result: pytest.RunResult) -> str:
    for line in result.stdout.lines:
        if line.startswith("top "):
            return line
    return ""


def test_precedence_cli_over_env_over_ini(
    pytester: pytest.Pytester, replay, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = replay(traces.trace([0.0, 1.0, 1.0, 2.0, 2.0, 3.0], cycle=True))
    pytester.makepyfile(THREE)
    pytester.makeini(
        f"[pytest]\nenergy = true\nenergy_meter = replay:{path}\n"
        "energy_idle_seconds = 0\nenergy_top = 1\n"
    )
    assert _top(pytester.runpytest()) == "top 1 of 3 tests by energy:"
    monkeypatch.setenv("PYTEST_ENERGY_TOP", "2")
    assert _top(pytester.runpytest()) == "top 2 of 3 tests by energy:"
    assert _top(pytester.runpytest("--energy-top=3")) == "top 3 of 3 tests by energy:"


def test_env_can_turn_energy_on(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(THREE)
    monkeypatch.setenv("PYTEST_ENERGY", "1")
    monkeypatch.setenv("PYTEST_ENERGY_METER", "model")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["energy: model (modelled*", "*= energy =*"])


def test_bad_env_and_ini_values_name_their_source(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(THREE)
    monkeypatch.setenv("PYTEST_ENERGY_TOP", "many")
    result = pytester.runpytest("--energy")
    result.stderr.fnmatch_lines(["ERROR: PYTEST_ENERGY_TOP: expected a whole number, got 'many'"])
    monkeypatch.delenv("PYTEST_ENERGY_TOP")
    pytester.makeini("[pytest]\nenergy_rounds = lots\n")
    result = pytester.runpytest("--energy")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: energy_rounds in tox.ini: expected a whole number*"])


def test_pyproject_settings_work(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(THREE)
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\nenergy = "true"\nenergy_meter = "model"\nenergy_top = "1"\n'
    )
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["top 1 of 3 tests by energy:"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            "max_joule=1",
            "*@pytest.mark.energy got unknown keyword 'max_joule'; valid keywords: *max_joules*",
        ),
        ("rounds=0", "*@pytest.mark.energy: rounds must be a whole number of at least 1, got 0"),
        ("max_regression=8", "*max_regression must be a percentage string such as '8%', got 8"),
        ("on_modelled='panic'", "*on_modelled must be one of fail, warn, ignore, got 'panic'"),
        ("max_gco2e=1.0", "*max_gco2e * needs a fixed intensity (--energy-carbon-intensity=G)*"),
    ],
)
def test_bad_marker_values_are_usage_errors(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(f"import pytest\n\n@pytest.mark.energy({marker})\ndef test_x(): pass\n")
    result = pytester.runpytest("--energy", "--energy-meter=model")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_marker_is_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n\n@pytest.mark.energy(rounds=3)\ndef test_x(): pass\n")
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.energy(rounds=5, *"])
