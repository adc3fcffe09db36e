"""The NVML meter against a fake binding: joules, visible GPUs, sharing, failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fake_nvml import (
    LIBRARY_FILE,
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    FakeGpu,
    FakeNvml,
    import_fresh_from,
    install_fake_pynvml,
)

from pytest_energy.meters import nvml as nvml_module
from pytest_energy.meters import nvml_library
from pytest_energy.meters.base import Meter, MeterError, MeterUnavailable, clock
from pytest_energy.meters.meter_set import MeterSpec, open_meters
from pytest_energy.meters.nvml import INSTALL_HINT, MIG_NOTE, NOTE_GPU_SHARED, NvmlMeter

H100 = "NVIDIA H100 80GB HBM3"
UUID_A = "GPU-aaaa1111-0000-4000-8000-000000000001"
UUID_B = "GPU-aaaa2222-0000-4000-8000-000000000002"
UUID_C = "GPU-cccc3333-0000-4000-8000-000000000003"
MIG_1 = "MIG-11111111-2222-5333-8444-555555555551"
MIG_2 = "MIG-22222222-2222-5333-8444-555555555552"


#: Only on Linux is the driver's library looked for before the binding is imported.
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="the library probe is Linux-only")


@pytest.fixture(autouse=True)
def _no_cuda_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)


def three_gpus() -> FakeNvml:
    return FakeNvml(
        [
            FakeGpu(uuid=UUID_A, energy_mj=1_000_000),
            FakeGpu(uuid=UUID_B, energy_mj=2_000_000),
            FakeGpu(uuid=UUID_C, energy_mj=3_000_000),
        ]
    )


def measured_uuids(meter: NvmlMeter) -> list[str]:
    gpus = meter.info.details["gpus"]
    assert isinstance(gpus, list)
    return [gpu["uuid"] for gpu in gpus]


# Energy.


def test_joules_since_open_from_the_millijoule_counter() -> None:
    fake = FakeNvml()
    meter = NvmlMeter.open(nvml=fake)
    assert isinstance(meter, Meter)

    assert meter.read().joules == {"gpu:0": 0.0}
    fake.advance(1_500)
    assert meter.read().joules == {"gpu:0": 1.5}
    # The probe's 3-s burst: 2099.409 J on the counter.
    fake.advance(2_099_409)
    assert meter.read().joules == {"gpu:0": pytest.approx(2100.909)}
    assert meter.read().wraps == 0


def test_reads_only_the_energy_counter_once_per_gpu_per_read() -> None:
    fake = FakeNvml([FakeGpu(uuid=UUID_A), FakeGpu(uuid=UUID_B)])
    meter = NvmlMeter.open(nvml=fake)
    before = fake.calls["nvmlDeviceGetTotalEnergyConsumption"]
    meter.read()
    meter.read()
    assert fake.calls["nvmlDeviceGetTotalEnergyConsumption"] - before == 4
    # Power is a 1-s average on Ampere+: integrating it under-read a burst by 17 %.
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 0


def test_each_gpu_is_its_own_domain() -> None:
    fake = three_gpus()
    meter = NvmlMeter.open(nvml=fake)
    assert [d.name for d in meter.info.domains] == ["gpu:0", "gpu:1", "gpu:2"]
    assert {d.scope for d in meter.info.domains} == {"gpu-board"}
    assert all(d.range_j is None for d in meter.info.domains)
    fake.advance(700, gpu=1)
    assert meter.read().joules == {"gpu:0": 0.0, "gpu:1": 0.7, "gpu:2": 0.0}


def test_reading_time_is_the_shared_clock() -> None:
    meter = NvmlMeter.open(nvml=FakeNvml())
    before = clock()
    reading = meter.read()
    assert before <= reading.t <= clock()


def test_meter_info() -> None:
    meter = NvmlMeter.open(nvml=FakeNvml())
    info = meter.info
    assert info.name == "nvml"
    assert info.method == "measured"
    assert info.update_period_s == 0.1
    assert info.resolution_j == 0.001
    assert info.summary == f"nvml (measured: 1x {H100}, driver 580.159.04)"
    assert not info.virtual_clock


def test_details_describe_each_gpu() -> None:
    fake = FakeNvml([FakeGpu(uuid=UUID_A), FakeGpu(uuid=UUID_B, power_limit_mw=None)])
    details = NvmlMeter.open(nvml=fake).info.details
    assert details["driver_version"] == "580.159.04"
    assert details["nvml_version"] == "13.580.159.04"
    assert details["nvidia_ml_py_version"] == "0+fake"
    assert details["cuda_visible_devices"] is None
    assert "mig_note" not in details
    assert "cuda_order_note" not in details  # same model: CUDA and NVML orders agree
    first, second = details["gpus"]  # type: ignore[misc]
    assert first == {
        "domain": "gpu:0",
        "cuda_ordinals": [0],
        "nvml_index": 0,
        "name": H100,
        "uuid": UUID_A,
        "driver_version": "580.159.04",
        "nvml_version": "13.580.159.04",
        "nvidia_ml_py_version": "0+fake",
        "power_limit_w": 700.0,
        "mig": False,
    }
    assert second["power_limit_w"] is None
    json.dumps(dict(details))  # goes into the run record as is


def test_mixed_models_warn_that_cuda_order_may_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml([FakeGpu(uuid=UUID_A), FakeGpu(name="NVIDIA A100-SXM4-40GB", uuid=UUID_B)])
    info = NvmlMeter.open(nvml=fake).info
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in str(info.details["cuda_order_note"])
    assert info.summary.startswith(f"nvml (measured: 1x {H100} + 1x NVIDIA A100-SXM4-40GB,")

    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    assert "cuda_order_note" not in NvmlMeter.open(nvml=fake).info.details


# CUDA_VISIBLE_DEVICES.


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("1", [UUID_B]),
        ("2,0", [UUID_C, UUID_A]),
        (" 1 , 2 ", [UUID_B, UUID_C]),
        # The CUDA documentation's example: -1 ends the list.
        ("0,2,-1,1", [UUID_A, UUID_C]),
        # An index past the last GPU ends the list too.
        ("1,7,0", [UUID_B]),
        # strtoul reads the leading digits, as CUDA does.
        ("1gpu", [UUID_B]),
    ],
)
def test_visible_devices_by_index(
    monkeypatch: pytest.MonkeyPatch, visible: str, expected: list[str]
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    meter = NvmlMeter.open(nvml=three_gpus())
    assert measured_uuids(meter) == expected
    assert [d.name for d in meter.info.domains] == [f"gpu:{k}" for k in range(len(expected))]
    assert meter.info.details["cuda_visible_devices"] == visible


def test_visible_device_ordinals_name_the_domains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    fake = three_gpus()
    meter = NvmlMeter.open(nvml=fake)
    fake.advance(3_000, gpu=2)  # NVML's GPU 2 is CUDA's device 0 here
    assert meter.read().joules == {"gpu:0": 3.0, "gpu:1": 0.0}


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (UUID_C, [UUID_C]),
        (f"{UUID_B},{UUID_A}", [UUID_B, UUID_A]),
        # Unique prefixes are enough, as CUDA accepts.
        ("GPU-cccc", [UUID_C]),
        ("GPU-aaaa2,GPU-cc", [UUID_B, UUID_C]),
        (UUID_C.upper(), [UUID_C]),
        # Indices and UUIDs may be mixed.
        (f"2,{UUID_A}", [UUID_C, UUID_A]),
        # A UUID that matches nothing ends the list.
        (f"{UUID_B},GPU-ffff,{UUID_A}", [UUID_B]),
    ],
)
def test_visible_devices_by_uuid(
    monkeypatch: pytest.MonkeyPatch, visible: str, expected: list[str]
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert measured_uuids(NvmlMeter.open(nvml=three_gpus())) == expected


def test_ignored_entries_are_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,GPU-ffff,1")
    details = NvmlMeter.open(nvml=three_gpus()).info.details
    assert "'GPU-ffff' names no GPU here" in str(details["cuda_visible_devices_note"])


@pytest.mark.parametrize(
    ("visible", "reason"),
    [
        ("", "leaves no GPU visible"),
        ("-1", "leaves no GPU visible"),
        ("NoDevFiles", "leaves no GPU visible"),
        ("7", "leaves no GPU visible"),
        ("GPU-ffff", "leaves no GPU visible"),
        # Ambiguous prefix: both A and B start with GPU-aaaa.
        ("GPU-aaaa", "leaves no GPU visible"),
        ("0,0", "repeats a device"),
        (f"0,{UUID_A}", "repeats a device"),
    ],
)
def test_nothing_visible_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, visible: str, reason: str
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    fake = three_gpus()
    with pytest.raises(MeterUnavailable, match=reason) as caught:
        NvmlMeter.open(nvml=fake)
    assert f"CUDA_VISIBLE_DEVICES={visible!r}" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert fake.init_count == 0  # NVML shut down again


# MIG.


def mig_machine() -> FakeNvml:
    return FakeNvml([FakeGpu(uuid=UUID_A), FakeGpu(uuid=UUID_B, mig_uuids=[MIG_1, MIG_2])])


@pytest.mark.parametrize("visible", [MIG_2, "MIG-2222"])
def test_mig_slice_is_measured_as_its_whole_gpu(
    monkeypatch: pytest.MonkeyPatch, visible: str
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    fake = mig_machine()
    meter = NvmlMeter.open(nvml=fake)
    assert measured_uuids(meter) == [UUID_B]
    assert meter.info.details["mig_note"] == MIG_NOTE
    assert meter.info.details["gpus"][0]["mig"] is True  # type: ignore[index]
    assert "MIG slices measured as whole GPUs" in meter.info.summary
    fake.advance(2_500, gpu=1)
    assert meter.read().joules == {"gpu:0": 2.5}


def test_mig_slice_in_the_old_uuid_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"MIG-{UUID_B}/1/0")
    assert measured_uuids(NvmlMeter.open(nvml=mig_machine())) == [UUID_B]


def test_cuda_enumerates_one_mig_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{MIG_1},{MIG_2},0")
    meter = NvmlMeter.open(nvml=mig_machine())
    assert measured_uuids(meter) == [UUID_B]
    assert "one MIG device" in str(meter.info.details["cuda_visible_devices_note"])


def test_mig_enabled_gpu_is_flagged_without_cuda_visible_devices() -> None:
    meter = NvmlMeter.open(nvml=mig_machine())
    gpus = meter.info.details["gpus"]
    assert [gpu["mig"] for gpu in gpus] == [False, True]  # type: ignore[attr-defined]
    assert meter.info.details["mig_note"] == MIG_NOTE


# Other processes on the GPU.


@pytest.mark.parametrize(
    ("compute", "graphics", "shared"),
    [
        ([], [], False),
        (["self"], [], False),
        (["self", "other"], [], True),
        ([], ["other"], True),
        ([417], [], True),
    ],
)
def test_foreign_process_marks_the_reading(
    compute: list[int | str], graphics: list[int | str], shared: bool
) -> None:
    fake = FakeNvml([FakeGpu(compute_pids=compute, graphics_pids=graphics)])
    reading = NvmlMeter.open(nvml=fake).read()
    assert (NOTE_GPU_SHARED in reading.notes) is shared


def test_foreign_process_is_checked_at_every_read() -> None:
    fake = FakeNvml([FakeGpu(compute_pids=[os.getpid()])])
    meter = NvmlMeter.open(nvml=fake)
    assert meter.read().notes == frozenset()
    fake.gpus[0].compute_pids.append(os.getpid() + 1)
    assert meter.read().notes == {NOTE_GPU_SHARED}
    fake.gpus[0].compute_pids.pop()
    assert meter.read().notes == frozenset()


def test_old_driver_falls_back_to_versioned_process_listings() -> None:
    fake = FakeNvml([FakeGpu(compute_pids=["other"])], old_driver=True)
    meter = NvmlMeter.open(nvml=fake)
    assert meter.read().notes == {NOTE_GPU_SHARED}
    meter.read()
    # The working version is remembered: later reads go straight to _v2.
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses"] == 1
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses_v3"] == 1
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 2


def test_unsupported_process_listing_skips_the_check_for_good() -> None:
    fake = FakeNvml([FakeGpu(compute_pids=["other"])], processes_error=NVML_ERROR_NOT_SUPPORTED)
    meter = NvmlMeter.open(nvml=fake)
    assert meter.read().joules == {"gpu:0": 0.0}
    assert meter.read().notes == frozenset()
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses"] == 1


def test_a_failing_process_listing_never_breaks_the_measurement() -> None:
    fake = FakeNvml([FakeGpu(compute_pids=["other"])], processes_error="NVML_ERROR_UNKNOWN")
    meter = NvmlMeter.open(nvml=fake)
    fake.advance(1_000)
    reading = meter.read()
    assert reading.joules == {"gpu:0": 1.0}
    assert reading.notes == frozenset()
    fake.processes_error = None  # a transient error: the next read checks again
    assert meter.read().notes == {NOTE_GPU_SHARED}


# Failures.


def test_lost_gpu_is_a_one_line_meter_error() -> None:
    fake = FakeNvml()
    meter = NvmlMeter.open(nvml=fake)
    meter.read()
    fake.lose_gpu(0)
    with pytest.raises(MeterError) as caught:
        meter.read()
    assert str(caught.value) == f"GPU 0 ({H100}) stopped answering: GPU is lost"


def test_lost_gpu_names_its_cuda_ordinal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,1")
    fake = three_gpus()
    fake.gpus[1].name = "NVIDIA H200"
    meter = NvmlMeter.open(nvml=fake)
    fake.gpus[1].lost_after_reads = fake.gpus[1].energy_reads
    with pytest.raises(MeterError, match=r"^GPU 1 \(NVIDIA H200\) stopped answering: GPU is lost$"):
        meter.read()


def test_counter_going_backwards_is_a_meter_error() -> None:
    fake = FakeNvml()
    meter = NvmlMeter.open(nvml=fake)
    fake.gpus[0].energy_mj = 5  # the driver was reloaded
    with pytest.raises(MeterError, match=r"^GPU 0 \(NVIDIA H100 80GB HBM3\): energy counter went"):
        meter.read()


def test_gpu_without_energy_counter_is_unavailable() -> None:
    fake = FakeNvml([FakeGpu(name="Tesla P100-PCIE-16GB", energy_supported=False)])
    with pytest.raises(MeterUnavailable, match=r"GPU 0 \(Tesla P100-PCIE-16GB\) has no energy"):
        NvmlMeter.open(nvml=fake)
    assert fake.init_count == 0


def test_lost_gpu_at_open_is_unavailable() -> None:
    fake = FakeNvml()
    fake.gpus[0].lost_after_reads = 0
    with pytest.raises(MeterUnavailable, match="GPU is lost"):
        NvmlMeter.open(nvml=fake)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (NVML_ERROR_LIBRARY_NOT_FOUND, "NVML did not start: NVML Shared Library Not Found"),
        (NVML_ERROR_DRIVER_NOT_LOADED, "NVML did not start: Driver Not Loaded"),
    ],
)
def test_nvml_that_does_not_start_is_unavailable(code: int, message: str) -> None:
    with pytest.raises(MeterUnavailable) as caught:
        NvmlMeter.open(nvml=FakeNvml(init_error=code))
    assert str(caught.value) == message


def test_no_gpu_is_unavailable() -> None:
    fake = FakeNvml([])
    with pytest.raises(MeterUnavailable, match="NVML found no NVIDIA GPU"):
        NvmlMeter.open(nvml=fake)
    assert fake.init_count == 0


def test_missing_binding_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import pynvml` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(MeterUnavailable) as caught:
        NvmlMeter.open()
    assert str(caught.value) == INSTALL_HINT
    assert "pip install pytest-energy[nvidia]" in INSTALL_HINT


def test_close_shuts_nvml_down_once() -> None:
    fake = FakeNvml()
    meter = NvmlMeter.open(nvml=fake)
    assert fake.init_count == 1
    meter.close()
    meter.close()
    assert fake.init_count == 0
    assert fake.calls["nvmlShutdown"] == 1
    with pytest.raises(MeterError, match="closed"):
        meter.read()


def test_close_tolerates_a_failing_shutdown() -> None:
    fake = FakeNvml()
    meter = NvmlMeter.open(nvml=fake)
    fake.init_count = 0  # nvmlShutdown now raises Uninitialized
    meter.close()


# The real import path, through the file-based fake.


@pytest.fixture
def fresh_import(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A folder first on sys.path; pynvml is imported afresh and forgotten afterwards."""
    directory = tmp_path / "nvml"
    directory.mkdir()
    import_fresh_from(monkeypatch, directory)
    return directory


