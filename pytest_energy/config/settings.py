"""Settings, resolved in one place: marker > CLI > env > ini > default.

``Settings.from_config`` reads every session option once and validates it;
``TestSettings.for_item`` layers the ``energy`` marker (function, class, then
module) on top. Bad values raise :class:`SettingError`, whose message names
where the value came from; the plugin turns it into pytest's usage error.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_energy.config.options import ON_MODELLED, OPTIONS, Option, parse_percent
from pytest_energy.meters import MeterSpec


class SettingError(ValueError):
    """A bad option or marker value; the message is one line naming its source."""


def _ini_origin(config: pytest.Config, option: Option) -> str:
    where = config.inipath.name if config.inipath else "the ini file"
    return f"{option.ini} in {where}"


def _resolve(config: pytest.Config, option: Option) -> tuple[Any, str]:
    """The value of one option and where it came from."""
    cli = config.getoption(option.dest, default=None)
    if cli is not None and cli is not False:
        if option.kind == "flag":
            return True, option.flag
        return _parse(option, str(cli), option.flag), option.flag
    env = os.environ.get(option.env)
    if env is not None and env.strip():
        return _parse(option, env, option.env), option.env
    ini = config.getini(option.ini)
    if isinstance(ini, str) and ini.strip():
        return _parse(option, ini, _ini_origin(config, option)), _ini_origin(config, option)
    if isinstance(ini, bool):
        return ini, _ini_origin(config, option)
    return option.default, "default"


def _parse(option: Option, text: str, origin: str) -> Any:
    try:
        return option.parse(text)
    except ValueError as exc:
        raise SettingError(f"{origin}: {exc}") from None


def _base_dir(config: pytest.Config, origin: str) -> Path:
    """Relative paths from the ini file are relative to its folder, others to the cwd."""
    if origin.startswith("energy") and config.inipath is not None:
        return config.inipath.parent
    if origin == "default":
        return config.rootpath
    return config.invocation_params.dir


def check_writable(path: Path, origin: str) -> None:
    """Refuse, up front, an output file that cannot be written."""
    if path.is_dir():
        raise SettingError(f"{origin}: {path} is a directory, expected a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".pytest-energy-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SettingError(f"{origin}: cannot write {path}: {reason}") from None


@dataclass(frozen=True)
class Settings:
    """Every session setting, validated. Field names match :mod:`pytest_energy.options`."""

    enabled: bool = False
    meter: MeterSpec = field(default_factory=lambda: MeterSpec(("auto",)))
    json: Path | None = None
    top: int = 10
    scope: str = "call"
    idle_seconds: float = 1.0
    model_watts: float = 3.5
    rapl_root: Path = Path("/sys/class/powercap")
    rounds: int = 5
    warmup: int = 1
    window: float | None = None
    max_time: float | None = None
    cv_limit: float = 0.05
    benchmark_disable: bool = False
    on_modelled: str = "warn"
    dir: Path = Path(".energy")
    save_baseline: str | None = None
    compare: str | None = None
    update_baseline: bool = False
    reason: str | None = None
    fail: float = 0.05
    margin: float = 0.01
    alpha: float = 0.01
    max_rounds: int = 20
    history: Path | None = Path(".energy/history.sqlite")
    history_baseline: int | None = None
    branch: str | None = None
    calibration: bool = True
    normalize: str = "auto"
    fail_unstable: bool = False
    carbon_intensity: str | None = None
    region: str | None = None
    pue: str | None = None
    embodied: str | None = None
    intensity_provider: str = "none"
    html: Path | None = None
    markdown: Path | None = None
    #: Where each value came from ("--energy-meter", "PYTEST_ENERGY_METER", ...).
    origins: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for option in OPTIONS:
            values[option.name], origins[option.name] = _resolve(config, option)
        if values["meter"] is None:
            values["meter"] = MeterSpec(("auto",))
        for name in ("json", "html", "markdown", "rapl_root", "dir"):
            if isinstance(values[name], Path):
                values[name] = _base_dir(config, origins[name]) / values[name]
        history = values["history"]
        if isinstance(history, Path) and not history.is_absolute():
            # The default history file lives in the energy folder.
            base = (
                values["dir"]
                if origins["history"] == "default"
                else _base_dir(config, origins["history"])
            )
            values["history"] = base / history
        meter = values["meter"]
        if meter.replay_path is not None and not meter.replay_path.is_absolute():
            values["meter"] = MeterSpec(
                meter.names, _base_dir(config, origins["meter"]) / meter.replay_path
            )
        settings = cls(**values, origins=origins)
        settings._check(config)
        return settings

    def _check(self, config: pytest.Config) -> None:
        if self.update_baseline and not self.reason:
            raise SettingError(
                '--energy-update-baseline needs --energy-reason="why the numbers changed"; '
                "the reason is stored with every updated entry"
            )
        if self.compare is not None and self.history_baseline is not None:
            raise SettingError(
                "--energy-compare and --energy-history-baseline both choose the baseline; "
                "give one of them"
            )
        if self.history_baseline is not None and self.history is None:
            raise SettingError("--energy-history-baseline needs the history; do not turn it off")
        if self.margin >= self.fail:
            raise SettingError(
                f"{self.origins.get('margin', 'margin')}: the certainty margin "
                f"({self.margin:.0%}) must be below the threshold ({self.fail:.0%})"
            )
        if self.alpha > 0.05:
            # The screen decides unflagged tests at p >= 5 %, so a larger family-wise
            # alpha would let them fail the build (see pytest_energy.gate).
            raise SettingError(f"{self.origins.get('alpha', 'alpha')}: must be at most 5%")
        for name in ("json", "html", "markdown"):
            path = getattr(self, name)
            if path is not None and not hasattr(config, "workerinput"):
                check_writable(path, self.origins[name])

    @property
    def gating(self) -> bool:
        """Whether this run is compared with a baseline."""
        return self.compare is not None or self.history_baseline is not None

    @property
    def baseline_name(self) -> str:
        """The baseline an update or save writes to."""
        return self.save_baseline or self.compare or "default"


# -- the energy marker --------------------------------------------------------


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SettingError(f"{name} must be a number, got {value!r}")
    if value <= 0:
        raise SettingError(f"{name} must be greater than 0, got {value!r}")
    return float(value)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SettingError(f"{name} must be a whole number of at least 1, got {value!r}")
    return value


def _non_negative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingError(f"{name} must be a whole number of at least 0, got {value!r}")
    return value


def _fraction(name: str, value: object) -> float:
    """``"8%"`` or ``0.08``; a bare number of 1 or more is refused as ambiguous."""
    if isinstance(value, str):
        try:
            return parse_percent(value)
        except ValueError as exc:
            raise SettingError(f"{name}: {exc}") from None
    number = _positive(name, value)
    if number >= 1:
        raise SettingError(f"{name} must be a percentage string such as '8%', got {value!r}")
    return number


def _choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SettingError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise SettingError(f"{name} must be True or False, got {value!r}")
    return value


def _variant_limits(name: str, value: object) -> dict[str, dict[str, float]]:
    if not isinstance(value, Mapping):
        raise SettingError(f"{name} must map variant names to limits, got {value!r}")
    limits: dict[str, dict[str, float]] = {}
    for variant, spec in value.items():
        if not isinstance(spec, Mapping):
            raise SettingError(f"{name}[{variant!r}] must be a dict of limits, got {spec!r}")
        unknown = set(spec) - {"max_energy_ratio", "min_quality_ratio"}
        if unknown:
            raise SettingError(
                f"{name}[{variant!r}] has unknown keys {sorted(unknown)}; "
                "valid: max_energy_ratio, min_quality_ratio"
            )
        limits[str(variant)] = {
            k: _positive(f"{name}[{variant!r}].{k}", v) for k, v in spec.items()
        }
    return limits


#: Valid marker keywords and their validators.
MARKER_KEYWORDS: dict[str, Any] = {
    # energy_benchmark
    "rounds": _positive_int,
    "warmup": _non_negative_int,
    "window": _positive,
    "max_time": _positive,
    "cv_limit": _fraction,
    # budgets
    "max_joules": _positive,
    "max_joules_per_unit": _positive,
    "max_watts": _positive,
    "max_gco2e": _positive,
    "on_modelled": lambda n, v: _choice(n, v, ON_MODELLED),
    # the gate
    "max_regression": _fraction,
    "gate": _flag,
    # model variants
    "family": _text,
    "reference": _text,
    "variant": _text,
    "variant_param": _text,
    "max_energy_ratio": _positive,
    "min_quality_ratio": _positive,
    "variants": _variant_limits,
}


def _closest_first(item: pytest.Item) -> list[pytest.Mark]:
    """``energy`` markers from the test outwards (function, class, module).

    Within one node the later marker wins, so a ``pytest.param(..., marks=...)``
    override beats the decorator on the test function it parametrizes.
    """
    marks: list[pytest.Mark] = []
    for node in reversed(item.listchain()):
        marks.extend(m for m in reversed(node.own_markers) if m.name == "energy")
    return marks


def marker_options(item: pytest.Item) -> dict[str, Any]:
    """Validated ``energy`` marker keywords for ``item``; the closest marker wins."""
    merged: dict[str, Any] = {}
    for marker in _closest_first(item):
        if marker.args:
            raise SettingError(
                f"{item.nodeid}: @pytest.mark.energy takes keyword arguments only, "
                f"got {marker.args!r}"
            )
        for key, value in marker.kwargs.items():
            if key not in MARKER_KEYWORDS:
                raise SettingError(
                    f"{item.nodeid}: @pytest.mark.energy got unknown keyword {key!r}; "
                    f"valid keywords: {', '.join(sorted(MARKER_KEYWORDS))}"
                )
            if key in merged:
                continue  # the closest marker wins
            try:
                merged[key] = MARKER_KEYWORDS[key](key, value)
            except SettingError as exc:
                raise SettingError(f"{item.nodeid}: @pytest.mark.energy: {exc}") from None
    return merged


@dataclass(frozen=True)
class TestSettings:
    """The settings one test runs with: its marker over the session settings."""

    __test__ = False

    rounds: int
    warmup: int
    window: float | None
    max_time: float | None
    cv_limit: float
    on_modelled: str
    max_regression: float
    gate: bool
    budgets: Mapping[str, float]
    marker: Mapping[str, Any]

    @classmethod
    def for_item(cls, settings: Settings, marker: Mapping[str, Any]) -> TestSettings:
        return cls(
            rounds=marker.get("rounds", settings.rounds),
            warmup=marker.get("warmup", settings.warmup),
            window=marker.get("window", settings.window),
            max_time=marker.get("max_time", settings.max_time),
            cv_limit=marker.get("cv_limit", settings.cv_limit),
            on_modelled=marker.get("on_modelled", settings.on_modelled),
            max_regression=marker.get("max_regression", settings.fail),
            gate=marker.get("gate", True),
            budgets={
                k: marker[k]
                for k in ("max_joules", "max_joules_per_unit", "max_watts", "max_gco2e")
                if k in marker
            },
            marker=marker,
        )
