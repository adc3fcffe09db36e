"""``pytest-energy ab``: base and head measured interleaved in one job, judged on paired ratios.

Two small git repositories under tmp and the replay meter: every round reads a
known energy, so the ratios head/base are exact.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import pytest
from ab_repos import (
    bench,
    bench_file,
    constant_trace,
    cyclic_trace,
    make_repo,
    private_tmp,
    run_ab,
    worktrees,
)

from pytest_energy.ab import comparison
from pytest_energy.ab.comparison import Plan
from pytest_energy.ab.controller import TestRun
from pytest_energy.ab.judge import (
    SPREAD_LEVEL,
    Pair,
    PairedTest,
    decide,
    differences,
    judged_spreads,
    own_spread,
    round_noise,
    screen,
)
from pytest_energy.gate.decision import choose_spreads
from pytest_energy.gate.rule import Spread
from pytest_energy.record import load
from pytest_energy.stats import LogRatio, paired_log_ratio

BASE = {"tests/test_bench.py": bench_file(bench("test_hot", 10), bench("test_same", 10))}
#: The head runs test_hot with 8 calls per round: the same 10 J per round is then
#: 25 % more energy per call, exactly.
HEAD = {"tests/test_bench.py": bench_file(bench("test_hot", 8), bench("test_same", 10))}


def load_json(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_a_planted_regression_is_found_with_the_exact_ratio(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = private_tmp(pytester, monkeypatch)
    repo = make_repo(pytester.path, BASE, HEAD)
    out = pytester.path / "ab.json"
    result = run_ab(
        pytester, repo, constant_trace(pytester.path), "--base", "base", "--json", str(out)
    )
    assert result.ret == 1, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(
        [
            "*head * vs base commit *, measured in the same job, interleaved*",
            "*No start/end drift check is needed*",
            "*regression*1.25x*5*tests/test_bench.py::test_hot*",
            "*unchanged*1.00x*tests/test_bench.py::test_same*",
            "Energy check failed: 1 regression*",
        ]
    )
    record = load(out)
    assert record.gate is not None
    assert record.gate.mode == "ab"
    assert record.ab is not None
    assert record.ab.base_commit.startswith(result.stdout.str().split("base commit ")[1][:7])
    verdicts = {t.nodeid.split("::")[-1]: t.verdict for t in record.tests}
    hot, same = verdicts["test_hot"], verdicts["test_same"]
    assert hot is not None
    assert same is not None
    assert hot.status == "regression"
    assert hot.kind == "ab"
    assert hot.ratio == pytest.approx(1.25, rel=1e-12)
    assert same.status == "unchanged"
    assert same.ratio == pytest.approx(1.0, rel=1e-12)
    # Both sides' rounds are in the file, per process pair: base 1.0 J/call, head 1.25.
    test = next(t for t in record.tests if t.nodeid.endswith("test_hot"))
    assert test.benchmark is not None
    base = [r for r in test.benchmark.rounds if r.role == "base"]
    head = [r for r in test.benchmark.rounds if r.role == "candidate"]
    assert {r.process for r in base} == {r.process for r in head} == {0, 1, 2, 3, 4}
    assert {r.per_unit(1.0) for r in base} == {1.0}
    assert {r.per_unit(1.0) for r in head} == {1.25}
    # The one-second budget had no room for fresh pairs: the screen's note says so.
    assert test.ab is not None
    assert (
        test.ab.screen == "+25.0% on the screen: flagged, but no time budget left for fresh pairs"
    )
    assert any("decided on the screen's pairs alone" in n for n in record.session.notices)
    # Nothing left behind: no worktree, no temporary folder.
    assert len(worktrees(repo)) == 1
    assert list(tmp.iterdir()) == []


def test_a_flagged_test_is_measured_again_in_fresh_pairs_and_decided_on_all(
    pytester: pytest.Pytester,
) -> None:
    repo = make_repo(pytester.path, BASE, HEAD)
    out = pytester.path / "ab.json"
    result = run_ab(
        pytester,
        repo,
        constant_trace(pytester.path),
        "--base",
        "base",
        "--budget",
        "600",
        "--processes",
        "2",
        "--json",
        str(out),
    )
    assert result.ret == 1, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*1 test(s) flagged by the screen; measuring 1 of them again*"])
    tests = {t.nodeid.split("::")[-1]: t for t in load(out).tests}
    hot, same = tests["test_hot"], tests["test_same"]
    assert hot.benchmark is not None
    assert same.benchmark is not None
    assert hot.ab is not None
    assert same.ab is not None
    # The screen's two pairs and two fresh ones decide; the unflagged test keeps its two.
    assert {r.process for r in hot.benchmark.rounds} == {0, 1, 2, 3}
    assert {r.process for r in same.benchmark.rounds} == {0, 1}
    assert (hot.ab.pairs, same.ab.pairs) == (4, 2)
    assert hot.verdict is not None
    assert hot.verdict.status == "regression"
    assert hot.verdict.ratio == pytest.approx(1.25, rel=1e-12)
    assert "2 + 2 process pairs" in hot.verdict.reason
    assert "measured again in fresh process pairs" in hot.ab.screen


def test_when_the_budget_cannot_confirm_every_flagged_test_the_strongest_go_first() -> None:
    def run(name: str, head: float, least_s: float) -> TestRun:
        run = TestRun(name, least_s=least_s, screen_slots=[0, 1, 2])
        for slot, wobble in enumerate((1.0, 1.01, 0.99)):
            run.base.values[slot] = [10.0, 10.0 * wobble]
            run.head.values[slot] = [head, head * wobble]
        return run

    runs = [run("same", 10.0, 4.0), run("slight", 10.4, 4.0), run("clear", 13.0, 4.0)]
    plan = Plan(processes=3, max_processes=6, budget_s=60.0, threshold=0.05, margin=0.01)
    flagged = comparison._flag(runs, plan)
    assert [r.nodeid for r in flagged] == ["clear", "slight"]
    # Room for the fresh pairs' start (2 s) and one test (4 s), not two.
    fitting = comparison._fitting(flagged, startup_s=2.0, end=time.monotonic() + 9.0)
    assert [r.nodeid for r in fitting] == ["clear"]
    assert comparison._fitting(flagged, startup_s=2.0, end=time.monotonic() + 1.0) == []


def test_the_ratio_is_the_paired_ratio_of_the_rounds_in_the_file(
    pytester: pytest.Pytester,
) -> None:
    repo = make_repo(pytester.path, BASE, HEAD)
    out = pytester.path / "ab.json"
    trace = cyclic_trace(pytester.path, [10.0, 10.4, 9.7, 10.9, 10.1])
    result = run_ab(pytester, repo, trace, "--base", "base", "--json", str(out))
    assert result.ret in (0, 1), result.stderr.str()
    record = load(out)
    for test in record.tests:
        assert test.benchmark is not None
        assert test.verdict is not None
        pairs = []
        for process in sorted({r.process for r in test.benchmark.rounds}):
            rounds = [r for r in test.benchmark.rounds if r.process == process]
            pairs.append(
                (
                    [r.per_unit(1.0) for r in rounds if r.role == "base"],
                    [r.per_unit(1.0) for r in rounds if r.role == "candidate"],
                )
            )
        logs = differences(pairs)
        assert test.verdict.ratio == pytest.approx(math.exp(statistics.fmean(logs)), rel=1e-9)


def test_head_as_a_path_new_and_removed_tests_and_selection(pytester: pytest.Pytester) -> None:
    head = {
        "tests/test_bench.py": bench_file(bench("test_hot", 10), bench("test_new", 10)),
        "tests/test_other.py": bench_file(bench("test_skipped_by_k", 10)),
    }
    repo = make_repo(pytester.path, BASE, head)
    out = pytester.path / "ab.json"
    result = run_ab(
        pytester,
        repo,
        constant_trace(pytester.path),
        "--base",
        "base",
        "--head",
        str(repo),
        "-k",
        "not skipped_by_k",
        "--json",
        str(out),
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(
        [
            "*new (only in the head tree, not gated): tests/test_bench.py::test_new",
            "*removed (only in the base tree, not gated): tests/test_bench.py::test_same",
        ]
    )
    record = load(out)
    statuses = {t.nodeid.split("::")[-1]: (t.ab.status if t.ab else None) for t in record.tests}
    assert statuses == {"test_hot": "compared", "test_new": "new", "test_same": "removed"}
    assert "test_skipped_by_k" not in result.stdout.str()


def test_the_reports_show_the_ab_comparison(pytester: pytest.Pytester) -> None:
    repo = make_repo(pytester.path, BASE, HEAD)
    out = pytester.path / "ab.json"
    markdown = pytester.path / "summary.md"
    html = pytester.path / "report.html"
    result = run_ab(
        pytester,
        repo,
        constant_trace(pytester.path),
        "--base",
        "base",
        "--json",
        str(out),
        "--markdown",
        str(markdown),
        "--html",
        str(html),
    )
    assert result.ret == 1
    line = "measured in the same job, interleaved"
    assert line in markdown.read_text(encoding="utf-8")
    assert line in html.read_text(encoding="utf-8")
    assert "| Test | Base | Head |" in markdown.read_text(encoding="utf-8")
    for command in ("comment-body", "summary", "annotate"):
        shown = pytester.run(__import__("sys").executable, "-m", "pytest_energy", command, str(out))
        assert shown.ret == 0
        assert line in shown.stdout.str(), command
    annotated = pytester.run(
        __import__("sys").executable, "-m", "pytest_energy", "annotate", str(out)
    )
    annotated.stdout.fnmatch_lines(["::error *test_hot: energy +25.0%25: 1.25x*of the base*"])


# -- the statistics, on numbers ------------------------------------------------------------


def test_paired_ratio_per_test_is_the_paired_t_of_the_process_pairs() -> None:
    pairs = [([10.0, 10.2], [11.2, 11.0]), ([9.6, 9.7], [10.9, 10.5]), ([10.4, 10.3], [11.3, 11.5])]
    other = [([5.0, 5.1], [5.0, 5.05]), ([5.2, 5.1], [5.1, 5.2]), ([4.9, 5.0], [5.0, 4.9])]
    verdicts, _ = decide([PairedTest("a", pairs), PairedTest("b", other)])
    means = [
        (math.exp(statistics.fmean(map(math.log, b))), math.exp(statistics.fmean(map(math.log, h))))
        for b, h in pairs
    ]
    exact = paired_log_ratio([b for b, _ in means], [h for _, h in means])
    assert verdicts[0].ratio == pytest.approx(exact.ratio, rel=1e-12)
    # Judged by the spread between pairs: the process, not the round, is the unit.
    assert "3 process pairs" in verdicts[0].reason


def pairs_from(differences_pct: list[float], spread: float = 1.01) -> list[Pair]:
    """Pairs of two rounds a side (``spread`` apart) whose log differences head - base
    are ``differences_pct`` percent."""
    return [
        ([10.0, 10.0 * spread], [10.0 * math.exp(d / 100), 10.0 * spread * math.exp(d / 100)])
        for d in differences_pct
    ]


def noisy_pairs(differences_pct: list[float]) -> list[Pair]:
    """Like :func:`pairs_from`, with rounds 30 % apart inside every process."""
    return [
        ([10.0 * 1.15, 10.0 / 1.15], [10.0 / 1.15 * math.exp(d / 100), 11.5 * math.exp(d / 100)])
        for d in differences_pct
    ]


def exact_interval(pairs: list[Pair]) -> tuple[float, float]:
    """The paired t interval of the pairs' geometric means: a test's own spread."""
    means = [
        (math.exp(statistics.fmean(map(math.log, b))), math.exp(statistics.fmean(map(math.log, h))))
        for b, h in pairs
    ]
    return paired_log_ratio([b for b, _ in means], [h for _, h in means]).interval(0.95)


#: Nine quiet tests whose pairs disagree by about 1 %: the run's pooled spread.
QUIET = [PairedTest(f"q{i}", pairs_from([1.0, -0.5, 0.0, -1.0])) for i in range(9)]


def test_pooling_across_the_runs_tests_narrows_the_interval() -> None:
    """A test is judged by the spread between pairs pooled over the run's tests (30 degrees
    of freedom), not by its own 3: the interval is exactly the pooled one, and narrower."""
    mine = PairedTest("mine", pairs_from([21.0, 19.5, 20.0, 19.0]))
    alone, _ = decide([mine])
    pooled, _ = decide([mine, *QUIET])
    spread = Spread.pooled([own_spread(t.screen) for t in [mine, *QUIET]])
    estimate = statistics.fmean(differences(mine.screen))
    expected = LogRatio(estimate, math.sqrt(spread.variance / 4), spread.df).interval(0.95)
    assert spread.df == 30
    assert (pooled[0].ci_low, pooled[0].ci_high) == pytest.approx(expected)
    assert (alone[0].ci_low, alone[0].ci_high) == pytest.approx(exact_interval(mine.screen))
    widths = [(v[0].ci_high or math.nan) - (v[0].ci_low or math.nan) for v in (pooled, alone)]
    narrowed = widths[0] / widths[1]
    assert narrowed < 0.7
    assert "judged by its own spread" not in pooled[0].reason


def test_a_test_whose_pairs_disagree_more_is_judged_by_its_own_spread() -> None:
    """An outlier-variance test is not judged by the pooled spread alone: its pairs
    disagree by 10 % where the others' disagree by 1 %, so the paired t of its own 4
    pairs decides: inconclusive, where the same estimate on the pooled spread fails."""
    wild = PairedTest("wild", pairs_from([30.0, 10.0, 22.0, 8.0]))
    verdicts, _ = decide([wild, *QUIET])
    assert (verdicts[0].ci_low, verdicts[0].ci_high) == pytest.approx(exact_interval(wild.screen))
    assert verdicts[0].status == "inconclusive"
    assert "its own spread between pairs (larger than the other tests')" in verdicts[0].reason
    tight = PairedTest("tight", pairs_from([20.0, 19.0, 21.0, 18.0]))
    assert decide([tight, *QUIET])[0][0].status == "regression"


def test_a_spread_only_somewhat_larger_is_pooled_at_the_ab_level() -> None:
    """The A/B F test of a test's spread between pairs is at 1 % (heavy-tailed round
    noise makes F tests fire more often than their level), where the stored-baseline
    gate's is at 5 %: a spread 3.5 times the others' variance (p about 0.03) is pooled."""
    somewhat = PairedTest("somewhat", pairs_from([20.0, 22.2, 18.4, 21.0]))
    tests = [somewhat, *QUIET]
    own = [own_spread(t.screen) for t in tests]
    noise = [round_noise(t.screen) for t in tests]
    assert choose_spreads(own)[0][1] == "own"  # the stored-baseline gate's level
    assert judged_spreads(own, noise)[0] == (Spread.pooled(own), "pooled")
    verdicts, _ = decide(tests)
    assert verdicts[0].status == "regression"
    assert "judged by its own spread" not in verdicts[0].reason


def test_a_test_whose_rounds_are_noisier_is_judged_by_its_own_spread() -> None:
    """Rounds 30 % apart inside each process where the other tests' repeat within 1 %:
    by chance its four pairs agree about as well as the others', so the F test of the
    pairs' spread (3 degrees of freedom) pools it; the F test of its round noise (8)
    does not, and its own spread decides: inconclusive, not a regression."""
    noisy = PairedTest("noisy", noisy_pairs([4.5, 6.7, 4.7, 6.1]))
    tests = [noisy, *QUIET]
    own = [own_spread(t.screen) for t in tests]
    noise = [round_noise(t.screen) for t in tests]
    assert noise[0].df == 8
    assert choose_spreads(own, level=SPREAD_LEVEL)[0][1] == "pooled"  # the pairs' F test alone
    assert judged_spreads(own, noise)[0] == (own[0], "own rounds")
    assert [source for _, source in judged_spreads(own, noise)[1:]] == ["pooled"] * 9
    verdicts, _ = decide(tests)
    assert (verdicts[0].ci_low, verdicts[0].ci_high) == pytest.approx(exact_interval(noisy.screen))
    assert verdicts[0].status == "inconclusive"
    assert "its rounds are noisier than the other tests'" in verdicts[0].reason
    assert all("noisier" not in v.reason for v in verdicts[1:])


def test_a_single_pair_with_noisy_rounds_is_never_certain() -> None:
    """One pair has no spread between pairs of its own; judged by it the interval is
    unknown: inconclusive, never a regression on the other tests' quieter spread."""
    one = PairedTest("one", noisy_pairs([10.0])[:1])
    verdicts, _ = decide([one, *QUIET])
    assert verdicts[0].status == "inconclusive"
    assert verdicts[0].ci_low is None
    assert "its rounds are noisier" in verdicts[0].reason


