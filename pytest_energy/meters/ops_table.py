"""The ops meter's price list: energy per arithmetic operation and per byte moved.

The bundled table (``pytest_energy/data/ops-energy-45nm.json``, provenance in
``data/PROVENANCE.md``) holds Horowitz's ISSCC 2014 figures for a 45 nm process and
Han et al.'s per-32-bit memory figures derived from them. Prices are kept as whole
femtojoules, so that joules are computed from whole operation counts with integer
arithmetic: the same work gives the same joules, bit for bit, on any machine.

No torch here: the table is plain data and is read only when the ops meter opens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any

from pytest_energy.frozen import frozen

TABLE_FILE = "ops-energy-45nm.json"
TABLE_FORMAT = 1
#: femtojoules per picojoule: every cited figure is a whole number of femtojoules.
FJ_PER_PJ = 1000
KINDS = ("add", "mult")
DTYPES = ("int8", "int32", "fp16", "bf16", "fp32")
LEVELS = ("sram", "dram")


class OpsTableError(ValueError):
    """The energy table is malformed; the message names the entry."""


@frozen
class EnergyTable:
    """Whole femtojoules per operation (kind, dtype) and per byte (memory level)."""

    version: str
    technology_node: str
    source: str
    op_fj: Mapping[tuple[str, str], int]
    byte_fj: Mapping[str, int]

    def describe(self) -> dict[str, object]:
        """Facts for the results file: the table, its node and source, every price in pJ."""
        return {
            "table_version": self.version,
            "technology_node": self.technology_node,
            "table_source": self.source,
            "pj_per_op": {f"{k}:{d}": fj / FJ_PER_PJ for (k, d), fj in sorted(self.op_fj.items())},
            "pj_per_byte": {level: fj / FJ_PER_PJ for level, fj in sorted(self.byte_fj.items())},
        }


def _whole_fj(value: object, where: str, per: int = 1) -> int:
    """A figure in pJ (per ``per`` units) as whole femtojoules per unit, or an error."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise OpsTableError(f"{where}: expected a number of pJ, got {value!r}")
    try:
        fj = Decimal(value) * FJ_PER_PJ / per
    except InvalidOperation:
        raise OpsTableError(f"{where}: {value!r} is not a number") from None
    if not fj.is_finite() or fj <= 0 or fj != fj.to_integral_value():
        raise OpsTableError(f"{where}: {value!r} pJ is not a positive whole number of fJ")
    return int(fj)


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise OpsTableError(f"{where}: '{key}' must be a non-empty string")
    return value


def parse_table(document: object) -> EnergyTable:
    """Check and convert a table document (numbers parsed as :class:`Decimal`)."""
    if not isinstance(document, dict) or document.get("pytest_energy_ops_table") != TABLE_FORMAT:
        raise OpsTableError(f"not an ops energy table of format {TABLE_FORMAT}")
    op_fj: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(document.get("operations") or []):
        where = f"operations[{index}]"
        if not isinstance(entry, dict):
            raise OpsTableError(f"{where}: must be an object")
        key = (entry.get("kind"), entry.get("dtype"))
        if key[0] not in KINDS or key[1] not in DTYPES:
            raise OpsTableError(f"{where}: unknown operation {key}")
        if key in op_fj:
            raise OpsTableError(f"{where}: {key} listed twice")
        _text(entry, "source", where)
        op_fj[(str(key[0]), str(key[1]))] = _whole_fj(entry.get("pj"), where)
    missing = [(k, d) for k in KINDS for d in DTYPES if (k, d) not in op_fj]
    if missing:
        raise OpsTableError(f"operations: no price for {missing}")
    byte_fj: dict[str, int] = {}
    for index, entry in enumerate(document.get("memory") or []):
        where = f"memory[{index}]"
        if not isinstance(entry, dict) or entry.get("level") not in LEVELS:
            raise OpsTableError(f"{where}: 'level' must be one of {LEVELS}")
        _text(entry, "source", where)
        # Published per 32-bit access; the meter counts bytes.
        byte_fj[str(entry["level"])] = _whole_fj(entry.get("pj_per_32_bits"), where, per=4)
    if set(byte_fj) != set(LEVELS):
        raise OpsTableError(f"memory: needs exactly the levels {LEVELS}")
    return EnergyTable(
        version=_text(document, "version", "table"),
        technology_node=_text(document, "technology_node", "table"),
        source=_text(document, "source", "table"),
        op_fj=op_fj,
        byte_fj=byte_fj,
    )


def load_table() -> EnergyTable:
    """The bundled table; a broken package file is a bug, reported as :class:`OpsTableError`."""
    text = resources.files("pytest_energy").joinpath("data").joinpath(TABLE_FILE).read_text("utf-8")
    return parse_table(json.loads(text, parse_float=Decimal))
