"""The HTML report's methodology section: how each number was obtained, and what it leaves out.

A reader who doubts a figure finds here the meters and their resolution, the
window and the rounds, idle power, the gate's rule, what no meter sees (power
supply, cooling, other devices), and the provenance of the carbon intensity:
the session's carbon, totals and calibration shown field by field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterator

from pytest_energy.frozen import frozen
from pytest_energy.record import Calibration, CarbonSummary, RunRecord, Totals, to_plain
from pytest_energy.report import format as fmt
from pytest_energy.report.html_views import percent, plain_text
from pytest_energy.report.overview import carbon_sources, uses_ops_meter

__all__ = ["Methodology", "methodology"]


@frozen
class Methodology:
    meters: list[dict[str, str]]
    how: list[str]
    excluded: list[str]
    #: Where the carbon intensity came from, field by field, and the labels used.
    attribution: list[tuple[str, str]]
    #: The calibration workload's figures and the session totals, field by field.
    settings: list[tuple[str, str]]


def _fields(
    record_part: Totals | Calibration | CarbonSummary, *, absent_when_empty: Collection[str] = ()
) -> Iterator[tuple[str, str]]:
    """A record dataclass as (field name, shown value) pairs, sorted by name.

    Fields named in ``absent_when_empty`` are left out while None, "" or empty:
    older results files did not write them then, and an empty value is no fact.
    Nested parts (the embodied summary) are shown as their JSON form.
    """
    for f in sorted(dataclasses.fields(record_part), key=lambda f: f.name):
        value = getattr(record_part, f.name)
        if f.name in absent_when_empty and value in (None, "", []):
            continue
        if dataclasses.is_dataclass(value):
            value = to_plain(value)
        yield f.name, plain_text(value)


def _meter_rows(record: RunRecord) -> list[dict[str, str]]:
    return [
        {
            "name": meter.name,
            "method": meter.method,
            "summary": meter.summary,
            "period": fmt.duration(meter.update_period_s),
            "resolution": fmt.energy(meter.resolution_j),
            "domains": ", ".join(f"{d} ({scope})" for d, scope in sorted(meter.domains.items())),
        }
        for meter in record.session.meters
    ]


def _how(record: RunRecord) -> list[str]:
    """How each number was obtained: the window, the rounds, idle power, the gate."""
    session = record.session
    tests = record.tests
    scope = {
        "call": "around each test's call phase (fixtures' setup and teardown excluded)",
        "protocol": "around each test's setup, call and teardown",
    }.get(session.scope, f"per {session.scope}")
    how = [f"One energy window {scope}: the counters are read at its start and end."]
    benches = [t.benchmark for t in tests if t.benchmark is not None]
    if benches:
        windows = sorted({b.target_window_s for b in benches})
        how.append(
            f"{len(benches)} benchmarks ran calibrated rounds: each round is its own window of "
            f"about {' / '.join(fmt.duration(w) for w in windows)}, repeating the work enough "
            "times to span many counter updates. The figure is the median energy per unit of "
            "work over rounds, with a 95% confidence interval."
        )
    if session.idle is not None:
        net = any(t.net_j is not None for t in tests)
        how.append(
            f"Idle power {fmt.power(session.idle.total_watts)} was measured over "
            f"{fmt.duration(session.idle.seconds)} before the tests"
            + ("; net energy subtracts idle power x duration." if net else ".")
            + " Energy columns show the total, idle included."
        )
    else:
        how.append("No idle bracket was measured: figures include idle power.")
    if record.gate is not None:
        g = record.gate
        how.append(
            "Gate: the log of energy per unit is compared with the baseline; a regression "
            f"fails only when above the {percent(g.threshold)} threshold and its "
            f"one-sided confidence bound clears 1 + {percent(g.margin)}, with the "
            f"false-alarm rate held at {g.alpha} across gated tests (Holm)."
        )
    return how


def _excluded(record: RunRecord) -> list[str]:
    """What the figures leave out, so nobody reads them as the whole machine's energy."""
    session = record.session
    domains = sorted({f"{d} ({s})" for m in session.meters for d, s in m.domains.items()})
    carbons = [t.carbon for t in record.tests if t.carbon is not None]
    pues = sorted({c.pue for c in carbons})
    excluded = [
        "Power-supply conversion losses and the rest of the machine (fans, disks, network, "
        "motherboard): counters see only their own domains."
    ]
    if domains:
        excluded.append(
            f"Devices other than the measured domains ({', '.join(domains)}): other GPUs, "
            "accelerators and peripherals are not counted."
        )
    if pues and pues != [1.0]:
        excluded.append(
            f"Cooling is included through a PUE of {', '.join(f'{p:g}' for p in pues)}; "
            "other facility overheads are not."
        )
    else:
        excluded.append("Cooling and data-centre overhead (no PUE applied).")
    if any(c.embodied_grams is not None for c in carbons):
        excluded.append(
            "Embodied emissions are reported separately and never added to CO2e totals."
        )
    else:
        excluded.append("Embodied emissions of the hardware (not enabled).")
    if session.method == "modelled" and uses_ops_meter(record):
        excluded.append(
            "Modelled figures cover the torch operations this process dispatched, priced "
            "with a 45 nm table: no pure-Python work, other libraries, idle power or "
            "accelerator-specific efficiency."
        )
    elif session.method == "modelled":
        excluded.append(
            "Modelled figures cover this process's CPU time only: no GPU, DRAM or idle power."
        )
    else:
        excluded.append(
            "Nothing is subtracted for other processes: counters are machine-wide, so "
            "concurrent work elsewhere on the machine is included (flagged when detected)."
        )
    return excluded


def methodology(record: RunRecord) -> Methodology:
    """How the numbers were obtained, what they leave out, and where the data came from."""
    return Methodology(
        meters=_meter_rows(record),
        how=_how(record),
        excluded=_excluded(record),
        attribution=_attribution(record),
        settings=_settings(record),
    )


def _attribution(record: RunRecord) -> list[tuple[str, str]]:
    carbon = record.session.carbon
    facts = list(_fields(carbon, absent_when_empty=("line", "hint"))) if carbon else []
    labels = carbon_sources(t.carbon for t in record.tests if t.carbon is not None)
    return facts + [("intensity used", label) for label in labels]


def _settings(record: RunRecord) -> list[tuple[str, str]]:
    session = record.session
    facts = []
    if session.calibration is not None:
        calibration = _fields(
            session.calibration, absent_when_empty=("start", "end", "workload", "skipped")
        )
        facts += [(f"calibration.{name}", value) for name, value in calibration]
    totals = _fields(session.totals, absent_when_empty=("net_joules",))
    return facts + [(f"totals.{name}", value) for name, value in totals]