def test_file_based_fake_is_what_import_pynvml_finds(fresh_import: Path) -> None:
    install_fake_pynvml(fresh_import, [FakeGpu(step_mj=2_000)])
    meter = NvmlMeter.open()
    # Each energy read advances the counter by step_mj: the open read was the first.
    assert meter.read().joules == {"gpu:0": 2.0}
    assert meter.read().joules == {"gpu:0": 4.0}
    assert meter.info.details["nvidia_ml_py_version"] == "0+fake"
    meter.close()


def test_deprecated_pynvml_warning_is_suppressed(fresh_import: Path) -> None:
    # filterwarnings = error is on: the FutureWarning would fail this test.
    install_fake_pynvml(fresh_import, deprecation_warning=True)
    meter = NvmlMeter.open()
    assert meter.read().joules == {"gpu:0": 0.0}
    meter.close()


@linux_only
def test_without_the_driver_library_the_binding_is_not_imported(fresh_import: Path) -> None:
    # A CI runner or laptop without NVIDIA's driver, nvidia-ml-py installed:
    # the binding's ~8-ms import would buy nothing but NVML's own "not found".
    install_fake_pynvml(fresh_import, driver_library=False)
    with pytest.raises(MeterUnavailable) as caught:
        NvmlMeter.open()
    library = fresh_import / LIBRARY_FILE
    assert str(caught.value) == (
        "NVML did not start: NVML Shared Library Not Found "
        f"({library}: cannot open shared object file: No such file or directory)"
    )
    assert "pynvml" not in sys.modules


