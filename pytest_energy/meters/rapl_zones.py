"""The powercap tree: which RAPL zones exist, and which of them a session counts.

Real sysfs lists each zone twice (flat and nested), interfaces come as
``intel-rapl``, ``intel-rapl-mmio`` and ``intel-rapl-tpmi``, and only package
and DRAM zones are counted (core, uncore and psys overlap the package).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from pytest_energy.frozen import frozen

#: Zones are "<control type>:<package>[:<sub-zone>]"; control types are
#: intel-rapl (MSR driver, also used for AMD and Hygon), intel-rapl-mmio
#: (recent Intel clients) and intel-rapl-tpmi (new Xeons, Linux 6.5).
_ZONE_RE = re.compile(r"^(intel-rapl(?:-[a-z]+)*)((?::\d+)+)$")
_CONTROL_TYPE_RE = re.compile(r"^intel-rapl(?:-[a-z]+)*$")
#: "package-0", and "package-0-die-1" on multi-die parts (the kernel names a
#: domain per die when a package has more than one).
PACKAGE_RE = re.compile(r"^package-(\d+)(?:-die-\d+)?$")


@frozen
class Zone:
    """One powercap zone as found under the root."""

    zone_id: str
    interface: str
    indices: tuple[int, ...]
    name: str
    path: Path


def discover_zones(root: Path) -> dict[str, Zone]:
    """Every intel-rapl* zone under ``root``, once each, keyed by zone id.

    Real sysfs lists each zone twice (flat ``intel-rapl:0:0`` and nested
    ``intel-rapl:0/intel-rapl:0:0``); only names that look like zones or
    control types are followed, which keeps the walk out of the ``subsystem``
    and ``device`` links that loop back into sysfs.
    """
    zones: dict[str, Zone] = {}
    visited: set[str] = set()
    queue = [root]
    while queue:
        directory = queue.pop(0)
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in entries:
            match = _ZONE_RE.match(entry.name)
            if match is None and _CONTROL_TYPE_RE.match(entry.name) is None:
                continue
            try:
                if not entry.is_dir():
                    continue
            except OSError:
                continue
            real = os.path.realpath(entry.path)
            if real in visited:
                continue
            visited.add(real)
            path = Path(entry.path)
            if match is not None and entry.name not in zones:
                try:
                    name = (path / "name").read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError):
                    continue
                indices = tuple(int(part) for part in match.group(2).split(":")[1:])
                zones[entry.name] = Zone(entry.name, match.group(1), indices, name, path)
            queue.append(path)
    return zones


def classify_zone(zone: Zone, zones: Mapping[str, Zone]) -> tuple[str | None, str]:
    """The domain a zone counts towards (or None) and its label.

    The label names the socket the zone belongs to, so the same domain seen
    through two interfaces gets the same label: ``package-0``,
    ``package-0/dram``, ``package-0/core``, ``psys``.
    """
    top = zones.get(f"{zone.interface}:{zone.indices[0]}")
    if len(zone.indices) == 1:
        owner = None
    elif top is not None:
        owner = top.name
    else:
        owner = f"zone-{zone.indices[0]}"
    label = zone.name if owner is None else f"{owner}/{zone.name}"
    if PACKAGE_RE.match(zone.name):
        return "package", label
    if zone.name == "dram":
        return "dram", label
    return None, label
