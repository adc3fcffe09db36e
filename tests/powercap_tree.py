"""Fabricated Linux powercap (RAPL) sysfs trees for tests.

No machine we test on exposes RAPL (VMs and hosted CI runners have no
``/sys/class/powercap``), so tests build a look-alike in a temporary
directory and point the meter at it (``RaplMeter.open(root)``, or the
plugin's ``--energy-rapl-root=<dir>``)::

    tree = make_powercap_tree(tmp_path / "powercap", sockets=2)
    meter = RaplMeter.open(tree.root)
    tree.advance("intel-rapl:0", 5_000_000)   # +5 J on package-0, wrapping like hardware

The layout mirrors the kernel's: each control type is a directory holding
its top-level zones, sub-zones nest inside their parent, and every zone is
also listed flat at the root through a symlink (``intel-rapl:0:0``), as real
``/sys/class/powercap`` lists it. Each zone holds ``name``, ``energy_uj``,
``max_energy_range_uj``, ``enabled`` and a ``subsystem`` link back to the root
(a loop, as in sysfs, that a discovery walk must not follow).

The module imports only the standard library, so a pytester test can copy
it beside its inner tests, which then move counters themselves
(``PowercapTree.load(root).advance(...)``) while the plugin measures.

Counter files are rewritten in place, so a meter that keeps them open sees
new values. The rewrite is not atomic against a concurrent reader: change
counters only while no watchdog thread can poll (with the default ranges its
first poll comes after about a minute) or open the meter without one.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

#: 2^32 x 61.035 uJ: Intel client and server parts (powercap/raplcap#14).
INTEL_RANGE_UJ = 262_143_328_850
#: ~2^32 x 15.26 uJ: AMD EPYC 7543.
AMD_RANGE_UJ = 65_532_610_987

_ZONE_ID_RE = re.compile(r"^(intel-rapl(?:-[a-z]+)*)((?::\d+)+)$")

Vendor = Literal["intel", "amd"]


@dataclass
class FakeZone:
    """One fabricated zone."""

    zone_id: str
    name: str
    #: The zone's real directory (nested under its control type and parent).
    path: Path
    range_uj: int | None


@dataclass
class PowercapTree:
    """A fabricated powercap tree rooted at :attr:`root`."""

    root: Path
    zones: dict[str, FakeZone] = field(default_factory=dict)
    flat_links: bool = True

    @classmethod
    def load(cls, root: Path) -> PowercapTree:
        """Attach to a tree built earlier (for example by the outer test of a pytester run)."""
        tree = cls(root)
        # The real directories sit under the control types; the flat entries
        # and the subsystem links are symlinks, not followed.
        pending = [d for d in root.iterdir() if ":" not in d.name and not d.is_symlink()]
        while pending:
            directory = pending.pop()
            for child in directory.iterdir():
                if _ZONE_ID_RE.match(child.name) and child.is_dir() and not child.is_symlink():
                    range_file = child / "max_energy_range_uj"
                    range_uj = int(range_file.read_text()) if range_file.exists() else None
                    name = (child / "name").read_text(encoding="utf-8").strip()
                    tree.zones[child.name] = FakeZone(child.name, name, child, range_uj or None)
                    pending.append(child)
        tree.flat_links = any((root / zone_id).is_symlink() for zone_id in tree.zones)
        return tree

    def path(self, zone_id: str) -> Path:
        """The real directory of a zone."""
        return self.zones[zone_id].path

    def ids(self, name: str | None = None, interface: str | None = None) -> list[str]:
        """Zone ids, optionally only those with this ``name`` or control type."""
        return sorted(
            zone_id
            for zone_id, zone in self.zones.items()
            if (name is None or zone.name == name)
            and (interface is None or zone_id.startswith(f"{interface}:"))
        )

    def add_zone(
        self,
        zone_id: str,
        name: str,
        *,
        range_uj: int | None = INTEL_RANGE_UJ,
        energy_uj: int = 0,
    ) -> FakeZone:
        """Create a zone; a sub-zone's parent (``intel-rapl:0`` for ``intel-rapl:0:1``) must exist.

        ``range_uj=None`` leaves ``max_energy_range_uj`` out.
        """
        match = _ZONE_ID_RE.match(zone_id)
        if match is None:
            raise ValueError(f"not a RAPL zone id: {zone_id!r}")
        interface = match.group(1)
        if zone_id.count(":") == 1:
            parent = self.root / interface
        else:
            parent = self.path(zone_id.rsplit(":", 1)[0])
        directory = parent / zone_id
        directory.mkdir(parents=True)
        (directory / "name").write_text(f"{name}\n", encoding="utf-8")
        (directory / "enabled").write_text("1\n", encoding="utf-8")
        (directory / "energy_uj").write_text(f"{energy_uj}\n", encoding="utf-8")
        if range_uj is not None:
            (directory / "max_energy_range_uj").write_text(f"{range_uj}\n", encoding="utf-8")
        (directory / "subsystem").symlink_to(os.path.relpath(self.root, directory))
        if self.flat_links:
            (self.root / zone_id).symlink_to(os.path.relpath(directory, self.root))
        zone = FakeZone(zone_id, name, directory, range_uj)
        self.zones[zone_id] = zone
        return zone

    def energy(self, zone_id: str) -> int:
        """The raw counter of a zone, in microjoules."""
        return int((self.path(zone_id) / "energy_uj").read_text(encoding="utf-8"))

    def set_energy(self, zone_id: str, uj: int) -> None:
        """Set the raw counter, in place so that open file descriptors see it."""
        self._write_in_place(self.path(zone_id) / "energy_uj", f"{uj}\n")

    def advance(self, zone_id: str, uj: int) -> int:
        """Add ``uj`` to a counter, wrapping at its range like the hardware; the new raw value."""
        range_uj = self.zones[zone_id].range_uj
        value = self.energy(zone_id) + uj
        if range_uj:
            value %= range_uj
        self.set_energy(zone_id, value)
        return value

    def set_max_range(self, zone_id: str, uj: int | None) -> None:
        """Rewrite ``max_energy_range_uj``; None removes the file (unreadable)."""
        path = self.path(zone_id) / "max_energy_range_uj"
        self.zones[zone_id].range_uj = uj or None
        if uj is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(f"{uj}\n", encoding="utf-8")

    def set_raw(self, zone_id: str, text: str) -> None:
        """Write arbitrary text into ``energy_uj`` (a garbled or empty counter)."""
        self._write_in_place(self.path(zone_id) / "energy_uj", text)

    def remove_zone(self, zone_id: str) -> None:
        """Delete a zone, its sub-zones and their flat links.

        A meter holding the counter open still reads the deleted file; on
        real sysfs the read fails with ENODEV instead, which tests simulate
        through the meter's read seam.
        """
        directory = self.path(zone_id)
        for other in [z for z in self.zones if z == zone_id or z.startswith(f"{zone_id}:")]:
            (self.root / other).unlink(missing_ok=True)
            del self.zones[other]
        shutil.rmtree(directory)

    @staticmethod
    def _write_in_place(path: Path, text: str) -> None:
        data = text.encode("ascii")
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)


def make_powercap_tree(
    root: Path,
    *,
    sockets: int = 1,
    dies: int = 1,
    dram: bool | None = None,
    core: bool = True,
    uncore: bool = False,
    psys: bool = False,
    mmio_duplicate: bool = False,
    range_uj: int | None = None,
    dram_range_uj: int | None = None,
    vendor: Vendor = "intel",
    interface: str = "intel-rapl",
    flat_links: bool = True,
    energy_uj: int = 0,
) -> PowercapTree:
    """Build a powercap tree like a real machine's under ``root`` (created if missing).

    Per package (``sockets`` x ``dies`` top-level zones, named ``package-N``,
    or ``package-N-die-M`` when ``dies > 1`` as the kernel does) the sub-zones
    are ``core``, ``uncore`` and ``dram``, in that order, as enabled.
    ``vendor="amd"`` defaults to AMD's range and to no DRAM zone (AMD RAPL has
    none); ``dram`` overrides. ``psys`` adds a top-level platform zone after
    the packages; ``mmio_duplicate`` lists every package again through
    ``intel-rapl-mmio``, as recent Intel clients do. ``range_uj`` defaults to
    the vendor's range (``INTEL_RANGE_UJ`` or ``AMD_RANGE_UJ``); ``dram_range_uj``
    to ``range_uj``. ``energy_uj`` is every counter's starting value.
    """
    root.mkdir(parents=True, exist_ok=True)
    if range_uj is None:
        range_uj = AMD_RANGE_UJ if vendor == "amd" else INTEL_RANGE_UJ
    if dram is None:
        dram = vendor == "intel"
    if dram_range_uj is None:
        dram_range_uj = range_uj
    tree = PowercapTree(root, flat_links=flat_links)
    index = 0
    for socket in range(sockets):
        for die in range(dies):
            name = f"package-{socket}-die-{die}" if dies > 1 else f"package-{socket}"
            package = f"{interface}:{index}"
            tree.add_zone(package, name, range_uj=range_uj, energy_uj=energy_uj)
            wanted = [("core", core), ("uncore", uncore and vendor == "intel"), ("dram", dram)]
            for sub, sub_name in enumerate(n for n, on in wanted if on):
                sub_range = dram_range_uj if sub_name == "dram" else range_uj
                tree.add_zone(f"{package}:{sub}", sub_name, range_uj=sub_range, energy_uj=energy_uj)
            if mmio_duplicate:
                tree.add_zone(
                    f"intel-rapl-mmio:{index}", name, range_uj=range_uj, energy_uj=energy_uj
                )
            index += 1
    if psys:
        tree.add_zone(f"{interface}:{index}", "psys", range_uj=range_uj, energy_uj=energy_uj)
    return tree
