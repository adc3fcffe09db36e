"""How long a 5,000-test results file takes to render, and how big the outputs are.

Targets: the HTML report in under 2 s and under 5 MB; the job summary under
1 MiB and the PR comment under 65,536 characters (those two are cut to fit,
so this only confirms the cut). Run from the repository root::

    python benchmarks/report_scale.py [--tests 5000] [--out DIR]

The time is that of ``pytest-energy report``: read the file with
``record.load``, then render (history sparklines drawn for every test; making
the fake history is not timed). It is the best of three runs, in wall-clock and
in CPU seconds; a busy machine inflates the wall clock, so both are printed and
the wall clock decides. Prints one line per output and PASS or FAIL; exits 1
on a FAIL.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the record factory shared with the tests

from records import scale_history, scale_record  # noqa: E402

from pytest_energy.record import load  # noqa: E402
from pytest_energy.report.annotations import github_annotations  # noqa: E402
from pytest_energy.report.export import csv_text, github_action_benchmark  # noqa: E402
from pytest_energy.report.html import render_html  # noqa: E402
from pytest_energy.report.markdown import comment_body, summary_markdown  # noqa: E402

HTML_SECONDS = 2.0
HTML_BYTES = 5_000_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=None, help="keep the outputs here")
    args = parser.parse_args()
    if args.out is None:
        with tempfile.TemporaryDirectory(prefix="energy-report-scale-") as scratch:
            return measure(args.tests, Path(scratch))
    args.out.mkdir(parents=True, exist_ok=True)
    status = measure(args.tests, args.out)
    print(f"outputs in {args.out}")
    return status


def measure(tests: int, out: Path) -> int:

    results = out / "results.json"
    results.write_text(scale_record(tests).to_json(), encoding="utf-8")
    print(f"results file: {tests} tests, {results.stat().st_size / 1e6:.1f} MB")

    history = scale_history(load(results))
    render_html(load(results))  # warm up: Jinja compiles the templates once per process
    runs = []
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        record = load(results)
        loaded = time.perf_counter()
        html = render_html(record, history=history)
        runs.append((time.perf_counter() - wall, time.process_time() - cpu, loaded - wall))
    seconds, cpu_seconds, load_seconds = min(runs)
    size = len(html.encode("utf-8"))
    (out / "report.html").write_text(html, encoding="utf-8")
    html_ok = seconds < HTML_SECONDS and size < HTML_BYTES
    print(
        f"HTML report: {seconds:.2f} s wall ({load_seconds:.2f} s of it record.load), "
        f"{cpu_seconds:.2f} s CPU (limit {HTML_SECONDS:g} s); {size / 1e6:.2f} MB "
        f"(limit {HTML_BYTES / 1e6:g} MB): {'PASS' if html_ok else 'FAIL'}"
    )

    start = time.perf_counter()
    summary = summary_markdown(record)
    comment = comment_body(record)
    annotations = github_annotations(record)
    exports = [github_action_benchmark(record), csv_text(record)]
    text_seconds = time.perf_counter() - start
    summary_ok = len(summary.encode("utf-8")) < 1024 * 1024
    comment_ok = len(comment) < 65_536
    print(
        f"job summary: {len(summary.encode('utf-8')) / 1024:.0f} KiB (limit 1024 KiB): "
        f"{'PASS' if summary_ok else 'FAIL'}"
    )
    print(
        f"PR comment: {len(comment)} characters (limit 65536): {'PASS' if comment_ok else 'FAIL'}"
    )
    print(
        f"annotations: {len(annotations)} lines; exports: "
        f"{', '.join(f'{len(e) / 1e6:.2f} MB' for e in exports)}; "
        f"all text outputs in {text_seconds:.2f} s"
    )
    return 0 if html_ok and summary_ok and comment_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
