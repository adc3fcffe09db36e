"""The baseline store: the reviewed numbers the gate compares a run with.

A baseline is a JSON file meant to be committed (default
``.energy/baselines/<name>.json``, format in :mod:`.baseline_file`): saving the
same run twice gives the same bytes, and a pull request's diff shows exactly
which tests' numbers changed.

Numbers are kept apart by hardware class (CPU model, GPU model, meter method):
a baseline recorded on one class is never used for another, so a file can
hold the numbers of several runner types side by side.

Rules for writing, chosen so a baseline never changes by accident:

* :meth:`BaselineStore.save_run` adds the run's tests to the baseline. A test
  that already has an entry for this hardware class is a conflict: the save is
  refused as a whole unless ``replace=True`` (the plugin's
  ``--energy-update-baseline``). Other hardware classes, and tests of this class
  that the run did not measure, are always kept.
* :meth:`BaselineStore.update_entries` rewrites only the named tests and
  records the required reason with each of them; every other byte stays.
* A file that cannot be read as a baseline (corrupt, truncated, a newer
  format) is never overwritten or repaired: every write reads and validates the
  current file first, under an advisory lock, and stops with a
  :class:`BaselineError` that leaves it untouched.
"""

from __future__ import annotations

import fcntl
import math
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytest_energy.config import defaults
from pytest_energy.output_files import write_atomic
from pytest_energy.record import RunRecord
from pytest_energy.record_json import JSONInputError, parse_json
from pytest_energy.stats import middle
from pytest_energy.storage.baseline_file import (
    Baseline,
    BaselineEntry,
    BaselineError,
    empty_baseline,
    machine_block,
    one_line,
    parse_baseline,
    render_baseline,
    round6,
)
from pytest_energy.storage.energy_dir import prepare_directory

