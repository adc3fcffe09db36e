"""Every session option, declared once: its flag, ini key, environment variable and parser.

``--energy-meter`` is also ``energy_meter`` in the ini file and
``PYTEST_ENERGY_METER`` in the environment. CLI options default to ``None`` so
"not given" is visible, and precedence (CLI > env > ini > default) is resolved
in :mod:`pytest_energy.config.settings`, the only place that reads them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from pytest_energy.config import defaults
from pytest_energy.frozen import frozen

if TYPE_CHECKING:
    from pytest_energy.meters import MeterSpec

Kind = Literal["value", "flag", "optional"]

#: The command line as argparse saw it: ini ``addopts``, ``PYTEST_ADDOPTS``, then the
#: invocation's own arguments. Needed to tell ``--flag=NAME`` from ``--flag NAME``.
COMMAND_LINE = pytest.StashKey[list[str]]()

ON_MODELLED = ("fail", "warn", "ignore")
SCOPES = ("call", "protocol")


@frozen
class Option:
    """One session option in all its spellings."""

    name: str
    help: str
    parse: Callable[[str], Any]
    default: Any
    metavar: str | None = None
    kind: Kind = "value"
    #: Value used when an ``optional`` option is given without one.
    const: str | None = None

    @property
    def flag(self) -> str:
        return "--energy" if self.name == "enabled" else "--energy-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "energy" if self.name == "enabled" else "energy_" + self.name

    @property
    def env(self) -> str:
        return "PYTEST_ENERGY" if self.name == "enabled" else "PYTEST_ENERGY_" + self.name.upper()

    @property
    def dest(self) -> str:
        return "energy_" + self.name


# Parsers: each takes the raw text and raises ValueError with a message that
# completes "<where the value came from>: ...".


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {text!r}")
    return value


def parse_positive_float(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise ValueError(f"must be greater than 0, got {text!r}")
    return value


def parse_non_negative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise ValueError(f"must not be negative, got {text!r}")
    return value


def parse_positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"must be at least 1, got {text!r}")
    return value


def parse_non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise ValueError(f"must not be negative, got {text!r}")
    return value


def parse_percent(text: str) -> float:
    """``5%`` -> 0.05. A bare ``5`` is refused: 5 % and 500 % are both plausible typos."""
    value = text.strip()
    if not value.endswith("%"):
        raise ValueError(f"expected a percentage such as 5%, got {text!r}")
    number = _number(value[:-1])
    if number <= 0:
        raise ValueError(f"must be a positive percentage such as 5%, got {text!r}")
    return number / 100.0


def parse_window(text: str) -> float | None:
    """``auto`` (None: sized to the meter) or a number of seconds."""
    if text.strip().lower() == "auto":
        return None
    return parse_positive_float(text)


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return value

    return parse


def parse_path(text: str) -> Path:
    if not text.strip():
        raise ValueError("expected a path, got an empty value")
    return Path(text.strip())


def parse_optional_path(text: str) -> Path | None:
    """A path, or ``off`` / ``none`` to disable."""
    if text.strip().lower() in ("off", "none", "0", "false"):
        return None
    return parse_path(text)


#: One line for a ``postgresql://`` history without its driver.
POSTGRES_EXTRA = 'a postgresql:// history needs psycopg 3: pip install "pytest-energy[postgres]"'
#: URL schemes of a history server (libpq reads both).
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def parse_history(text: str) -> Path | str | None:
    """The history: an SQLite path (or ``sqlite:///PATH``), a ``postgresql://`` URL, or off.

    A URL is returned as text: it may hold a password, so no message here quotes it.
    """
    value = text.strip()
    if value.lower().startswith(POSTGRES_SCHEMES):
        return value
    if value.lower().startswith("sqlite://"):
        # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy spells them.
        path = value[len("sqlite://") :]
        if not path.startswith("/") or not path[1:].strip():
            raise ValueError("expected sqlite:///PATH (three slashes, then the file)")
        return Path(path[1:])
    scheme, found, _ = value.partition("://")
    if found and scheme[:1].isalpha() and all(c.isalnum() or c in "+.-" for c in scheme):
        raise ValueError(
            f"unknown history URL scheme {scheme!r}: give a path, sqlite:///PATH or "
            "postgresql://USER@HOST/DATABASE"
        )
    return parse_optional_path(text)


def parse_meter(text: str) -> MeterSpec:
    # Imported here: the option table is read on every pytest start, meters only with --energy.
    from pytest_energy.meters import parse_meter_spec

    return parse_meter_spec(text)


def parse_text(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError("expected a value, got an empty one")
    return value


def parse_name(text: str) -> str:
    """A baseline name or path."""
    return parse_text(text)


OPTIONS: tuple[Option, ...] = (
    Option("enabled", "Measure the energy of every test", parse_bool, False, kind="flag"),
    Option(
        "meter",
        "Meters to use: auto (every readable counter, else the CPU-time model), rapl, nvml, "
        "rapl,nvml, model, ops (torch operations counted and priced), or replay:PATH. "
        "Default: auto",
        parse_meter,
        None,  # auto; resolved by Settings so the meter code loads only with --energy
        metavar="SPEC",
    ),
    Option("json", "Write every result to a versioned JSON file", parse_path, None, "PATH"),
    Option(
        "top",
        "Number of tests listed in the energy section. Default: 10",
        parse_non_negative_int,
        defaults.TOP_TESTS,
        "N",
    ),
    Option(
        "scope",
        "What a test's window covers: call (the test body) or protocol (setup, call and "
        "teardown). Default: call",
        parse_choice(*SCOPES),
        defaults.SCOPE,
        "SCOPE",
    ),
    Option(
        "idle_seconds",
        "Length of the idle-power bracket measured once before the tests when counters are "
        "present; 0 disables it. Default: 1",
        parse_non_negative_float,
        defaults.IDLE_SECONDS,
        "SECONDS",
    ),
    Option(
        "model_watts",
        "Watts per busy CPU core used by the model meter. Default: 3.5 (Cloud Carbon "
        "Footprint's AWS average)",
        parse_positive_float,
        None,  # the model meter's own figure (meters/model.py), with its source
        "WATTS",
    ),
    Option(
        "rapl_root",
        "Root of the powercap tree. Default: /sys/class/powercap",
        parse_path,
        defaults.RAPL_ROOT,
        "PATH",
    ),
    # energy_benchmark
    Option(
        "rounds",
        "Rounds per benchmark, each its own energy window. Default: 5",
        parse_positive_int,
        defaults.ROUNDS,
        "N",
    ),
    Option(
        "warmup",
        "Unbilled warm-up calls before a benchmark calibrates. Default: 1",
        parse_non_negative_int,
        defaults.WARMUP_CALLS,
        "N",
    ),
    Option(
        "window",
        "Target length of one benchmark round: auto (20 counter periods, at least 0.1 s) or "
        "seconds. Default: auto",
        parse_window,
        None,
        "SECONDS",
    ),
    Option(
        "max_time",
        "Time budget per benchmark in seconds; rounds stop when it is spent",
        parse_positive_float,
        None,
        "SECONDS",
    ),
    Option(
        "cv_limit",
        "Round-to-round coefficient of variation above which a benchmark is "
        "flagged unstable. Default: 5%",
        parse_percent,
        defaults.CV_LIMIT,
        "PERCENT",
    ),
    Option(
        "benchmark_disable",
        "Call benchmarked functions once without measuring, even with --energy",
        parse_bool,
        False,
        kind="flag",
    ),
    Option(
        "on_modelled",
        "What an exceeded budget does when the number is modelled: fail, warn or ignore. "
        "Default: warn",
        parse_choice(*ON_MODELLED),
        "warn",
        "ACTION",
    ),
    # baselines and the gate
    Option(
        "dir",
        "Folder for baselines and history. Default: .energy",
        parse_path,
        defaults.ENERGY_DIR,
        "PATH",
    ),
    Option(
        "save_baseline",
        "Save this run as a baseline (default name: default)",
        parse_name,
        None,
        "NAME",
        kind="optional",
        const=defaults.BASELINE_NAME,
    ),
    Option(
        "compare",
        "Compare this run with a baseline name or file (default name: default)",
        parse_name,
        None,
        "NAME|PATH",
        kind="optional",
        const=defaults.BASELINE_NAME,
    ),
    Option(
        "update_baseline",
        "Rewrite the baseline entries of the selected tests (needs --energy-reason)",
        parse_bool,
        False,
        kind="flag",
    ),
    Option(
        "reason",
        "Why a baseline is updated; stored with each updated entry",
        parse_text,
        None,
        "TEXT",
    ),
    Option(
        "fail",
        "Material regression threshold. Default: 5%",
        parse_percent,
        defaults.THRESHOLD,
        "PERCENT",
    ),
    Option(
        "margin",
        "Certainty margin: the ratio's lower confidence bound must exceed 1 + margin. Default: 1%",
        parse_percent,
        defaults.MARGIN,
        "PERCENT",
    ),
    Option(
        "alpha",
        "Family-wise false-alarm rate across gated tests. Default: 1%",
        parse_percent,
        defaults.ALPHA,
        "PERCENT",
    ),
    Option(
        "max_rounds",
        "Round cap per benchmark including confirmation rounds. Default: 20",
        parse_positive_int,
        defaults.MAX_ROUNDS,
        "N",
    ),
    Option(
        "history",
        "Run history: an SQLite file (a path or sqlite:///PATH), a shared PostgreSQL "
        "database (postgresql://USER:PASSWORD@HOST/DB; needs pytest-energy[postgres]), "
        "or off. Default: <dir>/history.sqlite",
        parse_history,
        Path(defaults.HISTORY_FILE),
        "PATH|URL",
    ),
    Option(
        "history_baseline",
        "Use the last K runs of this branch from the history as the baseline",
        parse_positive_int,
        None,
        "K",
    ),
    Option(
        "history_branch",
        "The branch whose last K runs --energy-history-baseline compares with "
        "(a pull request with its default branch's). Default: this run's branch",
        parse_text,
        None,
        "NAME",
    ),
    Option(
        "branch",
        "Branch recorded in the history. Default: from CI variables or git",
        parse_text,
        None,
        "NAME",
    ),
    Option(
        "calibration",
        "Run a short fixed workload at the start and end of a gated session "
        "to detect drift. Default: on",
        parse_bool,
        True,
        "on|off",
    ),
    Option(
        "normalize",
        "Interleave a fixed calibration workload with benchmark rounds and gate on the ratio, "
        "cancelling CPU-speed changes: auto (on with the model meter), on or off. Default: auto",
        parse_choice("auto", "on", "off"),
        "auto",
        "WHEN",
    ),
    Option(
        "fail_unstable",
        "Let regressions fail the build even in an unstable session",
        parse_bool,
        False,
        kind="flag",
    ),
    Option(
        "processes",
        "Processes that measure a baseline (this session and fresh ones), and fresh processes "
        "that confirm a benchmark the screen flags: each process carries its own offset, so "
        "the process is the unit of replication. Default: 3",
        parse_positive_int,
        defaults.PROCESSES,
        "N",
    ),
    # carbon
    Option(
        "carbon_intensity",
        "Grid carbon intensity in g CO2e/kWh (overrides the region)",
        parse_text,
        None,
        "G",
    ),
    Option(
        "region",
        "Grid region: ISO country (FR, FRA) or cloud region (aws:us-east-1, "
        "gcp:europe-west1, azure:westeurope). Default: world average",
        parse_text,
        None,
        "REGION",
    ),
    Option(
        "pue",
        "Power usage effectiveness: a number or aws, gcp, azure, industry. Default: 1.0",
        parse_text,
        None,
        "PUE",
    ),
    Option(
        "embodied",
        "Embodied emissions, reported separately: KG,YEARS or a preset",
        parse_text,
        None,
        "SPEC",
    ),
    Option(
        "intensity_provider",
        "Live grid intensity provider: none or electricitymaps. Default: none",
        parse_choice("none", "electricitymaps"),
        "none",
        "NAME",
    ),
    # reports
    Option("html", "Write a self-contained HTML report", parse_path, None, "PATH"),
    Option(
        "markdown", "Write a Markdown summary (for $GITHUB_STEP_SUMMARY)", parse_path, None, "PATH"
    ),
)

#: The marker as ``pytest --markers`` lists it.
MARKER_SIGNATURE = (
    "energy(rounds=5, warmup=1, window=None, max_time=None, cv_limit='5%', max_joules=None, "
    "max_joules_per_unit=None, max_watts=None, max_gco2e=None, on_modelled='warn', "
    "max_regression='5%', gate=True, family=None, reference=None, variant=None, "
    "variant_param='variant', max_energy_ratio=None, min_quality_ratio=None, variants=None): "
    "energy settings, budgets and model-variant limits for a test, class or module"
)
