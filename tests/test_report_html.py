"""The HTML report: structure, safety and determinism, checked by parsing the page.

The page is parsed with the standard library's ``html.parser`` the way a browser
tokenises it, so an escaping mistake shows up as an extra element (a second
inline script, an ``<img>``) or as changed text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from records import (
    HOSTILE_IDS,
    hostile_record,
    passed_record,
    sample_record,
    scale_history,
    scale_record,
    ungated_record,
)

import pytest_energy
from pytest_energy.record import SCHEMA_VERSION, Calibration, RunRecord
from pytest_energy.report import format as fmt
from pytest_energy.report import html as report_html
from pytest_energy.report import html_charts, html_views
from pytest_energy.report.html import render_html, template_dir

VOID = {"meta", "link", "br", "wbr", "img", "input", "hr", "col", "source", "area", "base"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parent: Element | None
    content: list[Element | str] = field(default_factory=list)

    @property
    def children(self) -> list[Element]:
        return [c for c in self.content if isinstance(c, Element)]

    @property
    def text(self) -> list[str]:
        """The element's own text nodes, without its children's."""
        return [c for c in self.content if isinstance(c, str)]

    def text_content(self) -> str:
        return "".join(c if isinstance(c, str) else c.text_content() for c in self.content)


class Page(HTMLParser):
    """A small DOM: enough to find elements, their attributes and their text."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {}, None)
        self.current = self.root
        self.elements: list[Element] = []
        self.feed(source)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.content.append(element)
        self.elements.append(element)
        if tag not in VOID:
            self.current = element

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.content.append(element)
        self.elements.append(element)

    def handle_endtag(self, tag: str) -> None:
        node: Element | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.content.append(data)

    def find_all(self, tag: str, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag and all(e.attrs.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]

    def by_id(self, element_id: str) -> Element:
        (found,) = [e for e in self.elements if e.attrs.get("id") == element_id]
        return found


def descendants(element: Element, tag: str) -> list[Element]:
    out: list[Element] = []
    for child in element.children:
        if child.tag == tag:
            out.append(child)
        out.extend(descendants(child, tag))
    return out


def definitions(dl: Element) -> dict[str, str]:
    """A <dl> of <div><dt/><dd/></div> pairs as a dict."""
    return {
        descendants(div, "dt")[0].text_content(): descendants(div, "dd")[0].text_content()
        for div in dl.children
    }


def row_ids(page: Page) -> list[str]:
    """The test id shown in each row of the test table (without the "rounds" link)."""
    body = descendants(page.by_id("tests"), "tbody")[0]
    ids = []
    for tr in descendants(body, "tr"):
        th = descendants(tr, "th")[0]
        text = "".join(
            c if isinstance(c, str) else c.text_content()
            for c in th.content
            if not (isinstance(c, Element) and c.tag == "a")
        )
        # A benchmark's id is followed by " rounds", a link to its card.
        ids.append(text[:-1] if descendants(th, "a") else text)
    return ids


@pytest.fixture(scope="module")
def sample_page() -> tuple[str, Page]:
    source = render_html(sample_record())
    return source, Page(source)


@pytest.fixture(scope="module")
def hostile_page() -> tuple[str, Page]:
    source = render_html(hostile_record())
    return source, Page(source)


def test_sections_are_present(sample_page: tuple[str, Page]) -> None:
    _, page = sample_page
    for section in ("summary", "changes", "tests-section", "benchmarks", "families", "methodology"):
        assert page.by_id(section).tag == "section"
    titles = [e.text_content() for e in page.find_all("h2")]
    assert titles == [
        "Summary",
        "Changes against the baseline",
        "Tests",
        "Benchmarks: energy per unit, round by round",
        "Model families",
        "Methodology",
    ]


def test_header_describes_machine_method_and_run(sample_page: tuple[str, Page]) -> None:
    _, page = sample_page
    facts = definitions(page.find_all("dl", class_="facts")[0])
    assert facts["CPU"] == "AMD EPYC 9R14 96-Core Processor (16 logical CPUs)"
    assert facts["GPUs"] == "NVIDIA H100 80GB HBM3"
    assert facts["Kernel"] == "Linux 6.8.0-1024-aws"
    assert facts["Commit"] == "3f2a9c1b7d on feature/int8"
    assert facts["Plugin"] == "pytest-energy 0.1.0"
    assert facts["Started"] == "2025-11-20T10:00:00+00:00"
    assert "NVML total energy counter" in facts["Meters"]
    headline = page.find_all("h1")[0].text_content()
    assert (
        headline == "✗ Energy check failed: 2 regressions, 1 variant over its limits, "
        "suite total +4.0%; 5 of 8 tests gated"
    )
    assert "Measured" in page.find_all("p", class_="method method-measured")[0].text_content()


def test_summary_cards(sample_page: tuple[str, Page]) -> None:
    _, page = sample_page
    cards = {
        descendants(card, "h3")[0].text_content(): descendants(card, "p")[0].text_content()
        for card in page.elements
        if card.attrs.get("class", "").startswith("card")
    }
    assert cards["Gate"] == "✗ failed"
    assert cards["Total energy"] == "59.0 kJ"
    assert cards["CO2e"] == "5.61 g"
    assert cards["Tests measured"] == "7"
    assert cards["Gated"] == "5"
    assert cards["Regressions"] == "▲ 2"
    assert cards["Improvements"] == "▼ 1"
    assert cards["Inconclusive"] == "? 1"
    co2_detail = [c for c in page.elements if c.attrs.get("class") == "detail"]
    assert any("Ember 2024, DEU, 342 g/kWh" in c.text_content() for c in co2_detail)


def test_test_table_has_a_row_per_test_with_scoped_headers(
    sample_page: tuple[str, Page],
) -> None:
    _, page = sample_page
    record = sample_record()
    table = page.by_id("tests")
    header_cells = descendants(descendants(table, "thead")[0], "th")
    assert all(th.attrs.get("scope") == "col" for th in header_cells)
    rows = descendants(descendants(table, "tbody")[0], "tr")
    assert len(rows) == len(record.tests)
    assert [r.attrs["data-i"] for r in rows] == [str(i) for i in range(len(rows))]
    assert row_ids(page) == [t.nodeid for t in record.tests]
    first = [c.text_content() for c in rows[0].children]
    assert first[:9] == [
        "tests/test_io.py::test_load_dataset",
        "passed",
        "412 J",
        "",
        "3.90 s",
        "106 W",
        "39.2 mg",
        "+23.0%1.23x [1.20, 1.26]",
        "▲ regression",
    ]
    # Colour is never the only signal: the verdict carries a symbol and a word.
    verdicts = [
        e.text_content() for e in page.find_all("span") if "verdict" in e.attrs.get("class", "")
    ]
    assert "▼ improvement" in verdicts
    assert "? inconclusive" in verdicts


def test_csp_allows_only_the_hashed_inline_script(sample_page: tuple[str, Page]) -> None:
    _, page = sample_page
    (meta,) = page.find_all("meta", **{"http-equiv": "Content-Security-Policy"})
    policy = dict(([*part.split(" ", 1), ""])[:2] for part in meta.attrs["content"].split("; "))
    assert policy["default-src"] == "'none'"
    assert policy["img-src"] == "data:"
    assert policy["style-src"] == "'unsafe-inline'"
    scripts = page.find_all("script")
    assert [s.attrs for s in scripts] == [
        {"type": "application/json", "id": "energy-data"},
        {},
    ]
    code = scripts[1].text_content()
    digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
    assert policy["script-src"] == f"'sha256-{digest}'"
    assert "innerHTML" not in code
    assert "insertAdjacentHTML" not in code
    assert "document.write" not in code


def test_nothing_is_loaded_from_elsewhere(sample_page: tuple[str, Page]) -> None:
    source, page = sample_page
    for element in page.elements:
        assert "src" not in element.attrs, element.tag
        href = element.attrs.get("href")
        assert href is None or href.startswith("#"), href
    style = page.find_all("style")[0].text_content()
    assert "url(" not in style.replace("url(#spark-end)", "")
    assert "@import" not in style
    assert "<link" not in source


def test_json_block_parses_back(sample_page: tuple[str, Page]) -> None:
    _, page = sample_page
    data = json.loads(page.by_id("energy-data").text_content())
    record = sample_record()
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["method"] == "measured"
    assert data["columns"][:3] == ["nodeid", "outcome", "joules"]
    assert [row[0] for row in data["tests"]] == [t.nodeid for t in record.tests]
    assert data["tests"][0][2] == 412.5
    assert data["tests"][0][8] == "regression"
    assert data["counts"] == {
        "improvement": 1,
        "inconclusive": 1,
        "not_gated": 1,
        "regression": 2,
        "unchanged": 1,
    }


def test_benchmark_round_plots(sample_page: tuple[str, Page]) -> None:
    _, page = sample_page
    cards = [e for e in page.find_all("article") if e.attrs.get("class") == "bench"]
    assert len(cards) == 3
    int8 = next(c for c in cards if "int8" in descendants(c, "h3")[0].text_content())
    (svg,) = descendants(int8, "svg")
    dots = descendants(svg, "circle")
    assert len(dots) == 20  # ten candidate and ten interleaved reference rounds
    assert {d.attrs["class"] for d in dots} == {"dot cand", "dot ref"}
    assert descendants(dots[0], "title")[0].text_content().startswith("round 1: ")
    # The table links each benchmark to its card.
    links = [
        a.attrs["href"] for a in page.find_all("a") if a.attrs.get("href", "") != "#tests-section"
    ]
    assert sorted(links) == sorted(f"#{c.attrs['id']}" for c in cards)


def test_family_table_and_pareto_chart(sample_page: tuple[str, Page]) -> None:
    _, page = sample_page
    (family,) = [e for e in page.find_all("article") if e.attrs.get("class") == "family"]
    rows = descendants(descendants(family, "tbody")[0], "tr")
    cells = [[c.text_content() for c in row.children] for row in rows]
    assert cells[1][:6] == [
        "int8",
        "395 mJ/sample",
        "0.47x [0.44, 0.51]",
        "accuracy 99.5% (0.9074)",
        "◆ on frontier",
        "✓ pass",
    ]
    assert cells[2][5] == "✗ fail"
    assert "quantization=int4" in cells[2][6]
    (chart,) = [s for s in descendants(family, "svg") if "scatter" in s.attrs["class"]]
    labels = [t.text_content() for g in descendants(chart, "g") for t in descendants(g, "text")]
    assert labels == ["fp32", "int8", "int4-pruned"]
    assert [p for p in descendants(chart, "path") if p.attrs.get("class") == "frontier"]
    assert len([ln for ln in descendants(chart, "line") if ln.attrs.get("class") == "limit"]) == 2


def test_methodology_says_how_and_what_is_excluded(sample_page: tuple[str, Page]) -> None:
    _, page = sample_page
    text = page.by_id("methodology").text_content()
    assert "Idle power 114 W was measured over 2.00 s" in text
    assert "each round is its own window of about 2.00 s" in text
    assert "Power-supply conversion losses" in text
    assert "Cooling and data-centre overhead (no PUE applied)" in text
    assert "Embodied emissions of the hardware (not enabled)" in text
    assert "gpu:0 (gpu-board)" in text
    assert "CC BY 4.0" in text
    assert "Ember 2024, DEU, 342 g/kWh" in text


def test_methodology_lists_the_session_facts_field_by_field() -> None:
    record = sample_record()
    session = replace(
        record.session,
        totals=replace(record.session.totals, net_joules=3100.5),
        calibration=Calibration(start=[0.101, 0.102]),
    )
    page = Page(render_html(replace(record, session=session)))
    attribution, settings = (definitions(dl) for dl in descendants(page.by_id("methodology"), "dl"))
    assert attribution["licence"] == "CC BY 4.0"
    assert attribution["provenance"] == "342.06 g/kWh, DEU, Ember 2024 (lifecycle)"
    assert attribution["requested"] == "None"
    assert attribution["intensity used"] == "Ember 2024, DEU, 342 g/kWh"
    assert "hint" not in attribution  # no cleaner region is known for a country
    # Fields older results files left out while empty stay out: calibration.end here.
    assert settings == {
        "calibration.start": "[0.101, 0.102]",
        "totals.joules": "4210",
        "totals.net_joules": "3100.5",
        "totals.seconds": "40.2",
        "totals.tests": "6",
        "totals.watts": "104.7",
    }


def test_hostile_strings_render_as_text(hostile_page: tuple[str, Page]) -> None:
    source, page = hostile_page
    assert len(page.find_all("script")) == 2  # ours: the data block and the sorter
    assert page.find_all("img") == []
    assert page.find_all("iframe") == []
    assert page.find_all("i") == []
    assert "<script>alert" not in source
    assert "</script><script>" not in source
    shown = row_ids(page)
    for nodeid, text in zip(HOSTILE_IDS, shown, strict=True):
        if len(nodeid) > html_views.ID_DISPLAY_LIMIT:
            assert text == fmt.shorten(nodeid, html_views.ID_DISPLAY_LIMIT)
            assert "…" in text
        else:
            assert text == fmt.without_bidi(nodeid)
    assert "tests/test_xss.py::test_name[<script>alert(1)</script>]" in shown
    assert "tests/test_xss.py::test_unicode[Ünïcødé ✓ 能源 🔋 \\u202eevil]" in shown
    # The full, untouched ids travel in the JSON block and in the title of cut ids.
    data = json.loads(page.by_id("energy-data").text_content())
    assert [row[0] for row in data["tests"]] == HOSTILE_IDS
    long_row = [th for th in page.find_all("th") if th.attrs.get("title", "").endswith("x]")]
    assert long_row[0].attrs["title"] == HOSTILE_IDS[10]
    facts = page.find_all("dl", class_="facts")[0].text_content()
    assert "<script>alert('cpu')</script> | `x`" in facts
    assert "</script><b>gpu</b>" in facts
    assert "<img src=x> on evil<script>|`b`" in facts
    families = page.by_id("families").text_content()
    assert "<img src=x onerror=alert(3)>|fam" in families
    assert "<script>alert(4)</script>" in families
    assert "quantization=<i>q</i>" in families


def test_json_block_cannot_be_closed_by_a_test_id(hostile_page: tuple[str, Page]) -> None:
    source, _ = hostile_page
    block = source[source.index('<script type="application/json"') :]
    block = block[: block.index("</script>")]
    assert "<" not in block[1:]
    assert "\\u003c/script\\u003e" in block


def test_rendering_is_deterministic() -> None:
    record = sample_record()
    history = scale_history(record)
    assert render_html(record, history) == render_html(sample_record(), scale_history(record))
    # And independent of the dict order of the history mapping.
    reordered = dict(reversed(list(history.items())))
    assert render_html(record, reordered) == render_html(record, history)


def test_modelled_runs_say_so_prominently() -> None:
    page = Page(render_html(ungated_record("modelled")))
    banner = next(e for e in page.elements if e.attrs.get("class") == "banner warn")
    assert banner.text_content().startswith("These are estimates, not measurements.")
    badge = page.find_all("strong", class_="badge warn")[0]
    assert badge.text_content() == "Modelled"
    assert (
        page.find_all("h1")[0].text_content()
        == "– Energy not gated: 0 of 8 tests gated (no baseline)"
    )
    text = page.by_id("methodology").text_content()
    assert "Modelled figures cover this process's CPU time only" in text
    assert "No idle bracket was measured" in text


def test_passed_and_ungated_runs_omit_empty_sections() -> None:
    page = Page(render_html(passed_record()))
    assert page.find_all("h1")[0].text_content().startswith("✓ Energy check passed")
    ungated = Page(render_html(ungated_record()))
    ids = {e.attrs.get("id") for e in ungated.elements}
    assert "changes" not in ids
    assert "families" not in ids


def test_empty_run_renders() -> None:
    record = replace(sample_record(), tests=[], families=[], gate=None)
    page = Page(render_html(record))
    assert descendants(descendants(page.by_id("tests"), "tbody")[0], "tr") == []
    assert (
        page.find_all("h1")[0].text_content()
        == "– Energy not gated: 0 of 0 tests gated (no baseline)"
    )


def test_history_draws_a_sparkline_per_test() -> None:
    record = sample_record()
    history = scale_history(record)
    page = Page(render_html(record, history))
    table_sparks = list(descendants(page.by_id("tests"), "svg"))
    assert len(table_sparks) == len(history)
    title = descendants(table_sparks[0], "title")[0].text_content()
    assert title.startswith("20 runs, oldest first: ")
    assert title.endswith(" J")
    assert "History" in [th.text_content() for th in page.find_all("th", scope="col")]


def test_big_runs_are_capped_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_html, "MAX_TABLE_ROWS", 5)
    monkeypatch.setattr(html_views, "MAX_BENCHMARK_PLOTS", 1)
    record = scale_record(60, benchmark_every=10)
    page = Page(render_html(record))
    rows = descendants(descendants(page.by_id("tests"), "tbody")[0], "tr")
    assert len(rows) == 5
    notes = [e.text_content() for e in page.find_all("p", class_="note")]
    assert "55 more tests are not shown here" in " ".join(notes)
    assert "5 more benchmarks have no round plot here" in " ".join(notes)
    cards = [e for e in page.find_all("article") if e.attrs.get("class") == "bench"]
    assert len(cards) == 1