# Names become file names; keep them portable and free of path tricks.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class BaselineStore:
    """Baseline files under ``directory`` (default ``.energy``), in ``baselines/``."""

    def __init__(self, directory: Path = defaults.ENERGY_DIR) -> None:
        self.directory = Path(directory)

    @property
    def baselines_dir(self) -> Path:
        return self.directory / "baselines"

    def resolve(self, name_or_path: str) -> Path:
        """A baseline name -> ``<directory>/baselines/<name>.json``; a path stays a path.

        Anything with a path separator or a ``.json`` suffix is taken as a path.
        """
        if name_or_path.endswith(".json") or any(
            sep and sep in name_or_path for sep in (os.sep, os.altsep)
        ):
            return Path(name_or_path)
        if not _NAME.fullmatch(name_or_path):
            raise BaselineError(
                f"invalid baseline name {name_or_path!r}: use letters, digits, '.', '_' "
                f"and '-' (starting with a letter or digit), or give a path ending in .json"
            )
        return self.baselines_dir / f"{name_or_path}.json"

    def names(self) -> list[str]:
        """Names of the baselines saved in this store, sorted."""
        if not self.baselines_dir.is_dir():
            return []
        return sorted(
            p.stem for p in self.baselines_dir.glob("*.json") if not p.name.startswith(".")
        )

    def load(self, name_or_path: str | Path) -> Baseline:
        """Read and validate a baseline; every problem is a one-line :class:`BaselineError`."""
        path = self._path(name_or_path)
        data = self._read(path)
        if data is None:
            raise BaselineError(self.missing_reason(path, name_or_path))
        return parse_baseline(data, path)

    def save_run(
        self,
        record: RunRecord,
        name: str | Path = defaults.BASELINE_NAME,
        *,
        commit: str | None = None,
        replace: bool = False,
        reason: str | None = None,
    ) -> Path:
        """Add this run's measured tests to baseline ``name`` for its hardware class.

        Creates the file on first save. Tests that already have an entry for this
        hardware class are a conflict, refused as a whole unless ``replace``;
        entries of other hardware classes and of tests this run did not measure
        are kept. Returns the file's path.
        """
        hardware_class = record.session.machine.hardware_class
        entries = baseline_entries(record, commit=commit, reason=_clean_reason(reason))
        if not entries:
            raise BaselineError(
                "this run has no passed test with an energy figure, so there is nothing "
                "to save as a baseline"
            )
        path = self._path(name)
        with self._writing(path):
            data = self._read(path)
            if data is None:
                data = empty_baseline(path.stem)
            else:
                parse_baseline(data, path)  # never build on a file that does not validate
            block = _class_block(data, record)
            tests = block["tests"]
            clashes = sorted(set(tests) & set(entries))
            if clashes and not replace:
                raise BaselineError(
                    f"baseline {data['name']!r} ({path}) already has entries for {len(clashes)} "
                    f"of these tests on hardware class {hardware_class!r} (first: {clashes[0]}); "
                    f"refusing to overwrite them: pass --energy-update-baseline to replace them"
                )
            tests.update({nodeid: e.to_dict() for nodeid, e in entries.items()})
            # A new save describes the machine as it is now (a newer driver, say);
            # an update of single entries leaves the description alone.
            block["machine"] = machine_block(record)
            write_atomic(path, render_baseline(data))
        return path

    def update_entries(
        self,
        record: RunRecord,
        name: str | Path,
        nodeids: Iterable[str],
        reason: str,
        *,
        commit: str | None = None,
    ) -> Path:
        """Rewrite the entries of ``nodeids`` from this run, recording ``reason`` with each.

        The baseline must exist; the tests must be in the run with an energy figure.
        Every other entry keeps its bytes. Returns the file's path.
        """
        why = _clean_reason(reason)
        if why is None:
            raise BaselineError(
                "updating baseline entries needs a reason (for example 'new tokenizer, "
                "accepted +8% energy'); it is stored with each updated entry for review"
            )
        wanted = list(dict.fromkeys(nodeids))
        if not wanted:
            raise BaselineError("no tests were named to update in the baseline")
        by_id = {t.nodeid: t for t in record.tests}
        entries = baseline_entries(record, commit=commit, reason=why)
        for nodeid in wanted:
            if nodeid not in by_id:
                raise BaselineError(f"cannot update {nodeid}: it is not in this run")
            if nodeid not in entries:
                raise BaselineError(
                    f"cannot update {nodeid}: it has no usable energy figure in this run "
                    f"(outcome {by_id[nodeid].outcome}, flags {by_id[nodeid].flags or 'none'})"
                )
        path = self._path(name)
        with self._writing(path):
            data = self._read(path)
            if data is None:
                raise BaselineError(
                    self.missing_reason(path, name) + "; save one before updating it"
                )
            parse_baseline(data, path)
            tests = _class_block(data, record)["tests"]
            tests.update({nodeid: entries[nodeid].to_dict() for nodeid in wanted})
            write_atomic(path, render_baseline(data))
        return path

    def _path(self, name_or_path: str | Path) -> Path:
        return name_or_path if isinstance(name_or_path, Path) else self.resolve(name_or_path)

    @contextmanager
    def _writing(self, path: Path) -> Iterator[None]:
        if path.parent == self.baselines_dir:
            prepare_directory(self.directory)
        with _locked(path):
            yield

    def _read(self, path: Path) -> dict[str, Any] | None:
        """The file's JSON object, or None when it does not exist."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise BaselineError(f"cannot read baseline file {path}: {one_line(exc)}") from None
        try:
            # A baseline may come from anyone's pull request: strict JSON, depth-limited.
            data = parse_json(text)
        except JSONInputError as exc:
            problem = f"is truncated ({exc.detail})" if exc.truncated else str(exc)
            raise BaselineError(
                f"baseline file {path} {' '.join(problem.split())}; it was left untouched: "
                f"restore it from version control or delete it and save again"
            ) from None
        if not isinstance(data, dict):
            raise BaselineError(f"baseline file {path} must hold a JSON object")
        return data

    def missing_reason(self, path: Path, name_or_path: str | Path) -> str:
        """Why a baseline cannot be found, with the names that can."""
        if isinstance(name_or_path, str) and path.parent == self.baselines_dir:
            names = self.names()
            available = ", ".join(names) if names else "none saved yet"
            return (
                f"no baseline named {name_or_path!r} in {self.baselines_dir} "
                f"(available: {available})"
            )
        return f"baseline file {path} does not exist"


def baseline_entries(
    record: RunRecord, *, commit: str | None = None, reason: str | None = None
) -> dict[str, BaselineEntry]:
    """The entries this run would save, by node id: its passed, measured tests."""
    session = record.session
    saved_at = session.finished or session.started
    entries: dict[str, BaselineEntry] = {}
    for test in record.tests:
        per_unit = test.per_unit_samples()
        if per_unit is None or test.measurement is None:
            continue
        unit, samples = per_unit
        bench = test.benchmark
        labels: list[int] = []
        normalized: list[float] = []
        if bench is not None and bench.per_unit_samples():
            groups = bench.by_process()
            samples = [value for group in groups for value in group]
            labels = [index for index, group in enumerate(groups) for _ in group]
            normalized = [v for group in bench.by_process(normalized=True) for v in group]
            if len(normalized) != len(samples):
                normalized = []  # some rounds ran without the calibration workload
        if not samples:
            continue  # no round with a positive J per unit: nothing to compare with
        entries[test.nodeid] = BaselineEntry(
            method=test.measurement.method,
            meters=list(test.measurement.meters),
            unit=unit,
            units_per_call=bench.units_per_call if bench else 1.0,
            samples=samples,
            median=middle(samples),
            n=len(samples),
            calls_per_round=bench.calls_per_round if bench else 1,
            saved_at=saved_at,
            commit=commit or session.commit,
            reason=reason,
            family=test.variant.family if test.variant else None,
            variant=test.variant.variant if test.variant else None,
            flags=sorted(set(test.flags)),
            quality={
                q.name: {"value": round6(q.value), "higher_is_better": q.higher_is_better}
                for q in (bench.quality if bench else [])
                if math.isfinite(q.value)
            },
            normalized=normalized,
            processes=labels,
        )
    return entries


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock for ``path`` during a read-modify-write.

    The lock lives in its own file: the baseline itself is replaced by rename on
    every write, so a lock on it would guard an inode nobody reads any more. The
    lock file is left in place, since removing it would let a third writer lock a
    fresh file while the second still holds the old one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _class_block(data: dict[str, Any], record: RunRecord) -> dict[str, Any]:
    """The (validated) block of the run's hardware class, created with its machine."""
    classes: dict[str, dict[str, Any]] = data["classes"]
    return classes.setdefault(
        record.session.machine.hardware_class,
        {"machine": machine_block(record), "tests": {}},
    )


def _clean_reason(reason: str | None) -> str | None:
    text = " ".join((reason or "").split())
    return text or None