def test_a_per_process_offset_is_not_shrunk_by_more_rounds() -> None:
    """Pairs disagree by a few percent (per-process offsets): many identical rounds inside
    each pair must not make the interval narrow enough to call +2 % certain."""
    offsets = [1.00, 1.045, 0.985]
    pairs = [([10.0] * 20, [10.0 * 1.02 * o] * 20) for o in offsets]
    verdicts, _ = decide([PairedTest("t", pairs)], threshold=0.01, margin=0.005)
    assert verdicts[0].status == "inconclusive"
    assert verdicts[0].ci_low is not None
    assert verdicts[0].ci_low < 1.0


def test_holm_across_tests_keeps_a_lone_weak_signal_from_failing() -> None:
    noise = [
        ([10.0, 10.1], [10.05, 10.0]),
        ([9.9, 10.0], [10.0, 9.95]),
        ([10.1, 10.0], [10.0, 10.1]),
    ]
    weak = [
        ([10.0, 10.1], [10.62, 10.6]),
        ([9.9, 10.0], [10.3, 10.5]),
        ([10.1, 10.0], [10.8, 10.5]),
    ]
    alone, _ = decide([PairedTest("weak", weak)], alpha=0.05)
    many, _ = decide(
        [PairedTest("weak", weak)] + [PairedTest(f"n{i}", noise) for i in range(40)], alpha=0.05
    )
    assert alone[0].status == "regression"
    assert many[0].status != "regression"


