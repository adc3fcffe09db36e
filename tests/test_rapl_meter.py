"""The RAPL meter against fabricated powercap trees (no hardware needed)."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from powercap_tree import AMD_RANGE_UJ, INTEL_RANGE_UJ, PowercapTree, make_powercap_tree

from pytest_energy.meters import rapl
from pytest_energy.meters.base import (
    Meter,
    MeterError,
    MeterPermissionError,
    MeterUnavailable,
)
from pytest_energy.meters.rapl import RaplMeter

J = 1_000_000  # microjoules per joule

OpenMeter = Callable[..., RaplMeter]


@pytest.fixture
def open_meter() -> Iterator[OpenMeter]:
    """Open meters (without the watchdog thread unless asked) and close them all after."""
    meters: list[RaplMeter] = []

    def opener(root: Path, **kwargs: object) -> RaplMeter:
        kwargs.setdefault("watchdog", False)
        meter = RaplMeter.open(root, **kwargs)  # type: ignore[arg-type]
        meters.append(meter)
        return meter

    yield opener
    for meter in meters:
        meter.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "powercap"


def _watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pytest-energy-rapl-watchdog"]


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    # Generous bound: this only fails when the thread never acts at all,
    # never because a machine is slow.
    deadline = time.monotonic() + 30.0
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


# --- domains -----------------------------------------------------------------


def test_single_socket_package_and_dram(root: Path, open_meter: OpenMeter) -> None:
    tree = make_powercap_tree(root, energy_uj=123 * J)
    meter = open_meter(root)
    assert isinstance(meter, Meter)
    assert meter.read().joules == {"package": 0.0, "dram": 0.0}

    tree.advance("intel-rapl:0", 10 * J)
    tree.advance(tree.ids("dram")[0], 2 * J)
    reading = meter.read()

    assert reading.joules == pytest.approx({"package": 10.0, "dram": 2.0})
    assert reading.wraps == 0
    assert meter.info.summary == "rapl (measured: package x1 socket, dram)"


def test_two_sockets_summed_and_dram_separate(root: Path, open_meter: OpenMeter) -> None:
    tree = make_powercap_tree(root, sockets=2)
    meter = open_meter(root)

    tree.advance("intel-rapl:0", 10 * J)
    tree.advance("intel-rapl:1", 5 * J)
    dram0, dram1 = tree.ids("dram")
    tree.advance(dram0, 1 * J)
    tree.advance(dram1, 2 * J)

    assert meter.read().joules == pytest.approx({"package": 15.0, "dram": 3.0})
    info = meter.info
    assert [(d.name, d.scope) for d in info.domains] == [
        ("package", "cpu-package"),
        ("dram", "dram"),
    ]
    assert info.details["sockets"] == 2
    assert set(info.details["zones"]) == {  # type: ignore[call-overload]
        "package-0",
        "package-1",
        "package-0/dram",
        "package-1/dram",
    }
    assert info.summary == "rapl (measured: package x2 sockets, dram)"


def test_core_uncore_and_psys_are_never_counted(root: Path, open_meter: OpenMeter) -> None:
    tree = make_powercap_tree(root, core=True, uncore=True, psys=True, dram=False)
    meter = open_meter(root)

    tree.advance("intel-rapl:0", 4 * J)
    for name in ("core", "uncore", "psys"):
        tree.advance(tree.ids(name)[0], 1000 * J)

    assert meter.read().joules == pytest.approx({"package": 4.0})
    assert [d.name for d in meter.info.domains] == ["package"]
    assert meter.info.details["ignored_zones"] == {
        "package-0/core": "intel-rapl:0:0",
        "package-0/uncore": "intel-rapl:0:1",
        "psys": "intel-rapl:1",
    }
    assert meter.info.summary == "rapl (measured: package x1 socket)"


def test_mmio_duplicate_is_read_once_through_mmio(root: Path, open_meter: OpenMeter) -> None:
    tree = make_powercap_tree(root, mmio_duplicate=True, dram=False)
    meter = open_meter(root)

    # The same physical counter seen through both interfaces advances in both.
    tree.advance("intel-rapl:0", 7 * J)
    tree.advance("intel-rapl-mmio:0", 7 * J)
    assert meter.read().joules == pytest.approx({"package": 7.0})

    # Only the MMIO copy is read.
    tree.advance("intel-rapl:0", 100 * J)
    assert meter.read().joules == pytest.approx({"package": 7.0})
    zones = meter.info.details["zones"]
    assert zones == {
        "package-0": {
            "path": "intel-rapl-mmio:0/energy_uj",
            "interface": "intel-rapl-mmio",
            "domain": "package",
        }
    }
    assert "intel-rapl:0" in meter.info.details["shadowed_zones"]  # type: ignore[operator]


def test_tpmi_is_preferred_over_msr(root: Path, open_meter: OpenMeter) -> None:
    tree = make_powercap_tree(root, dram=False, core=False)
    tree.add_zone("intel-rapl-tpmi:0", "package-0")
    meter = open_meter(root)

    tree.advance("intel-rapl-tpmi:0", 3 * J)
    assert meter.read().joules == pytest.approx({"package": 3.0})
    assert meter.info.details["zones"]["package-0"]["interface"] == "intel-rapl-tpmi"  # type: ignore[index]


def test_unreadable_mmio_falls_back_to_msr(root: Path, open_meter: OpenMeter) -> None:
    tree = make_powercap_tree(root, mmio_duplicate=True, dram=False)
    tree.set_raw("intel-rapl-mmio:0", "")
    meter = open_meter(root)

    tree.advance("intel-rapl:0", 2 * J)
    assert meter.read().joules == pytest.approx({"package": 2.0})
    assert meter.info.details["zones"]["package-0"]["interface"] == "intel-rapl"  # type: ignore[index]


def test_amd_multi_die_packages_are_summed(root: Path, open_meter: OpenMeter) -> None:
    tree = make_powercap_tree(root, vendor="amd", sockets=1, dies=2)
    assert tree.ids("package-0-die-1") == ["intel-rapl:1"]
    meter = open_meter(root)

    tree.advance("intel-rapl:0", 6 * J)
    tree.advance("intel-rapl:1", 4 * J)
    for core in tree.ids("core"):
        tree.advance(core, 50 * J)

    assert meter.read().joules == pytest.approx({"package": 10.0})
    info = meter.info
    assert [d.name for d in info.domains] == ["package"]  # AMD has no DRAM domain
    assert info.details["sockets"] == 1
    assert info.summary == "rapl (measured: package x1 socket (2 dies))"
    # A 32-bit counter over AMD's range: the 15.26 uJ energy unit.
    assert info.resolution_j == pytest.approx(15.26e-6, rel=1e-3)
    assert info.domains[0].range_j == pytest.approx(AMD_RANGE_UJ / J)


def test_info(root: Path, open_meter: OpenMeter) -> None:
    make_powercap_tree(root, sockets=2)
    info = open_meter(root).info
    assert info.name == "rapl"
    assert info.method == "measured"
    assert info.update_period_s == 0.001
    assert info.resolution_j == pytest.approx(61.04e-6, rel=1e-3)
    assert info.domains[0].range_j == pytest.approx(INTEL_RANGE_UJ / J)
    assert info.details["zones"]["package-1/dram"] == {  # type: ignore[index]
        "path": "intel-rapl:1:1/energy_uj",
        "interface": "intel-rapl",
        "domain": "dram",
    }
    assert info.details["watchdog_interval_s"] == rapl.WATCHDOG_MAX_S
    assert info.details["range_unknown"] == []
    assert not info.virtual_clock


@pytest.mark.parametrize("flat_links", [True, False])
def test_nested_sub_zones_are_found(root: Path, open_meter: OpenMeter, flat_links: bool) -> None:
    tree = make_powercap_tree(root, sockets=2, flat_links=flat_links)
    meter = open_meter(root)
    tree.advance("intel-rapl:1:1", 2 * J)
    assert meter.read().joules == pytest.approx({"package": 0.0, "dram": 2.0})


def test_tree_can_be_loaded_again(root: Path, open_meter: OpenMeter) -> None:
    built = make_powercap_tree(root, sockets=2, psys=True, mmio_duplicate=True)
    meter = open_meter(root)
    loaded = PowercapTree.load(root)
    assert {z: (f.name, f.path, f.range_uj) for z, f in loaded.zones.items()} == {
        z: (f.name, f.path, f.range_uj) for z, f in built.zones.items()
    }
    assert loaded.flat_links
    loaded.advance("intel-rapl-mmio:1", 3 * J)
    assert meter.read().joules == pytest.approx({"package": 3.0, "dram": 0.0})


def test_root_may_be_the_control_type_directory(root: Path, open_meter: OpenMeter) -> None:
    # Zeus and pyRAPL point at /sys/class/powercap/intel-rapl.
    tree = make_powercap_tree(root)
    meter = open_meter(root / "intel-rapl")
    tree.advance("intel-rapl:0:1", 1 * J)
    assert meter.read().joules == pytest.approx({"package": 0.0, "dram": 1.0})


def test_reading_time_is_the_shared_clock(
    root: Path, open_meter: OpenMeter, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_powercap_tree(root)
    meter = open_meter(root)
    monkeypatch.setattr(rapl, "clock", lambda: 42.5)
    assert meter.read().t == 42.5


# --- wrap-around ---------------------------------------------------------------


@pytest.mark.parametrize(("vendor", "range_uj"), [("intel", INTEL_RANGE_UJ), ("amd", AMD_RANGE_UJ)])
def test_wrap_is_undone(root: Path, open_meter: OpenMeter, vendor: str, range_uj: int) -> None:
    tree = make_powercap_tree(root, vendor=vendor, dram=False)  # type: ignore[arg-type]
    tree.set_energy("intel-rapl:0", range_uj - 500_000)  # 0.5 J below the top
    meter = open_meter(root)
    assert meter.info.domains[0].range_j == pytest.approx(range_uj / J)

    tree.set_energy("intel-rapl:0", range_uj - 100_000)
    assert meter.read().joules["package"] == pytest.approx(0.4)
    # Past the top and back to a small value: +0.1 J to the top, +1.5 J after.
    tree.set_energy("intel-rapl:0", 1_500_000)
    reading = meter.read()

    assert reading.joules["package"] == pytest.approx(2.0)
    assert reading.wraps == 1


def test_wraps_of_several_zones_are_counted(root: Path, open_meter: OpenMeter) -> None:
    tree = make_powercap_tree(root, sockets=2, dram=False, energy_uj=INTEL_RANGE_UJ - J)
    meter = open_meter(root)
    tree.advance("intel-rapl:0", 3 * J)
    tree.advance("intel-rapl:1", 4 * J)
    reading = meter.read()
    assert reading.joules["package"] == pytest.approx(7.0)
    assert reading.wraps == 2


@pytest.mark.parametrize("max_range", [None, 0])
def test_decrease_with_unknown_range_is_an_error(
    root: Path, open_meter: OpenMeter, max_range: int | None
) -> None:
    tree = make_powercap_tree(root, dram=False, energy_uj=5 * J)
    tree.set_max_range("intel-rapl:0", max_range)
    meter = open_meter(root)
    assert meter.info.domains[0].range_j is None
    assert meter.info.details["range_unknown"] == ["package-0"]

    tree.set_energy("intel-rapl:0", 6 * J)
    assert meter.read().joules["package"] == pytest.approx(1.0)
    tree.set_energy("intel-rapl:0", 1 * J)
    with pytest.raises(MeterError, match="went backwards") as excinfo:
        meter.read()
    message = str(excinfo.value)
    assert "\n" not in message
    assert "package-0" in message
    # The totals cannot be trusted after a reset: later reads fail too.
    tree.set_energy("intel-rapl:0", 9 * J)
    with pytest.raises(MeterError, match="went backwards"):
        meter.read()


# --- the watchdog ----------------------------------------------------------------


def _long_window(tree: PowercapTree, meter: RaplMeter, *, poll: bool) -> float:
    """Five steps of 0.45 x the range (2.25 ranges, two wraps) in one window."""
    step = int(0.45 * AMD_RANGE_UJ)
    start = meter.read().joules["package"]
    for _ in range(5):
        tree.advance("intel-rapl:0", step)
        if poll:
            meter.poll()
    return meter.read().joules["package"] - start


def test_watchdog_polls_keep_a_long_window_right(root: Path, open_meter: OpenMeter) -> None:
    tree = make_powercap_tree(root, vendor="amd")
    meter = open_meter(root)

    energy = _long_window(tree, meter, poll=True)

    assert energy == pytest.approx(5 * int(0.45 * AMD_RANGE_UJ) / J)
    assert meter.read().wraps == 2
    assert meter.polls == 5


def test_without_polls_a_long_window_loses_whole_ranges(root: Path, open_meter: OpenMeter) -> None:
    # Why the watchdog exists: two wraps between reads look like none.
    tree = make_powercap_tree(root, vendor="amd")
    meter = open_meter(root)
    energy = _long_window(tree, meter, poll=False)
    assert energy == pytest.approx((5 * int(0.45 * AMD_RANGE_UJ) - 2 * AMD_RANGE_UJ) / J)


@pytest.mark.parametrize(
    ("range_uj", "expected_s"),
    [
        (INTEL_RANGE_UJ, 60.0),  # 131 s at 1000 W, capped
        (AMD_RANGE_UJ, AMD_RANGE_UJ / J / 2000.0),  # ~33 s
        (1000, 0.05),  # a tiny range: floored
    ],
)
def test_watchdog_interval(
    root: Path, open_meter: OpenMeter, range_uj: int, expected_s: float
) -> None:
    make_powercap_tree(root, range_uj=range_uj)
    meter = open_meter(root)
    assert meter.watchdog_interval_s == pytest.approx(expected_s)
    assert meter.info.details["watchdog_interval_s"] == pytest.approx(expected_s)


def test_watchdog_interval_uses_the_tightest_range() -> None:
    assert rapl.watchdog_interval([INTEL_RANGE_UJ / J, AMD_RANGE_UJ / J]) == pytest.approx(
        AMD_RANGE_UJ / J / 2000.0
    )
    assert rapl.watchdog_interval([None]) == rapl.WATCHDOG_MAX_S
    assert rapl.watchdog_interval([100.0], p_max_w=100.0) == pytest.approx(0.5)


def test_watchdog_thread_polls_and_close_stops_it(root: Path) -> None:
    # A 1000 uJ range gives the 0.05 s floor; the counters do not change, so
    # the thread's reads cannot race with the test's writes.
    make_powercap_tree(root, range_uj=1000)
    meter = RaplMeter.open(root)
    try:
        assert meter.watchdog_alive
        assert len(_watchdog_threads()) == 1
        _wait_for(lambda: meter.polls >= 2, "two watchdog polls")
    finally:
        meter.close()
    assert (meter.watchdog_alive, _watchdog_threads()) == (False, [])
    meter.close()  # idempotent
    with pytest.raises(MeterError, match="closed"):
        meter.read()


def test_close_closes_the_counter_files(root: Path) -> None:
    proc_fds = Path("/proc/self/fd")
    if not proc_fds.is_dir():
        pytest.skip("needs /proc/self/fd")

    def open_counters() -> int:
        targets = []
        for fd in os.listdir(proc_fds):
            try:
                targets.append(os.readlink(proc_fds / fd))
            except OSError:
                continue
        return sum(target.endswith("energy_uj") and str(root) in target for target in targets)

    make_powercap_tree(root, sockets=2)
    meter = RaplMeter.open(root)
    assert open_counters() == 4  # two packages, two DRAM zones
    meter.close()
    assert open_counters() == 0


def test_watchdog_failure_surfaces_on_the_next_read(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_powercap_tree(root, range_uj=1000)
    meter = RaplMeter.open(root)
    try:
        _fail_reads_of_open_counters(monkeypatch)
        _wait_for(lambda: not meter.watchdog_alive, "the watchdog to stop on the error")
        with pytest.raises(MeterError, match="disappeared"):
            meter.read()
    finally:
        meter.close()


# --- errors ------------------------------------------------------------------------


def _fail_reads_of_open_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads through open fds fail with ENODEV, as on sysfs once a zone is removed."""
    real = rapl._read_counter

    def read(source: int | str) -> int:
        if isinstance(source, int):
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
        return real(source)

    monkeypatch.setattr(rapl, "_read_counter", read)


