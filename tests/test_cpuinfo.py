"""The CPU model and ISA flags of the machine fingerprint, from fabricated /proc/cpuinfo files.

The kernel writes /proc/cpuinfo one processor's block at a time as it is read; the
fingerprint reads the first block only, and the whole file where that block has no
model name (some ARM kernels print it once, after the processors).
"""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from pytest_energy.measure import machine

X86_BLOCK = """processor\t: {n}
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni amx_tile amx_int8
bogomips\t: 4000.00

"""


class CountingFile:
    """/proc/cpuinfo as the kernel serves it: read by the caller in chunks."""

    def __init__(self, text: str) -> None:
        self.data = text.encode()
        self.served = 0

    def open(self, mode: str) -> CountingFile:
        assert mode == "rb"
        return self

    def __enter__(self) -> CountingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.served + size
        chunk = self.data[self.served : end]
        self.served += len(chunk)
        return chunk


def test_the_first_processor_is_read_not_the_whole_file() -> None:
    many = CountingFile("".join(X86_BLOCK.format(n=n) for n in range(384)))
    name, flags = machine._cpuinfo(many)  # type: ignore[arg-type]
    assert name == "Intel(R) Xeon(R) Platinum 8480+"
    assert flags == ["avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "fma"]
    assert many.served == machine._BLOCK_READ  # one read, of 65 kB
    assert len(many.data) > 15 * machine._BLOCK_READ


def test_a_model_name_printed_after_the_processors_is_found(tmp_path: Path) -> None:
    arm = tmp_path / "cpuinfo"
    blocks = "".join(f"processor\t: {n}\nFeatures\t: fp asimd\n\n" for n in range(64))
    arm.write_text(blocks + "Hardware\t: X\nmodel name\t: Neoverse-V2\n", encoding="utf-8")
    assert machine._cpuinfo(arm) == ("Neoverse-V2", [])


def test_a_block_longer_than_a_read_and_a_key_written_twice(tmp_path: Path) -> None:
    long = tmp_path / "cpuinfo"
    flags = " ".join(f"flag{n}" for n in range(2000)) + " avx2"
    long.write_text(
        f"processor\t: 0\nmodel name\t: First\nmodel name\t: Second\nflags\t\t: {flags}\n\n"
        "processor\t: 1\nmodel name\t: Other\nflags\t\t: fma\n\n",
        encoding="utf-8",
    )
    assert len(flags) > machine._BLOCK_READ
    assert machine._cpuinfo(long) == ("First", ["avx2"])


@pytest.mark.parametrize("text", ["", "processor\t: 0\nmodel name\t:\n\n"])
def test_no_model_name_falls_back_to_the_platform(tmp_path: Path, text: str) -> None:
    bare = tmp_path / "cpuinfo"
    bare.write_text(text, encoding="utf-8")
    expected = platform.processor() or platform.machine() or "unknown CPU"
    assert machine._cpuinfo(bare) == (expected, [])


def test_an_unreadable_file_falls_back_to_the_platform(tmp_path: Path) -> None:
    expected = platform.processor() or platform.machine() or "unknown CPU"
    assert machine._cpuinfo(tmp_path / "missing") == (expected, [])