def test_the_screen_flags_what_looks_high() -> None:
    same = [([10.0], [10.0]), ([10.0], [10.05]), ([10.0], [9.98])]
    high = [([10.0], [11.0]), ([10.0], [11.1]), ([10.0], [10.9])]
    flagged = [r.flagged for r in screen([PairedTest("s", same), PairedTest("h", high)])]
    assert flagged == [False, True]
    # A flagged test is decided on the screen's pairs and its fresh pairs together.
    fresh = [([10.0], [10.02]), ([10.0], [9.99]), ([10.0], [10.01])]
    verdicts, _ = decide([PairedTest("h", high, fresh), PairedTest("s", same)])
    both = differences(high + fresh)
    assert verdicts[0].ratio == pytest.approx(math.exp(statistics.fmean(both)))
    assert "3 + 3 process pairs" in verdicts[0].reason
    assert "fresh ones after it flagged the test" in verdicts[0].reason


def test_a_flagged_test_with_large_process_offsets_is_caught_on_all_its_pairs() -> None:
    # Rounds agree within a process, but whole processes of the same tree sit 25 %
    # apart (measured on a real function, benchmarks/ab_power.py): five pairs alone
    # leave +25 % inconclusive, the screen's five and five fresh ones decide it.
    def pair(base: float, head: float) -> Pair:
        return ([base, base * 1.004], [head, head * 0.996])

    screen_pairs = [
        pair(9.0, 11.5),
        pair(9.5, 14.2),
        pair(9.2, 14.7),
        pair(8.8, 11.4),
        pair(9.3, 11.3),
    ]
    fresh = [
        pair(9.1, 11.6),
        pair(11.3, 11.2 * 1.25),
        pair(9.0, 11.2),
        pair(9.4, 14.0),
        pair(9.2, 11.5),
    ]
    quiet = [pair(10.0, 10.0 * f) for f in (1.01, 0.99, 1.0, 1.02, 0.98)]
    others = [PairedTest(f"q{i}", quiet) for i in range(9)]
    alone, _ = decide([PairedTest("hot", fresh), *others])
    together, _ = decide([PairedTest("hot", screen_pairs, fresh), *others])
    assert alone[0].status == "inconclusive"
    assert together[0].status == "regression"


