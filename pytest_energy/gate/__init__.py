"""The energy regression gate: baselines in, verdicts and an exit status out.

Pure statistics first (:mod:`.rule`, :mod:`.screening`, :mod:`.suite`,
:mod:`.decision`, :mod:`.stability`), then the checks of the ``energy``
marker (:mod:`.budgets`, :mod:`.variants`), then what applies them to a run:
:mod:`.baseline` chooses what a run is compared with and :mod:`.run_gate`
decides a whole run record. The reasoning behind each figure is in
``docs/gate.md``. Nothing here reads a meter.
"""

from __future__ import annotations

from pytest_energy.gate.decision import GateOutcome, decide, evaluate
from pytest_energy.gate.rule import (
    DISPLAY_CONFIDENCE,
    GateInput,
    Spread,
    gate_problem,
    holm_adjust,
    holm_reject,
    not_gated,
    not_gated_for_flags,
)
from pytest_energy.gate.screening import ScreenResult, screen
from pytest_energy.gate.stability import Stability, session_stability, survives_drift
from pytest_energy.gate.suite import suite_check

__all__ = [
    "DISPLAY_CONFIDENCE",
    "GateInput",
    "GateOutcome",
    "ScreenResult",
    "Spread",
    "Stability",
    "decide",
    "evaluate",
    "gate_problem",
    "holm_adjust",
    "holm_reject",
    "not_gated",
    "not_gated_for_flags",
    "screen",
    "session_stability",
    "suite_check",
    "survives_drift",
]