@linux_only
def test_a_library_that_does_not_load_is_one_line(fresh_import: Path) -> None:
    install_fake_pynvml(fresh_import, driver_library=False)
    (fresh_import / LIBRARY_FILE).write_text("not a shared object\n", encoding="utf-8")
    with pytest.raises(MeterUnavailable) as caught:
        NvmlMeter.open()
    message = str(caught.value)
    assert message.startswith("NVML did not start: NVML Shared Library Not Found (")
    assert "\n" not in message
    assert "pynvml" not in sys.modules


@linux_only
def test_the_driver_library_is_loaded_before_the_binding(fresh_import: Path) -> None:
    install_fake_pynvml(fresh_import, [FakeGpu(step_mj=2_000)])
    meter = NvmlMeter.open()
    maps = Path("/proc/self/maps").read_text(encoding="utf-8")
    assert str(fresh_import / LIBRARY_FILE) in maps
    assert meter.read().joules == {"gpu:0": 2.0}
    meter.close()


def test_a_binding_already_imported_is_used_without_the_library_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The user's code (or torch) imported it: nothing to save by looking first.
    monkeypatch.setattr(nvml_library, "LIBRARY", str(tmp_path / LIBRARY_FILE))
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([FakeGpu(step_mj=500)]))
    meter = NvmlMeter.open()
    assert meter.read().joules == {"gpu:0": 0.5}
    meter.close()


