"""The pytest entry point of pytest-energy: options, the marker, the fixture.

Everything else lives in :class:`pytest_energy.plugin.energy_run.EnergyRun`,
registered only when ``--energy`` is on. With it off, loading this module
imports no meter, no pynvml, no torch and no jinja2, and touches no hardware.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

if TYPE_CHECKING:
    from pytest_energy.config.settings import KeptPath, Settings
    from pytest_energy.measure.benchmark import EnergyBenchmark
    from pytest_energy.storage.baselines import BaselineStore

RUN_PLUGIN_NAME = "energy-run"


def _load_without_rewriting() -> None:
    """Import the rest of the plugin through Python's own importer, not pytest's.

    pytest marks every module of a plugin's distribution for assertion rewriting
    before it loads the plugin, so each module imported later (options, settings,
    meters, the recorder: about 40 with ``--energy``) went through its import hook:
    a second path search, its own bytecode cache, and under
    ``PYTHONDONTWRITEBYTECODE`` a parse and rewrite on every run; ~15 ms of the
    fixed cost of ``--energy`` with warm caches. They hold no test assertions.
    pytest has no public switch for this, so the mark is dropped where it is kept
    today; a pytest that keeps it elsewhere simply keeps rewriting them.
    """
    package = __name__.partition(".")[0]
    for hook in sys.meta_path:
        marked = getattr(hook, "_must_rewrite", None)
        if isinstance(marked, set) and package in marked:
            marked.discard(package)
            cache = getattr(hook, "_marked_for_rewrite_cache", None)
            if isinstance(cache, dict):
                cache.clear()


_load_without_rewriting()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_energy import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    from pytest_energy.config.options import OPTIONS

    group = parser.getgroup("energy", "energy measurement (pytest-energy)")
    for option in OPTIONS:
        # argparse %-formats help strings: "5%" must be written "5%%".
        help_text = f"{option.help}. Also ini {option.ini} and env {option.env}".replace("%", "%%")
        if option.kind == "flag":
            group.addoption(
                option.flag, action="store_true", default=None, dest=option.dest, help=help_text
            )
        elif option.kind == "optional":
            group.addoption(
                option.flag,
                nargs="?",
                const=option.const,
                default=None,
                dest=option.dest,
                metavar=option.metavar,
                help=help_text,
            )
        else:
            group.addoption(
                option.flag, default=None, dest=option.dest, metavar=option.metavar, help=help_text
            )
        parser.addini(option.ini, option.help, type="string", default=None)


def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str]) -> None:
    """Keep the command line as argparse parses it, ``addopts`` included.

    ``config.invocation_params.args`` lacks the ini's ``addopts`` and
    ``PYTEST_ADDOPTS``, and ``--energy-compare`` at the end of ``addopts`` swallows
    the first path of the command line just the same.
    """
    from pytest_energy.config.options import COMMAND_LINE

    early_config.stash[COMMAND_LINE] = list(args)


def _switched_on(config: pytest.Config) -> bool:
    """``--energy`` > ``PYTEST_ENERGY`` > ini ``energy``, read without loading the settings.

    This runs on every pytest start, so it stays cheap. Any non-empty value but an
    explicit "off" switches on; the settings then validate it properly.
    """
    if config.getoption("energy_enabled", default=None):
        return True
    raw = os.environ.get("PYTEST_ENERGY", "").strip()
    if not raw:
        ini = config.getini("energy")
        raw = ini.strip() if isinstance(ini, str) else ""
    return raw.lower() not in ("", "0", "false", "no", "off")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    from pytest_energy.config.options import MARKER_SIGNATURE

    config.addinivalue_line("markers", MARKER_SIGNATURE)
    if getattr(config.option, "help", False) or not _switched_on(config):
        return
    # What the plugin loads and sets up here lives as long as the process: ~3,000
    # objects (classes, functions, records). With the collector running, every 700 of
    # them made a young collection that walked them again, and those made one more
    # middle-generation collection; collected once afterwards, they are walked once. A
    # one-test run: 97 young and 8 middle collections (plain pytest: 95 and 8), not 103
    # and 9; about 2 M fewer instructions (callgrind; issue 16).
    collecting = gc.isenabled()
    gc.disable()
    try:
        _configure(config)
    finally:
        if collecting:
            gc.enable()


def _configure(config: pytest.Config) -> None:
    from pytest_energy.config.settings import SettingError, Settings

    try:
        settings = Settings.from_config(config)
        if settings.enabled:
            _check_before_tests(config, settings)
    except SettingError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not settings.enabled:
        return
    from pytest_energy.plugin.energy_run import EnergyRun

    run = EnergyRun.start(config, settings)
    config.pluginmanager.register(run, RUN_PLUGIN_NAME)
    if settings.scope == "protocol":
        from pytest_energy.plugin.protocol_scope import ProtocolWindows

        config.pluginmanager.register(ProtocolWindows(run.recorder), "energy-protocol-scope")


def _check_before_tests(config: pytest.Config, settings: Settings) -> None:
    """Refuse, before the first test, what the end of the session would refuse.

    Runs on the process that reports: an xdist worker's controller, and a replica's
    parent, have checked for them. Raises SettingError, or UsageError for a meter.
    """
    if hasattr(config, "workerinput") or settings.replica:
        return
    from pytest_energy.config.settings import refuse_shared_outputs, refuse_swallowed_paths
    from pytest_energy.plugin.xdist import check_meters_on_controller, role

    refuse_swallowed_paths(config)
    outputs = settings.outputs(config)
    uses_baselines = (
        settings.compare is not None
        or settings.save_baseline is not None
        or settings.update_baseline
    )
    # Without outputs or baselines there is nothing to check, and the baseline store is
    # not imported at all: every import is part of what --energy costs a test run.
    if outputs or uses_baselines:
        from pytest_energy.storage.baselines import BaselineStore

        store = BaselineStore(settings.dir)
        kept = [*settings.kept_paths(), *_check_baselines(settings, store)]
        refuse_shared_outputs(outputs, kept)
    if role(config)[0] == "controller":
        check_meters_on_controller(settings)


def _check_baselines(settings: Settings, store: BaselineStore) -> list[KeptPath]:
    """Check the baseline names, and the baseline a save or an update writes.

    Returns the baseline files and folder that no output may be written over.
    """
    from pytest_energy.config.settings import KeptPath, SettingError, same_file

    compared = _baseline_path(store, settings.compare, "--energy-compare")
    kept = [KeptPath(f"the baselines folder {store.baselines_dir}", store.baselines_dir, "folder")]
    if compared is not None:
        kept.append(KeptPath("the baseline compared with (--energy-compare)", compared))
    if settings.save_baseline is None and not settings.update_baseline:
        return kept
    flag = "--energy-update-baseline" if settings.update_baseline else "--energy-save-baseline"
    written = _baseline_path(store, settings.baseline_name, flag)
    assert written is not None
    kept.append(KeptPath(f"the baseline written ({flag})", written))
    if settings.save_baseline is not None and compared is not None and same_file(written, compared):
        raise SettingError(
            f"--energy-save-baseline and --energy-compare both name baseline {written}: this "
            "run would be compared with the numbers it then overwrites; save under another "
            "name, or replace numbers after review with --energy-update-baseline"
        )
    _check_writable_baseline(settings, store, written, flag)
    return kept


def _baseline_path(store: BaselineStore, name: str | None, flag: str) -> Path | None:
    """The file a baseline name or path stands for; an invalid name is a SettingError."""
    from pytest_energy.config.settings import SettingError
    from pytest_energy.storage.baseline_file import BaselineError

    if name is None:
        return None
    try:
        return store.resolve(name)
    except BaselineError as exc:
        raise SettingError(f"{flag}: {exc}") from None


def _check_writable_baseline(
    settings: Settings, store: BaselineStore, path: Path, flag: str
) -> None:
    """The baseline a save or an update writes: a place to write, and a valid file if any."""
    from pytest_energy.config.settings import SettingError, check_folder_writable, same_file
    from pytest_energy.storage.baseline_file import BaselineError

    if path.is_dir():
        raise SettingError(f"{flag}: {path} is a directory, expected a baseline file")
    if same_file(path.parent, store.baselines_dir):
        check_folder_writable(store.baselines_dir, settings.source("dir"))
    else:
        check_folder_writable(path.parent, flag, writing=path)
    if not path.exists():
        if settings.update_baseline:
            name = settings.baseline_name
            raise SettingError(
                f"{flag}: {store.missing_reason(path, name)}; save one before updating it "
                "(--energy-save-baseline)"
            )
        return
    try:
        # Never measure for a save that will refuse to build on the file in place.
        store.load(path)
    except BaselineError as exc:
        raise SettingError(f"{flag}: {exc}") from None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Refuse a save that would clash with the baseline's entries, before the first test.

    ``--energy-save-baseline`` never overwrites a test's entry for this hardware
    class (``--energy-update-baseline`` does, with a reason); finding that only after
    the whole run would waste it.
    """
    run = session.config.pluginmanager.get_plugin(RUN_PLUGIN_NAME)
    if run is None or run.settings.save_baseline is None or run.settings.update_baseline:
        return
    machine = run.recorder.machine
    if machine is None or session.config.option.collectonly:
        return
    from pytest_energy.storage.baseline_file import BaselineError
    from pytest_energy.storage.baselines import BaselineStore

    store = BaselineStore(run.settings.dir)
    try:
        path = store.resolve(run.settings.save_baseline)
        if not path.exists():
            return
        stored = store.load(path).entries_for(machine.hardware_class) or {}
    except BaselineError:
        return  # changed since pytest configured: the save at the end says how
    clashes = sorted({item.nodeid for item in session.items} & set(stored))
    if clashes:
        # Like a refusal at configure time, this one leaves no trace: without the run
        # plugin, the end of the session writes no results file and no history row.
        session.config.pluginmanager.unregister(run)
        run.recorder.close()
        raise pytest.UsageError(
            f"--energy-save-baseline: baseline {path} already has entries for "
            f"{len(clashes)} of the selected tests on hardware class "
            f"{machine.hardware_class!r} (first: {clashes[0]}); a save never overwrites "
            "them: save under another name, or replace them with --energy-update-baseline "
            '--energy-reason="why the numbers changed"'
        )


@pytest.fixture
def energy_benchmark(request: pytest.FixtureRequest) -> EnergyBenchmark:
    """Measure a function's energy per call and per unit of work in calibrated rounds.

    Without ``--energy`` (or with ``--energy-benchmark-disable``) the function is
    called once and nothing is measured.
    """
    from pytest_energy.measure.benchmark import EnergyBenchmark

    # The run plugin is registered only with --energy; without it, nothing of the
    # measuring machinery is imported.
    run = request.config.pluginmanager.get_plugin(RUN_PLUGIN_NAME)
    if run is not None and not run.settings.benchmark_disable:
        return cast("EnergyBenchmark", run.benchmark_for(request))
    return EnergyBenchmark(request, None)