def test_the_suite_total_catches_many_small_regressions() -> None:
    tests = [
        PairedTest(f"t{i}", [([10.0], [10.4]), ([10.2], [10.55]), ([9.9], [10.35])])
        for i in range(20)
    ]
    _, suite = decide(tests)
    assert suite.status in ("regression", "inconclusive")
    assert suite.tests == 20
    assert suite.ratio == pytest.approx(1.04, abs=0.01)


def test_plain_tests_are_compared_only_when_marked(pytester: pytest.Pytester) -> None:
    plain = (
        "import pytest\n\nfrom demo import work\n\n\n"
        "@pytest.mark.energy\ndef test_marked():\n    assert work(10) == 45\n\n\n"
        "def test_unmarked():\n    assert work(10) == 45\n"
    )
    files = {**BASE, "tests/test_plain.py": plain}
    repo = make_repo(pytester.path, files, {})
    out = pytester.path / "ab.json"
    result = run_ab(
        pytester, repo, constant_trace(pytester.path), "--base", "base", "--json", str(out)
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    record = load(out)
    compared = {t.nodeid.split("::")[-1]: t for t in record.tests}
    assert "test_unmarked" not in compared
    marked = compared["test_marked"]
    assert marked.benchmark is not None
    assert marked.benchmark.unit == "test"
    assert marked.verdict is not None
    assert marked.verdict.status == "unchanged"