def test_templates_are_autoescaped_and_never_marked_safe() -> None:
    env = report_html._environment()
    assert env.autoescape is True
    for path in template_dir().glob("*.j2"):
        text = path.read_text(encoding="utf-8")
        assert "|safe" not in text.replace(" ", ""), path
        assert "autoescape false" not in text, path
        assert "Markup" not in text, path


def test_template_dir_prefers_the_installed_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert template_dir() == Path(pytest_energy.__file__).parent.parent / "templates"
    package = tmp_path / "site-packages" / "pytest_energy"
    (package / "templates").mkdir(parents=True)
    monkeypatch.setattr(pytest_energy, "__file__", str(package / "__init__.py"))
    assert template_dir() == package / "templates"


def test_nice_ticks() -> None:
    assert html_charts.nice_ticks(0.0, 1.12) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert html_charts.nice_ticks(0.956, 1.006) == [0.96, 0.97, 0.98, 0.99, 1.0]
    assert html_charts.nice_ticks(0.0, 9.0) == [0.0, 2.5, 5.0, 7.5]
    assert html_charts.nice_ticks(1.0, 1.0) == [1.0]


def test_sparkline_needs_two_finite_points() -> None:
    assert html_charts.sparkline([1.0]) is None
    assert html_charts.sparkline([1.0, float("nan")]) is None
    spark = html_charts.sparkline([1.0, 2.0, 3.0], "J")
    assert spark is not None
    assert spark.path == "M3 19L48 11L93 3"