# --energy alone (auto): the counters it looks for first.


@linux_only
def test_auto_imports_no_meter_module_where_neither_counter_exists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A VM or CI runner: no powercap tree, no driver library, nvidia-ml-py installed.
    monkeypatch.setattr(nvml_library, "LIBRARY", str(tmp_path / LIBRARY_FILE))
    unwanted = ("pynvml", "pytest_energy.meters.nvml", "pytest_energy.meters.rapl")
    for name in unwanted:
        # Put back after the test, so later tests keep the module objects they imported.
        monkeypatch.delitem(sys.modules, name, raising=False)
    meters = open_meters(MeterSpec(("auto",)), rapl_root=tmp_path / "powercap", model_watts=10.0)
    assert [meter.info.name for meter in meters.meters] == ["model"]
    assert meters.notices == ("no readable energy counter; energy is modelled from CPU time",)
    assert [name for name in unwanted if name in sys.modules] == []
    meters.close()


def test_auto_measures_a_gpu_whose_driver_library_loads(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # What a user with an NVIDIA GPU types, the fake binding and driver library on the paths.
    fake = tmp_path_factory.mktemp("nvml")
    install_fake_pynvml(fake, [FakeGpu(step_mj=3_000)])
    repo = Path(nvml_module.__file__).resolve().parents[2]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(fake), str(repo)]))
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake))
    pytester.makepyfile("def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("--energy", "--energy-idle-seconds=0")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"energy: nvml (measured: 1x {H100}, driver 580.159.04)*"])


@linux_only
def test_auto_without_the_driver_library_says_nothing_of_nvml(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # The binding installed, no driver: the model, and no NVML error shown to the user.
    fake = tmp_path_factory.mktemp("nvml")
    install_fake_pynvml(fake, driver_library=False)
    import_fresh_from(monkeypatch, fake)
    pytester.makepyfile("def test_one():\n    pass\n")
    result = pytester.runpytest("--energy", "--energy-idle-seconds=0")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["energy: model (modelled*"])
    result.stdout.no_fnmatch_line("*NVML*")
    assert "pynvml" not in sys.modules


def test_file_based_fake_really_warns_like_the_deprecated_package(fresh_import: Path) -> None:
    install_fake_pynvml(fresh_import, deprecation_warning=True)
    with pytest.warns(FutureWarning, match="The pynvml package is deprecated"):
        import pynvml  # noqa: F401


def test_other_warnings_at_import_are_not_hidden(fresh_import: Path) -> None:
    install_fake_pynvml(fresh_import)
    shim = fresh_import / "pynvml.py"
    shim.write_text(
        "import warnings\nwarnings.warn('something else', FutureWarning)\n" + shim.read_text()
    )
    with pytest.raises(FutureWarning, match="something else"):
        NvmlMeter.open()


def run_in_subprocess(directory: Path, script: str) -> dict[str, object]:
    repo = Path(nvml_module.__file__).resolve().parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(directory), str(repo)])
    # Where the loader finds the driver's library first, as on a machine with the driver.
    env["LD_LIBRARY_PATH"] = str(directory)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


