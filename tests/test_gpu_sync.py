"""synchronize_cuda waits for queued kernels only where torch already uses CUDA."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from pytest_energy.measure import window
from pytest_energy.measure.window import synchronize_cuda


class FakeCuda:
    """The parts of ``torch.cuda`` the helper may touch, recording calls."""

    def __init__(self, initialized: bool, devices: int) -> None:
        self.initialized = initialized
        self.devices = devices
        self.synchronized: list[int] = []
        self.count_calls = 0

    def is_initialized(self) -> bool:
        return self.initialized

    def device_count(self) -> int:
        self.count_calls += 1
        return self.devices

    def synchronize(self, device: int | None = None) -> None:
        assert device is not None, "every device is synchronised explicitly"
        self.synchronized.append(device)


def install_fake_torch(
    monkeypatch: pytest.MonkeyPatch,
    cuda: FakeCuda | None,
    contexts: set[int] | None = None,
) -> types.ModuleType:
    torch = types.ModuleType("torch")
    if cuda is not None:
        torch.cuda = cuda  # type: ignore[attr-defined]
    if contexts is not None:
        torch._C = types.SimpleNamespace(  # type: ignore[attr-defined]
            _cuda_hasPrimaryContext=lambda device: device in contexts
        )
    monkeypatch.setitem(sys.modules, "torch", torch)
    return torch


def test_without_torch_nothing_happens_and_torch_stays_unimported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert synchronize_cuda() is False
    assert "torch" not in sys.modules


def test_blocked_torch_import_is_no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    assert synchronize_cuda() is False


def test_torch_without_cuda_initialised_is_not_synchronised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cuda = FakeCuda(initialized=False, devices=2)
    install_fake_torch(monkeypatch, cuda)
    assert synchronize_cuda() is False
    assert cuda.synchronized == []
    assert cuda.count_calls == 0  # nothing is asked of torch before CUDA is in use


def test_initialised_cuda_is_synchronised_on_every_device(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = FakeCuda(initialized=True, devices=3)
    install_fake_torch(monkeypatch, cuda)
    assert synchronize_cuda() is True
    assert cuda.synchronized == [0, 1, 2]


def test_devices_without_a_context_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # Synchronising device 1 would create a CUDA context on it just for us.
    cuda = FakeCuda(initialized=True, devices=3)
    install_fake_torch(monkeypatch, cuda, contexts={0, 2})
    assert synchronize_cuda() is True
    assert cuda.synchronized == [0, 2]


def test_partially_imported_torch_is_not_synchronised(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_torch(monkeypatch, None)
    assert synchronize_cuda() is False


def test_cuda_errors_surface(monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenCuda(FakeCuda):
        def synchronize(self, device: int | None = None) -> None:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    install_fake_torch(monkeypatch, BrokenCuda(initialized=True, devices=1))
    with pytest.raises(RuntimeError, match="illegal memory access"):
        synchronize_cuda()


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_real_torch_without_cuda_work_is_not_initialised() -> None:
    # In a subprocess: importing torch here would leak into other tests.
    repo = Path(window.__file__).resolve().parents[2]
    script = (
        "import torch\n"
        "from pytest_energy.measure.window import synchronize_cuda\n"
        "print(synchronize_cuda(), torch.cuda.is_initialized())\n"
    )
    env = dict(os.environ, PYTHONPATH=str(repo))
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
