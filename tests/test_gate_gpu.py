"""The gate with a GPU meter: the drift check in the GPU's own domain, idle power before and after.

Traces model an H200 board (docs/measurements/h200-idle-after-load.json and
h200-gpu-gate-check.json): ~79 W idle with no CUDA context, ~124 W once the process
has one, ~685 W under matmuls. A fake ``torch`` (first on the inner runs' path) gives
the test a CUDA context without a GPU. 0.1's drift check ran a CPU loop through the
GPU's counter and read idle power (~124 W at the start, ~225 W after load), which
switched the gate off on every GPU machine; these runs must stay stable.
"""

from __future__ import annotations

import json

import pytest
import traces

FAKE_TORCH = '''
"""A stand-in for torch with CUDA: tensors and matmuls that cost nothing."""
bfloat16 = "bfloat16"
_initialised = []


class _Cuda:
    def is_initialized(self):
        return bool(_initialised)

    def device_count(self):
        return 1

    def synchronize(self, device=None):
        pass


class _C:
    @staticmethod
    def _cuda_hasPrimaryContext(device):
        return bool(_initialised)


cuda = _Cuda()


def randn(*shape, device=None, dtype=None):
    if device == "cuda":
        _initialised.append(True)
    return object()


empty = randn


def mm(a, b, out=None):
    return out
'''

GPU_BENCH = """
import torch

def test_matmuls(energy_benchmark):
    torch.randn(8, device="cuda")  # the test's tensors: this process now has a CUDA context
    energy_benchmark.pedantic(lambda: None, rounds=5, calls_per_round=1, units=1, unit="step")
"""

CPU_BENCH = """
def test_python(energy_benchmark):
    energy_benchmark.pedantic(lambda: None, rounds=5, calls_per_round=1, units=1, unit="step")
"""

STEP = [685.0, 686.0, 684.0, 685.5, 684.5]  # J per 1-s round at ~685 W
#: The drift check's matmul windows read the same power at the start and after load.
DRIFT = [685.0, 684.0, 686.0, 685.0, 685.5]
IDLE_BEFORE, IDLE_AFTER = 79.0, 124.0
OFFSETS = (1.0, 1.003, 0.997)


def write_traces(pytester, replay, name: str, level: float, *, drift: bool) -> str:
    """Process 0 (this session) idles, [checks drift,] runs its rounds, [checks drift,] idles;
    fresh processes only run their rounds."""
    rounds = [j * level for j in STEP]
    session = [IDLE_BEFORE, "edge", *(DRIFT if drift else []), *rounds, "edge"]
    session += [*(DRIFT if drift else []), IDLE_AFTER]
    replay(traces.script(*session), f"{name}-0.json")
    for index, offset in enumerate(OFFSETS * 2, start=1):
        replay(traces.script("edge", *[j * offset for j in rounds], "edge"), f"{name}-{index}.json")
    return f"--energy-meter=replay:{pytester.path / name}-{{process}}.json"


def run(pytester, replay, name: str, level: float, *args: str, drift: bool = False):
    return pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--energy",
        write_traces(pytester, replay, name, level, drift=drift),
        f"--energy-json={name}.json",
        *args,
    )


@pytest.fixture
def gpu_project(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "torch.py").write_text(FAKE_TORCH)
    pytester.makepyfile(test_gpu=GPU_BENCH)
    return pytester


def results(pytester: pytest.Pytester, name: str) -> dict:
    data: dict = json.loads((pytester.path / f"{name}.json").read_text())
    return data


def test_unchanged_work_after_load_is_unchanged_and_the_session_stable(
    gpu_project: pytest.Pytester, replay
) -> None:
    run(gpu_project, replay, "base", 1.0, "--energy-save-baseline").assert_outcomes(passed=1)
    result = run(gpu_project, replay, "same", 1.0, "--energy-compare", drift=True)
    assert result.ret == pytest.ExitCode.OK
    data = results(gpu_project, "same")
    session = data["session"]
    assert data["tests"][0]["verdict"]["status"] == "unchanged"
    assert session["unstable"] is False
    assert session["calibration"]["workload"] == "a 4096x4096 bf16 matmul on the GPU"
    assert len(session["calibration"]["start"]) == 5
    # Idle: 79 W before (no context), 124 W after with the tests' context: net figures use that.
    assert session["idle_before"]["total_watts"] == pytest.approx(IDLE_BEFORE)
    assert session["idle_after"]["total_watts"] == pytest.approx(IDLE_AFTER)
    assert session["idle"]["phase"] == "after"
    assert "after the tests" in session["idle_note"]
    measured = data["tests"][0]["measurement"]
    assert data["tests"][0]["net_j"] == pytest.approx(
        measured["total_j"] - IDLE_AFTER * measured["seconds"]
    )


def test_more_work_after_load_fails_the_build(gpu_project: pytest.Pytester, replay) -> None:
    run(gpu_project, replay, "base", 1.0, "--energy-save-baseline").assert_outcomes(passed=1)
    result = run(gpu_project, replay, "more", 1.25, "--energy-compare", drift=True)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    data = results(gpu_project, "more")
    verdict = data["tests"][0]["verdict"]
    assert verdict["status"] == "regression"
    assert verdict["ratio"] == pytest.approx(1.25, rel=0.01)
    assert data["session"]["unstable"] is False
    assert data["gate"]["decision"] == "the build fails: 1 regression"


def test_without_cuda_the_gpu_drift_check_is_skipped_and_says_why(
    pytester: pytest.Pytester, replay
) -> None:
    pytester.makepyfile(test_cpu=CPU_BENCH)
    run(pytester, replay, "base", 1.0, "--energy-save-baseline").assert_outcomes(passed=1)
    session = run(pytester, replay, "same", 1.0, "--energy-compare")
    assert session.ret == pytest.ExitCode.OK
    calibration = results(pytester, "same")["session"]["calibration"]
    assert calibration["start"] == []
    assert "had not used CUDA" in calibration["skipped"]
