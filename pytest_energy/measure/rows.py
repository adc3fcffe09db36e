"""Plain tests' results, kept as rows of plain values until something reads them.

A test's result is three records (the result, its measurement, its CO2e): objects that
live, and that the garbage collector tracks, to the end of the session. Objects that
live are what makes the collector run: every 700 more of them a young collection, every
eleventh of those a full one that walks the whole heap. With records, 2,000 trivial
tests ran 51 young collections and one full one (30-50 ms) where a plain run ran 42 and
none; with rows, 43 and none (``gc.get_stats()`` around the test loop; issue 16).

So the result of a plain test (measured; no benchmark, budget, gate or error, and not
sent by an xdist worker) is kept as a :data:`Row`: its values appended to the shape's
columns, one list per field, and its index there. No object the collector counts or
tracks is made for it. (A tuple per test would not do: the collector stops tracking a
tuple of plain values at its first young collection, but its allocation still counts
towards the next one, and a tuple that holds any container, even an empty dict, stays
tracked.)

The records are made when something reads the results (the session's end), equal to the
ones the general path makes; a checkpoint writes a row's line from a template of the
session's line, the same text as the record's line (``tests/test_rows.py`` checks both).
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeAlias, cast

from pytest_energy.measure.window import Edge, EdgeWindows
from pytest_energy.record import BudgetNote, Carbon, Measurement, TestResult
from pytest_energy.record_lines import WrittenTests, encode_test

#: A row: its index in the shape's columns.
Row: TypeAlias = int
#: A result as the recorder holds it: a record, or a row it stands for.
Entry: TypeAlias = "TestResult | Row"
#: Operational and embodied grams CO2e -> the session's :class:`Carbon` record.
CarbonOf = Callable[[float, "float | None"], Carbon]

#: A session has a handful of flag combinations; past this many, results stay records.
_MAX_FLAG_LISTS = 64
#: Rows from which writing their lines from the template (made once, ~0.3 ms; then ~5 µs
#: a line) costs less than encoding their records (~13 µs each).
_TEMPLATE_PAYS_FROM = 64


class RowShape:
    """What every row of a session shares, and the two ways between rows and records."""

    def __init__(
        self,
        scope: str,
        method: str,
        meters: list[str],
        carbon_of: CarbonOf,
        no_budget: list[BudgetNote],
        worker: str | None = None,
    ) -> None:
        self._scope = scope
        self.method = method
        self._meters = meters
        self._carbon_of = carbon_of
        self._no_budget = no_budget
        self._worker = worker
        #: The measurements' shared flag lists, and each one's index by identity (the
        #: lists live here, so their ids stay theirs).
        self._flags: list[list[str]] = []
        self._flag_index: dict[int, int] = {}
        #: The joules' names, as the first measurement had them.
        self._names: tuple[str, ...] | None = None
        #: Each flag list as JSON, by index; and the line template, made on first use
        #: (None until then; False when the session's line cannot be a template).
        self._flags_text: list[str] = []
        self._line: Callable[[Row], str | None] | bool | None = None
        # The columns, a list per field, a row's values at its index.
        self._nodeid: list[str] = []
        self._file: list[str] = []
        self._line_no: list[int | None] = []
        self._outcome: list[str] = []
        self._seconds: list[float] = []
        self._total_j: list[float] = []
        self._flag: list[int] = []
        self._net_j: list[float | None] = []
        self._grams: list[float] = []
        self._embodied: list[float | None] = []
        self._joules: list[list[float]] = []

    def row(
        self,
        nodeid: str,
        file: str,
        line: int | None,
        outcome: str,
        measurement: Measurement,
        net_j: float | None,
        grams: float,
        embodied_grams: float | None,
    ) -> Row | None:
        """The row of a plain test's result, or None when it must stay a record."""
        if measurement.method != self.method or measurement.meters is not self._meters:
            return None
        joules = measurement.joules
        return self.add(
            nodeid,
            file,
            line,
            outcome,
            measurement.seconds,
            tuple(joules),
            joules.values(),
            measurement.total_j,
            measurement.flags,
            net_j,
            grams,
            embodied_grams,
        )

    def add(
        self,
        nodeid: str,
        file: str,
        line: int | None,
        outcome: str,
        seconds: float,
        names: tuple[str, ...],
        joules: Iterable[float],
        total_j: float,
        flags: list[str],
        net_j: float | None,
        grams: float,
        embodied_grams: float | None,
    ) -> Row | None:
        """The row of a measurement of this shape's method and meters, from its numbers:
        joules per domain of ``names``, and the shared list of its flags."""
        index = self._flag_index.get(id(flags))
        if index is None:
            if len(self._flags) >= _MAX_FLAG_LISTS:
                return None
            index = self._flag_index[id(flags)] = len(self._flags)
            self._flags.append(flags)
            self._flags_text.append(json.dumps(flags))
        if self._names is None:
            self._names = names
            self._joules = [[] for _ in names]
        elif names != self._names:
            return None
        columns = self._joules
        if len(columns) == 1:  # one meter's one domain: no zip (issue 16)
            (value,) = joules
            columns[0].append(value)
        else:
            for column, value in zip(columns, joules, strict=True):
                column.append(value)
        self._nodeid.append(nodeid)
        self._file.append(file)
        self._line_no.append(line)
        self._outcome.append(outcome)
        self._seconds.append(seconds)
        self._total_j.append(total_j)
        self._flag.append(index)
        self._net_j.append(net_j)
        self._grams.append(grams)
        self._embodied.append(embodied_grams)
        return len(self._nodeid) - 1

    def figures(self, row: Row) -> tuple[float, float, str, float | None]:
        """The row's joules, seconds, method and net joules: what the running totals add."""
        return self._total_j[row], self._seconds[row], self.method, self._net_j[row]

    def record(self, row: Row) -> TestResult:
        """The record a row stands for."""
        assert self._names is not None  # set by the first row
        return TestResult(
            nodeid=self._nodeid[row],
            file=self._file[row],
            line=self._line_no[row],
            outcome=self._outcome[row],  # type: ignore[arg-type]
            scope=self._scope,
            measurement=Measurement(
                seconds=self._seconds[row],
                joules=self._joules_of(row),
                total_j=self._total_j[row],
                method=self.method,
                meters=self._meters,
                flags=self._flags[self._flag[row]],
            ),
            net_j=self._net_j[row],
            carbon=self._carbon_of(self._grams[row], self._embodied[row]),
            budget=self._no_budget,
            worker=self._worker,
        )

    def _joules_of(self, row: Row) -> dict[str, float]:
        names = self._names or ()
        if len(names) == 1:  # one meter's one domain: no comprehension (issue 16)
            return {names[0]: self._joules[0][row]}
        return {name: column[row] for name, column in zip(names, self._joules, strict=True)}

    def expand(self, entries: list[Entry], *, text: bool = True) -> WrittenTests | None:
        """Replace the rows in ``entries`` with their records, in place; with ``text``,
        returns where their text can be read (:meth:`written`), when that is cheaper than
        encoding them (a session with a results file reads it back from there instead).

        The records live to the session's end: made with the collector running, its young
        collections (one every 700) walked and promoted them, and at 20,000 tests that
        ended in one more full collection (~0.25 s). Made with it paused, they meet one
        young collection. Nothing here makes cyclic garbage.
        """
        kept = list(entries) if text else []
        rows = 0
        running = gc.isenabled()
        gc.disable()
        try:
            for index, entry in enumerate(entries):
                if type(entry) is int:
                    entries[index] = self.record(entry)
                    rows += 1
        finally:
            if running:
                gc.enable()
        if not text or (self._line is None and rows < _TEMPLATE_PAYS_FROM):
            return None  # encoding these few records is cheaper than making the template
        return self.written(kept, cast("list[TestResult]", list(entries)))

    def written(self, entries: Sequence[Entry], records: Sequence[TestResult]) -> WrittenTests:
        """Where the history's copy of a run without a results file reads its tests' text
        (:func:`~pytest_energy.record_lines.offer_written`): ``entries`` as kept, rows
        and records, which became ``records``; a row's line is written from the template
        (~5 µs) instead of its record encoded again (~13 µs a test; issue 16). For any
        other tests than these very records, the source gives None."""

        def text(tests: Sequence[TestResult]) -> Iterator[str] | None:
            if len(tests) != len(records) or any(
                test is not kept for test, kept in zip(tests, records, strict=True)
            ):
                return None
            return self._lines(entries)

        return text

    def _lines(self, entries: Sequence[Entry]) -> Iterator[str]:
        for number, entry in enumerate(entries):
            line = encode_test(entry) if isinstance(entry, TestResult) else self.line(entry)
            yield ("\n" if number == 0 else ",\n") + line

    def line(self, row: Row) -> str:
        """The row's line in the results file: the text of its record's line
        (:func:`~pytest_energy.record_lines.encode_test`), without making the record."""
        line = self._line
        if line is None:
            line = self._line = self._line_template()
        text = line(row) if callable(line) else None
        if text is None:
            # Infinity or NaN somewhere (the JSON writes null for it), or no template.
            return encode_test(self.record(row))
        return text

    def _line_template(self) -> Callable[[Row], str | None] | bool:
        """A function that writes a row's line by filling the session's line template.

        The template is the line of a record whose variable values are marker strings;
        each marker becomes a slot of an f-string, filled with the value as the JSON
        encoder writes it (``float.__repr__``, ``int.__repr__``, the ASCII string escape,
        ``null``). An f-string joins its parts in one step; ``%``-formatting the same
        line parsed its 600-character format on every call (~1 µs a line of ~4.5).
        """
        names = self._names or ()
        # The values are read into locals first (s, t, x, ...); a domain's joules that are
        # the very float of the total (one domain, a row from edges) reuse its text.
        slots = {
            "N": "_s(_nodeid[row])",
            "F": "_s(_file[row])",
            "L": "'null' if _line_no[row] is None else _i(_line_no[row])",
            "O": "_s(_outcome[row])",
            "S": "_f(s)",
            "T": "total",
            "G": "_flags_text[_flag[row]]",
            "X": "'null' if x is None else _f(x)",
            "C": "_f(c)",
            "E": "'null' if e is None else _f(e)",
            **{f"J{k}": f"total if j{k} is t else _f(j{k})" for k in range(len(names))},
        }

        def marker(slot: str) -> Any:
            return f"\x00{slot}\x00"

        proto = TestResult(
            nodeid=marker("N"),
            file=marker("F"),
            line=marker("L"),
            outcome=marker("O"),
            scope=self._scope,
            measurement=Measurement(
                seconds=marker("S"),
                joules={name: marker(f"J{k}") for k, name in enumerate(names)},
                total_j=marker("T"),
                method=self.method,
                meters=self._meters,
                flags=marker("G"),
            ),
            net_j=marker("X"),
            carbon=self._carbon_of(marker("C"), marker("E")),
            budget=self._no_budget,
            worker=self._worker,
        )
        # Each marker as the JSON encoder writes it; compiled here, once a session.
        pieces = re.split(r'"\\u0000(\w+)\\u0000"', encode_test(proto))
        found = pieces[1::2]
        if sorted(found) != sorted(slots):
            return False  # a marker lost or doubled: every line takes the record's path
        joules = [f"j{k}" for k in range(len(names))]
        source = "\n    ".join(
            [
                "def line(row):",
                "s, t, x, c, e = _seconds[row], _total_j[row], _net_j[row], _grams[row], "
                "_embodied[row]",
                *(f"j{k} = _joules_{k}[row]" for k in range(len(names))),
                # Not finite (NaN - NaN and inf - inf are NaN): None, for the record's path.
                f"n = s + t + c + (x or 0.0) + (e or 0.0) + {' + '.join(joules) or '0.0'}",
                "if n - n != 0.0:",
                "    return None",
                "total = _f(t)",
                # The session's text between the values is in the scope, as _p0, _p1, ...
                'return f"'
                + "".join(
                    f"{{_p{index // 2}}}" if index % 2 == 0 else f"{{{slots[piece]}}}"
                    for index, piece in enumerate(pieces)
                    if piece or index % 2
                )
                + '"',
            ]
        )
        columns = ("_nodeid", "_file", "_line_no", "_outcome", "_seconds", "_total_j", "_flag")
        scope: dict[str, Any] = {
            "_s": json.encoder.encode_basestring_ascii,
            "_f": float.__repr__,
            "_i": int.__repr__,
            "_flags_text": self._flags_text,
            **{name: getattr(self, name) for name in columns},
            **{name: getattr(self, name) for name in ("_net_j", "_grams", "_embodied")},
            **{f"_joules_{k}": column for k, column in enumerate(self._joules)},
            **{f"_p{index}": piece for index, piece in enumerate(pieces[0::2])},
        }
        exec(compile(source, "<row line>", "exec"), scope)  # made from the slot table above
        function: Callable[[Row], str | None] = scope["line"]
        return function