def _deny(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Opening these files fails with EACCES, as for a non-root user since 2020.

    The tests run as root, where chmod cannot take read access away, hence the seam.
    """
    real = rapl._read_counter

    def read(source: int | str) -> int:
        if isinstance(source, str) and os.path.basename(source) in names:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), source)
        return real(source)

    monkeypatch.setattr(rapl, "_read_counter", read)


def test_permission_error_names_the_fixes(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_powercap_tree(root, sockets=2)
    _deny(monkeypatch, "energy_uj", "max_energy_range_uj")

    with pytest.raises(MeterPermissionError) as excinfo:
        RaplMeter.open(root)

    message = str(excinfo.value)
    assert isinstance(excinfo.value, MeterUnavailable)  # callers may fall back
    assert "\n" not in message
    assert "root" in message
    assert 'udev rule on SUBSYSTEM=="powercap"' in message
    assert "chmod a+r" in message
    assert f"{root}/intel-rapl*/energy_uj" in message
    assert _watchdog_threads() == []


def test_unreadable_range_alone_still_measures(
    root: Path, open_meter: OpenMeter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some distributions made max_energy_range_uj 0400 as well (pyJoules#13).
    tree = make_powercap_tree(root, dram=False)
    _deny(monkeypatch, "max_energy_range_uj")
    meter = open_meter(root)
    tree.advance("intel-rapl:0", 1 * J)
    assert meter.read().joules == pytest.approx({"package": 1.0})
    assert meter.info.details["range_unknown"] == ["package-0"]


def test_missing_root_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(MeterUnavailable, match="no RAPL powercap zones under") as excinfo:
        RaplMeter.open(tmp_path / "absent")
    assert not isinstance(excinfo.value, MeterPermissionError)
    assert "\n" not in str(excinfo.value)


def test_root_without_rapl_zones_is_unavailable(root: Path) -> None:
    root.mkdir()
    (root / "dtpm").mkdir()  # another powercap control type
    with pytest.raises(MeterUnavailable, match="no RAPL powercap zones under"):
        RaplMeter.open(root)


def test_only_psys_is_unavailable(root: Path) -> None:
    tree = PowercapTree(root)
    root.mkdir()
    tree.add_zone("intel-rapl:0", "psys")
    with pytest.raises(MeterUnavailable, match=r"no RAPL package zone .*psys"):
        RaplMeter.open(root)


def test_one_unreadable_socket_fails_the_meter(root: Path) -> None:
    # Summing only the readable socket would under-read without a word.
    tree = make_powercap_tree(root, sockets=2, dram=False)
    tree.set_raw("intel-rapl:1", "garbage\n")
    with pytest.raises(MeterUnavailable, match="intel-rapl:1"):
        RaplMeter.open(root)


def test_unreadable_dram_drops_dram_only(root: Path, open_meter: OpenMeter) -> None:
    tree = make_powercap_tree(root, sockets=2)
    tree.set_raw("intel-rapl:1:1", "")
    meter = open_meter(root)
    assert [d.name for d in meter.info.domains] == ["package"]
    assert "intel-rapl:1:1" in str(meter.info.details["dram_unavailable"])
    assert meter.info.summary == "rapl (measured: package x2 sockets)"
    tree.advance("intel-rapl:0", 1 * J)
    assert meter.read().joules == pytest.approx({"package": 1.0})


def test_zone_disappearing_mid_run_is_a_meter_error(
    root: Path, open_meter: OpenMeter, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_powercap_tree(root, sockets=2)
    meter = open_meter(root)
    tree.advance("intel-rapl:1", 1 * J)
    assert meter.read().joules["package"] == pytest.approx(1.0)

    tree.remove_zone("intel-rapl:1")
    _fail_reads_of_open_counters(monkeypatch)
    with pytest.raises(MeterError) as excinfo:
        meter.read()
    message = str(excinfo.value)
    assert "\n" not in message
    assert "disappeared" in message
    assert "No such device" in message


def test_garbled_counter_mid_run_is_a_meter_error(root: Path, open_meter: OpenMeter) -> None:
    tree = make_powercap_tree(root, dram=False)
    meter = open_meter(root)
    tree.set_raw("intel-rapl:0", "")
    with pytest.raises(MeterError, match=r"intel-rapl:0/energy_uj"):
        meter.read()
    with pytest.raises(MeterError):
        meter.poll()
