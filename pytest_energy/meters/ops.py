"""The ops meter: torch operations counted, priced with a cited energy table.

A deterministic alternative to the CPU-time model on machines without energy
counters: inside each window it counts what torch computes (multiply-accumulates of
matrix products and convolutions by dtype, element-wise operations, bytes of weights
and activations moved; :mod:`.ops_count`) and turns the counts into joules with
Horowitz's 45 nm energy per operation and per byte (:mod:`.ops_table`). Its numbers
are ``modelled`` and say so. The same work gives the same joules on any machine and
in any process, so one round decides a comparison, and baselines carry across runner
CPUs (hardware class ``ops-<table version>``).

Two domains: ``ops-compute`` (arithmetic) and ``ops-memory`` (bytes moved). Work torch
never dispatches (pure Python, numpy, other libraries) is not seen: a window in which
nothing was counted reads 0 J and is flagged ``uncounted`` by the window, never shown
as free work.

Joules are exact. Counts are whole numbers and prices whole femtojoules, so each
interval between two readings has an exact energy; it is rounded once to a multiple
of :data:`QUANTUM_J` (2**-40 J, about 0.9 pJ) and added to a whole-number total.
Readings are that total times the quantum, exact in a float up to 2**53 quanta (8 kJ),
so a window's difference of two readings is the same float in every run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from pytest_energy.meters.base import DomainInfo, MeterInfo, MeterUnavailable, Reading, clock
from pytest_energy.meters.ops_table import EnergyTable, load_table

METER_NAME = "ops"
COMPUTE = "ops-compute"
MEMORY = "ops-memory"
#: Readings are whole multiples of this many joules (see the module docstring).
QUANTUM_BITS = 40
QUANTUM_J = 2.0**-QUANTUM_BITS
_FJ_PER_J = 10**15
#: Counts change with every operation; nothing to wait for between readings. The
#: window code asks for windows of 10 periods to resolve: any window resolves.
UPDATE_PERIOD_S = 1e-6
BYTES_MODEL = (
    "weights (nn.Parameter tensors and views of them, packed quantized weights) read from "
    "DRAM by every operation that uses them; all other tensors read and written at SRAM "
    "cost; a model, not a cache simulation"
)


def hardware_class(table: EnergyTable) -> str:
    """What ops-meter baselines are keyed by: the table, not the machine."""
    return f"{METER_NAME}-{table.version}"


def _quanta(femtojoules: int) -> int:
    """``femtojoules`` as the nearest whole number of quanta, exactly (halves round up)."""
    return (2 * femtojoules * (1 << QUANTUM_BITS) + _FJ_PER_J) // (2 * _FJ_PER_J)


class OpsMeter:
    """Counts torch work in this thread from open to close; reads are priced totals."""

    def __init__(self, table: EnergyTable | None = None) -> None:
        self._table = table if table is not None else load_table()
        try:
            from pytest_energy.meters import ops_count
        except ImportError as exc:
            raise MeterUnavailable(
                f"the ops meter counts torch operations, and torch cannot be imported ({exc})"
            ) from None
        self._count = ops_count
        self.tally = ops_count.OpTally()
        self._last_ops: Counter[tuple[str, str]] = Counter()
        self._last_bytes: Counter[str] = Counter()
        self._quanta = {COMPUTE: 0, MEMORY: 0}
        self._info = MeterInfo(
            name=METER_NAME,
            method="modelled",
            update_period_s=UPDATE_PERIOD_S,
            resolution_j=QUANTUM_J,
            domains=(DomainInfo(COMPUTE, "counted-ops"), DomainInfo(MEMORY, "counted-bytes")),
            details={
                **self._table.describe(),
                "hardware_class": hardware_class(self._table),
                "deterministic": True,
                "counts": "torch operations dispatched in this thread (TorchDispatchMode)",
                "bytes_model": BYTES_MODEL,
            },
            summary=(
                f"ops (modelled: torch operations counted x energy per operation and per byte, "
                f"{self._table.technology_node}, Horowitz ISSCC 2014; table "
                f"{self._table.version}; pure-Python work is not counted)"
            ),
        )
        self._mode: Any = ops_count.start_counting(self.tally)

    @property
    def info(self) -> MeterInfo:
        return self._info

    def _femtojoules(self, prices: Mapping[Any, int], now: Counter[Any], last: Counter[Any]) -> int:
        return sum((now[key] - last[key]) * fj for key, fj in prices.items())

    def read(self) -> Reading:
        ops, moved = Counter(self.tally.ops), Counter(self.tally.bytes)
        self._quanta[COMPUTE] += _quanta(self._femtojoules(self._table.op_fj, ops, self._last_ops))
        self._quanta[MEMORY] += _quanta(
            self._femtojoules(self._table.byte_fj, moved, self._last_bytes)
        )
        self._last_ops, self._last_bytes = ops, moved
        return Reading(
            t=clock(), joules={name: count * QUANTUM_J for name, count in self._quanta.items()}
        )

    def close(self) -> None:
        if self._mode is not None:
            self._count.stop_counting(self._mode)
            self._mode = None