READ_UNTIL_FAILURE = """
    import json
    from pytest_energy.meters.base import MeterError, MeterUnavailable
    from pytest_energy.meters.nvml import NvmlMeter

    out = {"readings": []}
    try:
        meter = NvmlMeter.open()
    except MeterUnavailable as exc:
        out["unavailable"] = str(exc)
    else:
        out["summary"] = meter.info.summary
        try:
            for _ in range(10):
                reading = meter.read()
                out["readings"].append([reading.joules["gpu:0"], sorted(reading.notes)])
        except MeterError as exc:
            out["error"] = str(exc)
        meter.close()
    print(json.dumps(out))
"""


def test_file_based_fake_in_a_subprocess(tmp_path: Path) -> None:
    state = install_fake_pynvml(
        tmp_path,
        [FakeGpu(step_mj=2_000, lost_after_reads=3, compute_pids=["self", "other"])],
        deprecation_warning=True,
    )
    assert json.loads(state.read_text())["gpus"][0]["step_mj"] == 2_000
    out = run_in_subprocess(tmp_path, READ_UNTIL_FAILURE)
    assert out["summary"] == f"nvml (measured: 1x {H100}, driver 580.159.04)"
    # Read 1 was open(); reads 2 and 3 succeed; the fourth finds the GPU lost.
    assert out["readings"] == [[2.0, [NOTE_GPU_SHARED]], [4.0, [NOTE_GPU_SHARED]]]
    assert out["error"] == f"GPU 0 ({H100}) stopped answering: GPU is lost"


