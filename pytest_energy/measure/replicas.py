"""Fresh processes that measure chosen benchmarks again: the gate's unit of replication.

Each process carries its own offset (memory layout, hash seed, GPU state) that
more rounds inside it cannot shrink, so a baseline is saved from several
processes and a benchmark the screen flags is confirmed in fresh ones
(``docs/gate.md``). A replica is ``python -m pytest --energy`` on the chosen node
ids, in the session's rootdir and ini file, with the session's resolved energy
settings passed whole in ``PYTEST_ENERGY_REPLICA``. It writes its own results file
and nothing else; replicas run one after the other, since counters are machine-wide.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_energy.config.settings import REPLICA_ENV, Settings
from pytest_energy.frozen import frozen
from pytest_energy.record import ResultsError, Round, RoundRole, RunRecord, load

#: Options of the original command line a replica keeps: the ones that decide what
#: is collected and how it is imported. Everything else (reports of other plugins,
#: coverage, -x, -k) stays with the parent.
_KEPT_WITH_VALUE = (
    "-p",
    "-o",
    "--override-ini",
    "-c",
    "--config-file",
    "--rootdir",
    "--import-mode",
    "--confcutdir",
    "-W",
    "--pythonwarnings",
)
_KEPT_FLAGS = ("--noconftest", "--strict-markers", "--strict-config")
#: A replica may take this many times its tests' measured time, plus the start-up.
_TIMEOUT_FACTOR = 5.0
_TIMEOUT_FLOOR_S = 300.0


@frozen
class Replica:
    """What one fresh process measured, or why it measured nothing."""

    process: int
    record: RunRecord | None
    problem: str | None = None


def kept_arguments(args: Sequence[str]) -> list[str]:
    """The options of ``args`` that a replica needs to collect and import the same tests.

    >>> kept_arguments(["-x", "-p", "no:randomly", "--import-mode=importlib", "tests/", "-q"])
    ['-p', 'no:randomly', '--import-mode=importlib']
    """
    kept: list[str] = []
    position = 0
    while position < len(args):
        arg = args[position]
        name, has_value, _ = arg.partition("=")
        if arg in _KEPT_FLAGS or (name in _KEPT_WITH_VALUE and has_value):
            kept.append(arg)
        elif arg in _KEPT_WITH_VALUE and position + 1 < len(args):
            kept.extend(args[position : position + 2])
            position += 1
        elif any(arg.startswith(short) and len(arg) > 2 for short in ("-p", "-o", "-W", "-c")):
            kept.append(arg)  # "-pno:randomly"
        position += 1
    return kept


def run_replicas(
    config: pytest.Config,
    settings: Settings,
    nodeids: Sequence[str],
    *,
    processes: Sequence[int],
    expected_s: float,
    say: Callable[[str], None],
) -> list[Replica]:
    """Run ``nodeids`` in one fresh process per entry of ``processes``, one after the other."""
    done: list[Replica] = []
    timeout = max(_TIMEOUT_FLOOR_S, _TIMEOUT_FACTOR * expected_s)
    with tempfile.TemporaryDirectory(prefix="pytest-energy-replicas-") as folder:
        for count, process in enumerate(processes, start=1):
            say(
                f"energy: measuring {len(nodeids)} benchmark(s) again in fresh process "
                f"{count} of {len(processes)} (about {expected_s:.0f} s)"
            )
            done.append(_one(config, settings, nodeids, process, Path(folder), timeout))
    return done


def _one(
    config: pytest.Config,
    settings: Settings,
    nodeids: Sequence[str],
    process: int,
    folder: Path,
    timeout: float,
) -> Replica:
    results = folder / f"process-{process}.json"
    spec = {
        "process": process,
        "nodeids": list(nodeids),
        "results": str(results),
        "settings": settings.to_plain(),
    }
    rootdir = str(config.rootpath)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--energy",
        f"--rootdir={rootdir}",
        *(["-c", str(config.inipath)] if config.inipath else []),
        "-p",
        "no:cacheprovider",
        "-q",
        *kept_arguments(list(config.invocation_params.args)),
        *nodeids,
    ]
    env = {**os.environ, REPLICA_ENV: json.dumps(spec)}
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=config.invocation_params.dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Replica(process, None, f"process {process} ran over {timeout:.0f} s and was stopped")
    except OSError as exc:
        return Replica(process, None, f"process {process} could not start: {exc}")
    try:
        record = load(results)
    except ResultsError:
        tail = " ".join((done.stdout + done.stderr).split()[-30:])
        return Replica(
            process,
            None,
            f"process {process} wrote no results (exit {done.returncode} after "
            f"{time.monotonic() - started:.0f} s): {tail}",
        )
    return Replica(process, record)


def merge(record: RunRecord, replicas: Sequence[Replica], role: RoundRole) -> RunRecord:
    """The record with each replica's own rounds of a passed test added, as ``role``."""
    extra: dict[str, list[Round]] = {}
    for replica in replicas:
        if replica.record is None:
            continue
        for test in replica.record.tests:
            bench = test.benchmark
            if bench is None or test.outcome != "passed":
                continue
            rounds = [
                replace(r, role=role, process=replica.process)
                for r in bench.rounds
                if r.role == "candidate"
            ]
            extra.setdefault(test.nodeid, []).extend(rounds)
    tests = []
    for test in record.tests:
        bench = test.benchmark
        added = extra.get(test.nodeid)
        if bench is not None and added:
            bench = replace(bench, rounds=[*bench.rounds, *added])
            tests.append(replace(test, benchmark=bench))
        else:
            tests.append(test)
    return replace(record, tests=tests)
