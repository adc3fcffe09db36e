"""The self-contained HTML report: one file, no network, readable without JavaScript.

Everything the page shows is computed into small view objects with finished
strings (:mod:`.html_views`, :mod:`.html_methodology`) and chart coordinates
(:mod:`.html_charts`); the Jinja templates only lay them out. This module owns
the Jinja environment, the page's own stylesheet and script, the
Content-Security-Policy and :func:`render_html`.

Every template is rendered with ``autoescape=True`` (not ``select_autoescape``,
which leaves ``.j2`` files unescaped), nothing from the record is ever marked
safe, and the only ``Markup`` values are this package's own CSS and script
files. A Content-Security-Policy meta tag allows exactly that one inline
script, by hash, so an injected script could not run even if escaping failed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest_energy
from pytest_energy.record import RunRecord, TestResult
from pytest_energy.report.escape import html_json, html_text
from pytest_energy.report.html_methodology import methodology
from pytest_energy.report.html_views import (
    ChangeRow,
    TestRow,
    benchmark_cards,
    change_row,
    family_view,
    gate_line,
    json_number,
    machine_facts,
    summary_cards,
    test_row,
)
from pytest_energy.report.overview import (
    VERDICT_ORDER,
    Overview,
    method_statement,
    verdict_label,
)

__all__ = ["MAX_TABLE_ROWS", "content_security_policy", "render_html", "template_dir"]

#: Rows in the per-test table; beyond this the page says how many were left out.
#: 20,000 rows of a few hundred bytes each stay well under the 5 MB budget.
MAX_TABLE_ROWS = 20_000
#: Rows in each list of the "changes against the baseline" section.
MAX_CHANGES = 50

#: The columns of each test in the data block, in the order the script reads them.
DATA_COLUMNS = [
    "nodeid",
    "outcome",
    "joules",
    "j_per_unit",
    "seconds",
    "watts",
    "gco2e",
    "ratio",
    "verdict",
    "flags",
]


def template_dir() -> Path:
    """The templates: inside the package when installed from a wheel, else the repo's."""
    package = Path(pytest_energy.__file__).parent
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


def _finalize(value: Any) -> Any:
    """Every ``{{ value }}`` of the templates, before autoescape: text (a title, a
    tooltip, a chart label) with its bidi and control characters made visible.

    ``Markup`` passes unchanged: it is ours (the stylesheet, the script, the
    ``|tojson`` data written by :func:`html_json`) or test ids already escaped by
    :func:`~pytest_energy.report.html_views.display_id` and joined with ``<wbr>``.
    """
    if isinstance(value, str) and not hasattr(value, "__html__"):
        return html_text(value)
    return value


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        autoescape=True,  # every template, whatever its file name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_finalize,
    )
    # |tojson escapes < > & ' as \u00XX, so "</script>" in a test id stays inside
    # the data block, and html_json writes bidi controls as \uXXXX; compact
    # separators keep a 5,000-test page small.
    env.policies["json.dumps_function"] = html_json
    env.policies["json.dumps_kwargs"] = {
        "sort_keys": True,
        "separators": (",", ":"),
        "allow_nan": False,
        "ensure_ascii": False,
    }
    return env


@functools.lru_cache(maxsize=1)
def _assets() -> tuple[str, str, str]:
    """Our stylesheet and script, and the CSP hash of the script."""
    directory = template_dir()
    css = (directory / "report.css").read_text(encoding="utf-8")
    script = (directory / "report.js").read_text(encoding="utf-8")
    if "</" in script or "<!--" in script:  # would end or confuse the <script> element
        raise RuntimeError("report.js must not contain '</' or '<!--'")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return css, script, f"sha256-{digest}"


def content_security_policy(script_hash: str) -> str:
    """Nothing may load; only our inline styles and the one hashed script run."""
    return (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src '{script_hash}'; img-src data:; base-uri 'none'; form-action 'none'"
    )


def render_html(record: RunRecord, history: Mapping[str, Sequence[float]] | None = None) -> str:
    """The report page for ``record``; ``history`` maps test ids to earlier figures.

    The output depends only on the arguments (no clock, no environment), so the
    same record always renders to the same bytes.
    """
    from markupsafe import Markup

    history = history or {}
    css, script, script_hash = _assets()
    cards, ov = summary_cards(record)
    tests = record.tests
    bench_cards, anchors, benches_omitted = benchmark_cards(tests, history)
    rows, data_rows = _test_table(tests, anchors, history)
    template = _environment().get_template("report.html.j2")
    return str(
        template.render(
            css=Markup(css),  # our own file, not data
            wbr=Markup("<wbr>"),  # a constant; |join escapes the parts it joins
            script=Markup(script),  # our own file, hashed into the CSP below
            csp=content_security_policy(script_hash),
            record=record,
            ov=ov,
            method_statement=method_statement(record),
            cards=cards,
            facts=machine_facts(record),
            gate_line=gate_line(record),
            notices=list(record.session.notices),
            changes=_changes(ov),
            rows=rows,
            rows_omitted=max(0, len(tests) - MAX_TABLE_ROWS),
            has_history=bool(history),
            verdict_filters=[(s, verdict_label(s)) for s in VERDICT_ORDER],
            bench_cards=bench_cards,
            interleaved=any(b.plot and len(b.plot.lanes) > 1 for b in bench_cards),
            benches_omitted=benches_omitted,
            families=[family_view(f) for f in record.families],
            methodology=methodology(record),
            data=_data_block(record, ov, data_rows),
        )
    )


def _test_table(
    tests: Sequence[TestResult], anchors: Mapping[str, str], history: Mapping[str, Any]
) -> tuple[list[TestRow], list[list[Any]]]:
    """The first :data:`MAX_TABLE_ROWS` tests as table rows and as data-block rows."""
    rows: list[TestRow] = []
    data_rows: list[list[Any]] = []
    for index, test in enumerate(tests[:MAX_TABLE_ROWS]):
        row, row_data = test_row(index, test, anchors, history)
        rows.append(row)
        data_rows.append(row_data)
    return rows, data_rows


def _data_block(record: RunRecord, ov: Overview, data_rows: list[list[Any]]) -> dict[str, Any]:
    """The page's JSON data block: what the sorting and filtering script reads."""
    return {
        "schema_version": record.schema_version,
        "plugin_version": record.session.machine.plugin_version,
        "method": record.session.method,
        "headline": ov.headline,
        "counts": dict(sorted(ov.counts.items())),
        "total_j": json_number(ov.total_j),
        "total_gco2e": json_number(ov.total_grams),
        "columns": DATA_COLUMNS,
        "tests": data_rows,
    }


def _changes(ov: Overview) -> list[tuple[str, list[ChangeRow], int]]:
    """Each non-empty list of changes: its title, its first rows, and how many it has."""
    lists = [
        ("Regressions", ov.regressions),
        ("Improvements", ov.improvements),
        ("Inconclusive", ov.inconclusive),
    ]
    return [
        (title, [change_row(t) for t in changed[:MAX_CHANGES]], len(changed))
        for title, changed in lists
        if changed
    ]