def test_file_based_fake_state_can_be_edited(tmp_path: Path) -> None:
    state_path = install_fake_pynvml(tmp_path)
    state = json.loads(state_path.read_text())
    state["init_error"] = "NVML_ERROR_DRIVER_NOT_LOADED"
    state_path.write_text(json.dumps(state))
    out = run_in_subprocess(tmp_path, READ_UNTIL_FAILURE)
    assert out["unavailable"] == "NVML did not start: Driver Not Loaded"


def test_fake_errors_have_the_binding_shape() -> None:
    fake = FakeNvml()
    error = fake.NVMLError(NVML_ERROR_GPU_IS_LOST)
    assert type(error).__name__ == "NVMLError_GpuIsLost"
    assert isinstance(error, fake.NVMLError_GpuIsLost)
    assert error.value == NVML_ERROR_GPU_IS_LOST
    assert str(error) == "GPU is lost"


# The fake against the real binding, where nvidia-ml-py is installed.


def real_binding(monkeypatch: pytest.MonkeyPatch) -> object:
    # The suite hides NVML from inner runs (conftest.py); these tests want the binding.
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    try:
        return nvml_module.import_pynvml()
    except MeterUnavailable:
        pytest.skip("nvidia-ml-py is not installed")


def test_fake_uses_the_real_binding_names_and_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    real = real_binding(monkeypatch)
    fake = FakeNvml()
    functions = [name for name in dir(FakeNvml) if name.startswith("nvml")]
    assert len(functions) > 20
    assert [name for name in functions if not hasattr(real, name)] == []
    constants = [name for name in dir(fake) if name.startswith(("NVML_ERROR_", "NVML_DEVICE_MIG"))]
    assert {name: getattr(real, name) for name in constants} == {
        name: getattr(fake, name) for name in constants
    }
    for name in ("NVMLError", "NVMLError_GpuIsLost", "NVMLError_NotSupported"):
        assert hasattr(real, name)
    real_error = real.NVMLError(NVML_ERROR_GPU_IS_LOST)  # type: ignore[attr-defined]
    assert type(real_error).__name__ == "NVMLError_GpuIsLost"
    assert str(real_error) == str(fake.NVMLError(NVML_ERROR_GPU_IS_LOST))


def test_real_binding_opens_or_says_why_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    real_binding(monkeypatch)
    outcome: NvmlMeter | MeterUnavailable
    try:
        outcome = NvmlMeter.open()
    except MeterUnavailable as exc:
        outcome = exc
    if isinstance(outcome, MeterUnavailable):
        # No driver here (CI, this project's machines): NVML's own reason.
        assert "\n" not in str(outcome)
        assert str(outcome).startswith(("NVML did not start: ", "NVML found no", "CUDA_VISIBLE"))
    else:
        outcome.read()
        outcome.close()
