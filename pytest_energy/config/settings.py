"""Session settings, resolved once: CLI > env > ini > default, with where each came from.

``Settings.from_config`` reads every option of :mod:`.options` once and
validates it; the ``energy`` marker is layered on top per test by
:mod:`.marker`. Bad values raise :class:`SettingError`, whose message names
where the value came from; the plugin turns it into pytest's usage error.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import field, fields, replace
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import pytest

from pytest_energy.config import defaults
from pytest_energy.config.options import COMMAND_LINE, OPTIONS, POSTGRES_EXTRA, Option
from pytest_energy.frozen import frozen
from pytest_energy.meters import MeterSpec, parse_meter_spec
from pytest_energy.meters.meter_set import PROCESS_FIELD
from pytest_energy.meters.model import DEFAULT_WATTS_PER_CORE

#: The environment variable that makes a pytest process a replica of its parent.
REPLICA_ENV = "PYTEST_ENERGY_REPLICA"

#: The screen decides unflagged tests at p >= 5 %, so a larger family-wise alpha
#: would let them fail the build (docs/gate.md).
MAX_ALPHA = 0.05


class SettingError(ValueError):
    """A bad option or marker value; the message is one line naming its source."""


def _flag(name: str) -> str:
    return next(option.flag for option in OPTIONS if option.name == name)


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
    """Refuse, up front, an output file that cannot be written; nothing is created."""
    if path.is_dir():
        raise SettingError(f"{origin}: {path} is a directory, expected a file path")
    from pytest_energy.output_files import writes_through

    if writes_through(path):
        # A FIFO or a device is written through, never replaced: no file goes beside it.
        if not os.access(path, os.W_OK):
            raise SettingError(f"{origin}: cannot write {path}: permission denied")
        return
    check_folder_writable(path.parent, origin, writing=path)


def check_folder_writable(folder: Path, origin: str, *, writing: Path | None = None) -> None:
    """Refuse a folder that cannot be created or written (to write ``writing`` in it).

    Nothing is created: the folder is made later by the code that writes into it
    (the energy folder gets its ``.gitignore`` only when that code creates it).
    """
    target = writing or folder
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            raise SettingError(f"{origin}: cannot write {target}: {existing} is a broken symlink")
        existing = existing.parent
    if not existing.is_dir():
        raise SettingError(f"{origin}: cannot write {target}: {existing} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".pytest-energy-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SettingError(f"{origin}: cannot write {target}: {reason}") from None


def refuse_swallowed_paths(config: pytest.Config) -> None:
    """Refuse ``--energy-compare tests/``: a test path taken as a baseline name.

    An option whose value is optional takes the next argument when it is not an
    option, so ``pytest --energy --energy-save-baseline tests/`` would save a
    baseline named ``tests/`` and run the whole rootdir. A name is taken only as
    ``--flag=NAME`` when the separate argument looks like a path.
    """
    args = config.stash.get(COMMAND_LINE, list(config.invocation_params.args))
    for option in OPTIONS:
        value = config.getoption(option.dest, default=None)
        if option.kind != "optional" or not isinstance(value, str):
            continue
        given = _last_given(args, option.flag)
        separate = given is not None and args[given : given + 2] == [option.flag, value]
        if separate and _looks_like_a_path(value, config.invocation_params.dir):
            raise SettingError(
                f"{option.flag} takes its name as {option.flag}=NAME; "
                f"{value!r} looks like a test path, so it was not taken as one"
            )


def _last_given(args: Sequence[str], flag: str) -> int | None:
    """Where ``flag`` was last given (argparse keeps the last), as ``flag`` or ``flag=...``."""
    found = None
    for index, arg in enumerate(args):
        if arg == "--":
            break  # the rest are positional arguments
        if arg == flag or arg.startswith(flag + "="):
            found = index
    return found


def _looks_like_a_path(value: str, invocation_dir: Path) -> bool:
    """A test selection: a path, a ``file::test`` node id, a module, or what exists on disk."""
    if "/" in value or os.sep in value or "::" in value or value.endswith(".py"):
        return True
    return (invocation_dir / value).exists()


Holds = Literal["file", "folder", "family"]


@frozen
class KeptPath:
    """A file an output must never be written over, and what it is, for the message.

    ``folder``: every file directly in ``path``; ``family``: ``path`` and its
    siblings that start with its name (SQLite's ``-wal``, ``-shm`` and ``-journal``).
    """

    what: str
    path: Path
    holds: Holds = "file"

    def covers(self, output: Path) -> bool:
        """Whether writing ``output`` would replace this file (or one it holds)."""
        if self.holds == "file":
            return same_file(output, self.path)
        real = Path(os.path.realpath(output))
        if self.holds == "folder":
            return same_file(real.parent, self.path)
        kept = Path(os.path.realpath(self.path))
        return same_file(output, self.path) or (
            same_file(real.parent, kept.parent) and real.name.startswith(kept.name)
        )


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: by inode when both exist, else by resolved path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_shared_outputs(outputs: Mapping[str, Path], kept: Sequence[KeptPath]) -> None:
    """Refuse, before any test runs, an output written over a kept file or another output.

    Streams (a FIFO, ``/dev/stdout``) are written through, never replaced, so two
    outputs may share one.
    """
    for origin, path in outputs.items():
        for item in kept:
            if item.covers(path):
                where = "is in" if item.holds == "folder" else "is"
                raise SettingError(
                    f"{origin}: {path} {where} {item.what}; writing there would destroy it, "
                    "choose another path"
                )
    from pytest_energy.output_files import writes_through

    files = {origin: path for origin, path in outputs.items() if not writes_through(path)}
    for (first, path), (second, other) in combinations(files.items(), 2):
        if same_file(path, other):
            raise SettingError(
                f"{first} and {second} both write {path}; give each output its own file"
            )


@frozen
class Settings:
    """Every session setting, validated. Field names match :mod:`pytest_energy.config.options`."""

    enabled: bool = False
    meter: MeterSpec = field(default_factory=lambda: MeterSpec(("auto",)))
    json: Path | None = None
    top: int = defaults.TOP_TESTS
    scope: str = defaults.SCOPE
    idle_seconds: float = defaults.IDLE_SECONDS
    model_watts: float = DEFAULT_WATTS_PER_CORE
    rapl_root: Path = defaults.RAPL_ROOT
    rounds: int = defaults.ROUNDS
    warmup: int = defaults.WARMUP_CALLS
    window: float | None = None
    max_time: float | None = None
    cv_limit: float = defaults.CV_LIMIT
    benchmark_disable: bool = False
    on_modelled: str = "warn"
    dir: Path = defaults.ENERGY_DIR
    save_baseline: str | None = None
    compare: str | None = None
    update_baseline: bool = False
    reason: str | None = None
    fail: float = defaults.THRESHOLD
    margin: float = defaults.MARGIN
    alpha: float = defaults.ALPHA
    max_rounds: int = defaults.MAX_ROUNDS
    history: Path | None = defaults.HISTORY_PATH
    history_baseline: int | None = None
    history_branch: str | None = None
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
    processes: int = defaults.PROCESSES
    #: A shared history's ``postgresql://`` URL (``history`` is then the local file that
    #: keeps runs the server could not take). It may hold a password: never shown as is.
    history_url: str | None = field(default=None, repr=False)
    #: Where each value came from ("--energy-meter", "PYTEST_ENERGY_METER", ...).
    origins: Mapping[str, str] = field(default_factory=dict)
    #: In a replica (a fresh process measuring chosen benchmarks again): its process
    #: index (0 is the user's own session) and the node ids it measures.
    replica: int = 0
    replica_nodeids: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        spec = os.environ.get(REPLICA_ENV)
        if spec:
            return cls.for_replica(spec)
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for option in OPTIONS:
            values[option.name], origins[option.name] = _resolve(config, option)
        # Options whose default lives with the code that owns it (the meter
        # specification, the model's watts) are left to the dataclass.
        values = {k: v for k, v in values.items() if v is not None or origins[k] != "default"}
        for name in ("json", "html", "markdown", "rapl_root", "dir"):
            if isinstance(values.get(name), Path):
                values[name] = _base_dir(config, origins[name]) / values[name]
        history = values.get("history")
        if isinstance(history, str):  # a history server; runs wait in the default file
            values["history_url"], history = history, Path(defaults.HISTORY_FILE)
            values["history"] = history
        if isinstance(history, Path) and not history.is_absolute():
            # The default history file lives in the energy folder.
            base = (
                values["dir"]
                if origins["history"] == "default" or "history_url" in values
                else _base_dir(config, origins["history"])
            )
            values["history"] = base / history
        meter = values.get("meter")
        if (
            meter is not None
            and meter.replay_path is not None
            and not meter.replay_path.is_absolute()
        ):
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
        if self.history_url is not None and importlib.util.find_spec("psycopg") is None:
            raise SettingError(f"{self.source('history')}: {POSTGRES_EXTRA}")
        if self.margin >= self.fail:
            from pytest_energy.stats import percentage

            raise SettingError(
                f"{self.origins.get('margin', 'margin')}: the certainty margin "
                f"({percentage(self.margin)}) must be below the threshold ({percentage(self.fail)})"
            )
        if self.rounds > self.max_rounds:
            # The cap counts every round of a benchmark, confirmation rounds included;
            # below the rounds asked for, it would be silently ignored (rounds win).
            raise SettingError(
                f"{self._given('rounds')} is above {self._given('max_rounds')}, the cap on "
                "a benchmark's rounds; raise the cap or ask for fewer rounds"
            )
        if self.alpha > MAX_ALPHA:
            # The screen decides unflagged tests at p >= 5 %, so a larger family-wise
            # alpha would let them fail the build (see pytest_energy.gate).
            raise SettingError(f"{self.origins.get('alpha', 'alpha')}: must be at most 5%")
        for name in ("json", "html", "markdown"):
            path = getattr(self, name)
            if path is not None and not hasattr(config, "workerinput"):
                check_writable(path, self.origins[name])

    def source(self, name: str) -> str:
        """Where a setting came from, for a message; its flag when it is the default."""
        origin = self.origins.get(name, "default")
        return _flag(name) if origin == "default" else origin

    def _given(self, name: str) -> str:
        """A value as the user gave it: ``--energy-rounds=10``, ``PYTEST_ENERGY_ROUNDS=10``."""
        value = getattr(self, name)
        origin = self.origins.get(name, "default")
        if origin == "default":
            return f"{_flag(name)} ({value} by default)"
        if origin.startswith(("--", "PYTEST_ENERGY")):
            return f"{origin}={value}"
        return f"{origin} ({value})"  # "energy_rounds in tox.ini (10)"

    def outputs(self, config: pytest.Config) -> dict[str, Path]:
        """The files this session writes at its end, by the option that names them."""
        found = {
            self.source(name): path
            for name in ("json", "html", "markdown")
            if (path := getattr(self, name)) is not None
        }
        junit = getattr(config.option, "xmlpath", None)
        if junit:
            # Resolved as pytest's junitxml plugin does: from the working directory.
            junit = os.path.expanduser(os.path.expandvars(junit))
            found["--junitxml"] = config.invocation_params.dir / junit
        return found

    def kept_paths(self) -> Iterator[KeptPath]:
        """What the settings know must never be written over: the history, the trace."""
        if self.history is not None:
            yield KeptPath(
                f"the run history ({self.source('history')})",
                self.history,
                "family",
            )
        trace = self.meter.replay_path
        if trace is not None:
            # A trace with {process} is one file per process: the session's and each replica's.
            for process in range(self.processes + 1):
                path = Path(str(trace).replace(PROCESS_FIELD, str(process)))
                yield KeptPath("the replay meter's trace (--energy-meter)", path)

    # -- replicas ------------------------------------------------------------------

    def to_plain(self) -> dict[str, Any]:
        """Every setting as JSON data, for a replica process."""
        plain: dict[str, Any] = {}
        for item in fields(self):
            if item.name == "history_url":
                continue  # a replica keeps no history; its password stays out of the environment
            value = getattr(self, item.name)
            if isinstance(value, Path | MeterSpec):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            plain[item.name] = value
        return plain

    @classmethod
    def for_replica(cls, text: str) -> Settings:
        """The settings a replica runs with: its parent's, writing only its results file."""
        try:
            data = json.loads(text)
            values = dict(data["settings"])
            for name in ("json", "html", "markdown", "history", "rapl_root", "dir"):
                if values.get(name) is not None:
                    values[name] = Path(values[name])
            values["meter"] = parse_meter_spec(values["meter"])
            values["replica_nodeids"] = tuple(data["nodeids"])
            values["replica"] = int(data["process"])
            values["json"] = Path(data["results"])
            settings = cls(**values)
        except (ValueError, KeyError, TypeError) as exc:
            raise SettingError(f"{REPLICA_ENV} is not a replica specification: {exc}") from None
        # A replica measures and writes its results; its parent saves, compares and reports.
        return replace(
            settings,
            save_baseline=None,
            update_baseline=False,
            compare=None,
            history_baseline=None,
            history=None,
            html=None,
            markdown=None,
            processes=1,
            # Net figures and their idle power are the parent's; the rounds are what counts.
            idle_seconds=0.0,
        )

    @property
    def gating(self) -> bool:
        """Whether this run is compared with a baseline."""
        return self.compare is not None or self.history_baseline is not None

    @property
    def baseline_name(self) -> str:
        """The baseline an update or save writes to."""
        return self.save_baseline or self.compare or defaults.BASELINE_NAME