def test_a_script_change_changes_the_csp_hash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("report.html.j2", "_charts.html.j2", "report.css"):
        (tmp_path / name).write_text((template_dir() / name).read_text(encoding="utf-8"))
    (tmp_path / "report.js").write_text("// changed\n", encoding="utf-8")
    monkeypatch.setattr(report_html, "template_dir", lambda: tmp_path)
    report_html._assets.cache_clear()
    report_html._environment.cache_clear()
    try:
        source = render_html(sample_record())
    finally:
        report_html._assets.cache_clear()
        report_html._environment.cache_clear()
    digest = base64.b64encode(hashlib.sha256(b"// changed\n").digest()).decode()
    (meta,) = Page(source).find_all("meta", **{"http-equiv": "Content-Security-Policy"})
    assert f"script-src 'sha256-{digest}'" in meta.attrs["content"]
    assert re.search(r"<script>// changed\n</script>", source)


def test_record_round_trips_through_json_before_rendering() -> None:
    record = sample_record()
    again = RunRecord.from_dict(json.loads(record.to_json()))
    assert render_html(again) == render_html(record)


def test_flags_explain_themselves(sample_page: tuple[str, Page]) -> None:
    _, page = sample_page
    flags = {
        e.text_content(): e.attrs["title"]
        for e in page.find_all("span", class_="flag")
        if e.parent is not None and e.parent.tag == "td"
    }
    assert flags["gpu_shared"] == "another process used the GPU during the window"
    assert flags["over budget"] == "max_joules 18.3 > 15 (fail)"
    assert flags["error"] == "not measured: meter nvml stopped answering"
    assert "max_watts" not in " ".join(flags.values())  # a budget that held is not a flag