class EdgeRows:
    """Plain tests' rows written from their windows' two edges, for a session metered by
    one single-domain meter (the model: ``SessionRecorder.plain_meter``). The row is
    the one :meth:`RowShape.row` makes from the window's measurement, which is only made
    for a test that needs it (:meth:`measurement`: a budget, a benchmark)."""

    def __init__(
        self,
        shape: RowShape,
        windows: EdgeWindows,
        figures: Callable[[float, float], tuple[float, float | None]],
        net_of: Callable[[float, float], float | None],
    ) -> None:
        self._shape = shape
        self._windows = windows
        #: Operational and embodied grams of (joules, seconds); net joules of the same.
        self._figures = figures
        self._net_of = net_of
        self._names = (windows.domain,)

    def row(
        self, nodeid: str, file: str, line: int | None, outcome: str, start: Edge, stop: Edge
    ) -> Row | None:
        """The test's row; None when it must be a record."""
        seconds, joules, flags = self._windows.numbers(start, stop)
        grams, embodied = self._figures(joules, seconds)
        net_j = self._net_of(joules, seconds)
        return self._shape.add(
            nodeid, file, line, outcome, seconds, self._names, (joules,), joules, flags, net_j,
            grams, embodied,
        )  # fmt: skip

    def measurement(self, start: Edge, stop: Edge) -> Measurement:
        return self._windows.measurement(start, stop)
