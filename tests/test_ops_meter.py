"""The ops meter: torch operations counted by kind and dtype, bytes moved, priced exactly.

Unit tests count small modules whose multiply-accumulates and bytes are known by hand;
the pytester tests run a small torch suite with ``--energy --energy-meter=ops`` as a user
would: identical joules in every run and under pytest-xdist, a pure-Python test shown as
uncounted, and 10 % more matmul work failing the gate in every run.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn.utils import prune  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from pytest_energy.measure.machine import fingerprint  # noqa: E402
from pytest_energy.measure.window import measurement_between  # noqa: E402
from pytest_energy.meters import MeterSet, parse_meter_spec  # noqa: E402
from pytest_energy.meters.ops import QUANTUM_J, OpsMeter  # noqa: E402
from pytest_energy.meters.ops_table import OpsTableError, load_table, parse_table  # noqa: E402

Counts = tuple[dict[tuple[str, str], int], dict[str, int]]
F32 = 4  # bytes per fp32 value


@pytest.fixture
def meter() -> Iterator[OpsMeter]:
    opened = OpsMeter()
    yield opened
    opened.close()


def counted(meter: OpsMeter, work: Callable[[], object]) -> Counts:
    """The operations and bytes ``work`` added to the meter's tally."""
    ops, moved = Counter(meter.tally.ops), Counter(meter.tally.bytes)
    work()
    return dict(Counter(meter.tally.ops) - ops), dict(Counter(meter.tally.bytes) - moved)


def inference(module: nn.Module, *inputs: Any) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return module(*inputs)

    return run


def linear_counts(rows: int, inputs: int, outputs: int) -> Counts:
    """A dense fp32 linear layer: one multiply-accumulate per weight per row, one bias add
    per output; weights and bias read from DRAM, input and output at SRAM cost."""
    macs = rows * inputs * outputs
    return (
        {("mult", "fp32"): macs, ("add", "fp32"): macs + rows * outputs},
        {
            "dram": (inputs * outputs + outputs) * F32,
            "sram": (rows * inputs + rows * outputs) * F32,
        },
    )


@contextlib.contextmanager
def quiet_quantization() -> Iterator[None]:
    """torch.ao.quantization is deprecated, and warns about qint8 tensors (pytorch#184982)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def quantize(module: nn.Module) -> nn.Module:
    with quiet_quantization():
        return torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)


# -- counting known modules --------------------------------------------------------------


def test_linear_is_one_mac_per_weight_per_row_in_every_autograd_mode(meter: OpsMeter) -> None:
    layer, x = nn.Linear(64, 32), torch.randn(8, 64)
    expected = linear_counts(8, 64, 32)
    assert counted(meter, inference(layer, x)) == expected
    with torch.no_grad():
        assert counted(meter, lambda: layer(x)) == expected
    # With autograd on, torch decomposes linear before the mode sees it (t + addmm).
    assert counted(meter, lambda: layer(x)) == expected


def test_a_batch_of_three_dimensional_input_counts_every_row(meter: OpsMeter) -> None:
    layer, x = nn.Linear(16, 4), torch.randn(2, 5, 16)
    assert counted(meter, inference(layer, x)) == linear_counts(10, 16, 4)


def test_a_view_of_a_weight_is_read_as_a_weight(meter: OpsMeter) -> None:
    layer, x = nn.Linear(16, 4, bias=False), torch.randn(3, 16)

    def einsum() -> object:
        # einsum permutes the weight inside its decomposition, below autograd, where
        # inference mode records no _base: the meter marks the view itself.
        with torch.inference_mode():
            return torch.einsum("ij,kj->ik", x, layer.weight)

    assert counted(meter, einsum)[1] == {
        "dram": 16 * 4 * F32,
        "sram": (3 * 16 + 3 * 4) * F32,
    }


def test_convolution_is_one_filter_per_output_element(meter: OpsMeter) -> None:
    conv, x = nn.Conv2d(3, 8, 3), torch.randn(2, 3, 10, 10)
    outputs = 2 * 8 * 8 * 8
    macs = outputs * 3 * 3 * 3
    weights = 8 * 3 * 3 * 3 + 8
    assert counted(meter, inference(conv, x)) == (
        {("mult", "fp32"): macs, ("add", "fp32"): macs + outputs},
        {"dram": weights * F32, "sram": (x.numel() + outputs) * F32},
    )


def test_dynamic_int8_linear_counts_int8_products_and_the_quantization(meter: OpsMeter) -> None:
    model, x = quantize(nn.Sequential(nn.Linear(64, 32))), torch.randn(8, 64)
    macs = 8 * 64 * 32
    ops, moved = counted(meter, inference(model, x))
    assert ops == {
        # int8 x int8 products accumulated in int32 (FBGEMM)
        ("mult", "int8"): macs,
        ("add", "int32"): macs,
        # the input's range (2 compares) and rounding, then scale; each output rescaled
        # and biased
        ("add", "fp32"): 3 * x.numel() + 8 * 32,
        ("mult", "fp32"): x.numel() + 8 * 32,
    }
    # one byte per int8 weight and the fp32 bias from DRAM; the int8 copy of the
    # input is written and read again
    assert moved == {"dram": 64 * 32 + 32 * F32, "sram": (x.numel() + 8 * 32) * F32 + 2 * x.numel()}


def test_static_int8_convolution_counts_int8_products_from_its_packed_weights(
    meter: OpsMeter,
) -> None:
    with quiet_quantization():
        conv = torch.ao.nn.quantized.Conv2d(3, 8, 3)
        x = torch.quantize_per_tensor(torch.randn(2, 3, 10, 10), 0.1, 0, torch.quint8)
        got = counted(meter, inference(conv, x))
    outputs = 2 * 8 * 8 * 8
    macs = outputs * 3 * 3 * 3
    assert got == (
        {
            ("mult", "int8"): macs,
            ("add", "int32"): macs,
            ("mult", "fp32"): outputs,  # requantize each output
            ("add", "fp32"): outputs,
        },
        # int8 weights and the fp32 bias from DRAM; uint8 input and output at SRAM cost
        {"dram": 8 * 3 * 3 * 3 + 8 * F32, "sram": x.numel() + outputs},
    )


def test_int8_costs_less_than_fp32_for_the_same_layer() -> None:
    model, x = nn.Sequential(nn.Linear(256, 256)), torch.randn(64, 256)
    fp32, int8 = window_joules(inference(model, x)), window_joules(inference(quantize(model), x))
    assert 0 < int8 < 0.3 * fp32


def test_masks_only_pruning_still_multiplies_the_zeros(meter: OpsMeter) -> None:
    x = torch.randn(8, 64)
    masked = nn.Linear(64, 32)
    prune.l1_unstructured(masked, "weight", amount=0.5)
    # While the mask is a forward hook, each call also multiplies weight by mask.
    ops, _ = counted(meter, inference(masked, x))
    dense_ops, dense_bytes = linear_counts(8, 64, 32)
    assert ops == {**dense_ops, ("mult", "fp32"): dense_ops[("mult", "fp32")] + 64 * 32}
    prune.remove(masked, "weight")
    assert float((masked.weight == 0).float().mean()) == 0.5
    assert counted(meter, inference(masked, x)) == (dense_ops, dense_bytes)


def test_attention_counts_both_products_and_the_softmax(meter: OpsMeter) -> None:
    batch, heads, tokens, dim = 2, 3, 5, 8
    q, k, v = (torch.randn(batch, heads, tokens, dim) for _ in range(3))
    scores = batch * heads * tokens * tokens
    macs = 2 * scores * dim  # q @ k^T and softmax(scores) @ v
    ops, moved = counted(meter, lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
    assert ops[("mult", "fp32")] == macs
    assert ops[("add", "fp32")] == macs + scores
    assert "dram" not in moved  # no weights: activations only


def test_hand_written_attention_counts_the_same_products(meter: OpsMeter) -> None:
    q, k, v = (torch.randn(1, 2, 4, 8) for _ in range(3))
    ops, _ = counted(meter, lambda: torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v)
    assert ops[("mult", "fp32")] == 2 * (1 * 2 * 4 * 4 * 8)


def test_a_sparse_operand_costs_its_stored_values_only(meter: OpsMeter) -> None:
    dense = torch.zeros(8, 8)
    dense[torch.arange(8), torch.arange(8)] = 1.0
    dense[0, 1] = dense[3, 5] = 2.0  # 10 stored values
    sparse, right = dense.to_sparse(), torch.randn(8, 4)
    ops, _ = counted(meter, lambda: torch.sparse.mm(sparse, right))
    assert ops[("mult", "fp32")] == 10 * 4
    ops, _ = counted(meter, lambda: sparse @ right)
    assert ops[("mult", "fp32")] == 10 * 4


def test_bf16_products_accumulate_in_fp32(meter: OpsMeter) -> None:
    layer = nn.Linear(32, 16, bias=False).to(torch.bfloat16)
    ops, moved = counted(meter, inference(layer, torch.randn(4, 32, dtype=torch.bfloat16)))
    assert ops == {("mult", "bf16"): 4 * 32 * 16, ("add", "fp32"): 4 * 32 * 16}
    assert moved["dram"] == 32 * 16 * 2


def test_views_and_allocations_cost_nothing_and_factories_only_write(meter: OpsMeter) -> None:
    x = torch.randn(8, 16)
    assert counted(meter, lambda: (x.t(), x.view(16, 8), x[2:4], torch.empty(1000))) == ({}, {})
    assert counted(meter, lambda: torch.zeros(100)) == ({}, {"sram": 100 * F32})
    assert counted(meter, x.relu) == ({("add", "fp32"): 128}, {"sram": 2 * 128 * F32})


def test_fp64_work_is_tallied_as_unpriced_and_costs_nothing(meter: OpsMeter) -> None:
    layer, x = nn.Linear(8, 4).double(), torch.randn(2, 8, dtype=torch.float64)
    assert counted(meter, inference(layer, x))[0] == {}
    assert meter.tally.unpriced[("mult", "float64")] == 2 * 8 * 4


# -- joules, windows and the meter ------------------------------------------------------------


def window_joules(work: Callable[[], object], before: Callable[[], object] = lambda: None) -> float:
    """Total joules of one window around ``work``, in a meter that first ran ``before``."""
    opened = OpsMeter()
    try:
        before()
        start = opened.read()
        work()
        stop = opened.read()
    finally:
        opened.close()
    return sum(stop.joules.values()) - sum(start.joules.values())


def test_joules_are_the_table_prices_times_the_counts(meter: OpsMeter) -> None:
    layer, x = nn.Linear(64, 32), torch.randn(8, 64)
    start = meter.read()
    (ops, moved) = counted(meter, inference(layer, x))
    stop = meter.read()
    table = load_table()
    femtojoules = {
        "ops-compute": sum(n * table.op_fj[key] for key, n in ops.items()),
        "ops-memory": sum(n * table.byte_fj[level] for level, n in moved.items()),
    }
    for domain, fj in femtojoules.items():
        assert stop.joules[domain] - start.joules[domain] == pytest.approx(
            fj * 1e-15, abs=QUANTUM_J
        )


def test_the_same_work_gives_the_same_joules_bit_for_bit_after_any_other_work() -> None:
    layer, x = nn.Linear(128, 128), torch.randn(32, 128)
    big = nn.Linear(512, 512)
    alone = window_joules(inference(layer, x))
    after_other_work = window_joules(
        inference(layer, x), before=lambda: [big(torch.randn(64, 512)) for _ in range(5)]
    )
    assert alone > 0
    assert after_other_work == alone  # exactly: no float rounding of the running total


def test_a_pure_python_window_is_flagged_uncounted_not_free(meter: OpsMeter) -> None:
    meters = MeterSet([meter])
    start = meters.read()
    sum(i * i for i in range(10_000))
    stop = meters.read()
    measurement = measurement_between(start, stop, meters)
    assert measurement.total_j == 0
    assert "uncounted" in measurement.flags
    torch.ones(4) + 1
    assert "uncounted" not in measurement_between(stop, meters.read(), meters).flags


def test_counting_changes_no_result_and_no_error(meter: OpsMeter) -> None:
    torch.manual_seed(0)
    layer, x = nn.Linear(16, 4), torch.randn(3, 16)
    meter.close()
    expected = layer(x)
    expected.sum().backward()
    grad = layer.weight.grad.clone()
    layer.zero_grad()
    again = OpsMeter()
    try:
        got = layer(x)
        got.sum().backward()
        assert torch.equal(got, expected)
        assert torch.equal(layer.weight.grad, grad)
        with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
            layer(torch.randn(3, 5))
        # A test's own dispatch mode still works inside the meter's.
        with FlopCounterMode(display=False) as flops:
            layer(x)
        assert flops.get_total_flops() == 2 * 3 * 16 * 4
    finally:
        again.close()


def test_torchscript_is_counted_and_other_threads_are_not(meter: OpsMeter) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script is deprecated
        layer = torch.jit.script(nn.Linear(16, 4))
    x = torch.randn(3, 16)
    assert counted(meter, inference(layer, x))[0][("mult", "fp32")] == 3 * 16 * 4
    # The mode is the main thread's: work on another thread is not seen (docs/ops-meter.md).
    thread = threading.Thread(target=inference(layer, x))
    assert counted(meter, lambda: (thread.start(), thread.join())) == ({}, {})


def test_closing_the_meter_stops_counting(meter: OpsMeter) -> None:
    meter.close()
    before = Counter(meter.tally.ops)
    torch.randn(8, 8) @ torch.randn(8, 8)
    assert Counter(meter.tally.ops) == before


def test_the_meter_describes_its_table_node_and_source(meter: OpsMeter) -> None:
    info = meter.info
    assert info.method == "modelled"
    assert info.name == "ops"
    assert info.details["technology_node"] == "45 nm CMOS, 0.9 V"
    assert "ISSCC 2014" in str(info.details["table_source"])
    assert "10.1109/ISSCC.2014.6757323" in str(info.details["table_source"])
    assert info.details["hardware_class"] == "ops-horowitz45-v1"
    assert "Horowitz" in info.summary
    assert "modelled" in info.summary


def test_the_hardware_class_is_the_table_not_the_cpu(meter: OpsMeter) -> None:
    machine = fingerprint([meter.info], "modelled", "0", "8")
    assert machine.hardware_class == "ops-horowitz45-v1"
    assert machine.cpu_model  # the fingerprint still describes the machine


# -- the table --------------------------------------------------------------------------------


def test_the_bundled_table_holds_the_cited_figures() -> None:
    table = load_table()
    pj = {key: fj / 1000 for key, fj in table.op_fj.items()}
    assert pj[("mult", "fp32")] == 3.7
    assert pj[("add", "fp32")] == 0.9
    assert pj[("mult", "int8")] == 0.2
    assert pj[("add", "int8")] == 0.03
    assert pj[("mult", "int32")] == 3.1
    assert pj[("add", "int32")] == 0.1
    assert pj[("mult", "fp16")] == 1.1
    assert pj[("add", "fp16")] == 0.4
    # per byte: 5 pJ and 640 pJ per 32-bit access
    assert table.byte_fj == {"sram": 1250, "dram": 160_000}


def table_document(**changes: Any) -> dict[str, Any]:
    from importlib import resources

    text = resources.files("pytest_energy").joinpath("data", "ops-energy-45nm.json").read_text()
    document: dict[str, Any] = json.loads(text, parse_float=Decimal)
    document.update(changes)
    return document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pytest_energy_ops_table": 2}, "not an ops energy table"),
        ({"operations": []}, "no price for"),
        ({"memory": []}, "needs exactly the levels"),
        ({"version": ""}, "'version' must be a non-empty string"),
    ],
)
def test_a_malformed_table_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(OpsTableError, match=message):
        parse_table(table_document(**change))


def test_a_price_that_is_not_whole_femtojoules_is_refused() -> None:
    document = table_document()
    document["operations"][0]["pj"] = Decimal("0.0305")
    with pytest.raises(OpsTableError, match=r"operations\[0\].*whole number of fJ"):
        parse_table(document)
    document["operations"][0]["pj"] = "0.03"
    with pytest.raises(OpsTableError, match="expected a number"):
        parse_table(document)


def test_every_figure_names_its_source_and_how_it_was_checked() -> None:
    document = table_document()
    for entry in [*document["operations"], *document["memory"]]:
        assert entry["source"]
        assert entry["checked"]
    assumed = [e for e in document["operations"] if e["checked"] == "assumption"]
    assert {e["dtype"] for e in assumed} == {"bf16"}


# -- the meter specification ------------------------------------------------------------------


def test_ops_stands_alone() -> None:
    assert parse_meter_spec("ops").names == ("ops",)
    for spec in ("ops,rapl", "model,ops", "ops,auto"):
        with pytest.raises(ValueError, match="'ops' stand alone"):
            parse_meter_spec(spec)


def test_the_quantum_keeps_readings_exact() -> None:
    assert QUANTUM_J == 2.0**-40
    total = (2**53 - 1) * QUANTUM_J
    assert total - QUANTUM_J == (2**53 - 2) * QUANTUM_J
    assert math.isfinite(total)


# -- a user's torch suite under --energy --energy-meter=ops -----------------------------------

#: A compute-bound matmul benchmark ({rows} rows through 64x64 weights) and a pure-Python one.
TORCH_SUITE = """
import torch

WEIGHTS = torch.ones(64, 64)
BATCH = torch.ones({rows}, 64)


def test_matmul(energy_benchmark):
    def infer():
        with torch.inference_mode():
            return BATCH @ WEIGHTS

    energy_benchmark(infer, units=1000, unit="row")


def test_pure_python(energy_benchmark):
    energy_benchmark(lambda: sum(i * i for i in range(1000)))
"""
OPS = ("--energy", "--energy-meter=ops", "--energy-json=results.json", "-W", "always")


def per_unit(data: dict[str, Any]) -> dict[str, list[float]]:
    """Each test's J per unit of work, one value per round."""
    values = {}
    for test in data["tests"]:
        benchmark = test["benchmark"]
        values[test["nodeid"].split("::")[1]] = [
            r["total_j"] / r["calls"] / benchmark["units_per_call"] for r in benchmark["rounds"]
        ]
    return values


def ops_run(pytester: pytest.Pytester, *args: str, rows: int = 1000) -> pytest.RunResult:
    pytester.makepyfile(test_suite=TORCH_SUITE.format(rows=rows))
    return pytester.runpytest(*OPS, *args)


def test_a_suite_gets_the_same_joules_in_every_run_and_under_xdist(
    pytester: pytest.Pytester, results: Callable[[], dict[str, Any]]
) -> None:
    runs = []
    for args in ((), (), ("-p", "xdist", "-n", "2")):
        result = ops_run(pytester, *args)
        result.assert_outcomes(passed=2)
        runs.append(per_unit(results()))
    matmul = runs[0]["test_matmul"]
    assert matmul[0] > 0
    assert len(set(matmul)) == 1
    assert runs[1] == runs[0]
    assert runs[2]["test_matmul"][0] == matmul[0]
    session = results()["session"]
    assert session["machine"]["hardware_class"] == "ops-horowitz45-v1"
    assert session["meters"][0]["details"]["technology_node"] == "45 nm CMOS, 0.9 V"


def test_a_pure_python_test_is_uncounted_not_free(
    pytester: pytest.Pytester, results: Callable[[], dict[str, Any]]
) -> None:
    result = ops_run(pytester)
    # Said for what it is: counted operations, not CPU time.
    result.stdout.fnmatch_lines(["numbers are MODELLED from counted torch operations, *"])
    result.stdout.fnmatch_lines(["*ops (modelled*uncounted*test_pure_python*"])
    result.stdout.fnmatch_lines(["1 tests flagged uncounted: *energy is unknown, not zero"])
    tests = {t["nodeid"].split("::")[1]: t for t in results()["tests"]}
    assert "uncounted" in tests["test_pure_python"]["benchmark"]["flags"]
    assert "uncounted" not in tests["test_matmul"]["benchmark"]["flags"]


def test_ten_percent_more_matmul_work_is_a_regression_in_every_run(
    pytester: pytest.Pytester, results: Callable[[], dict[str, Any]]
) -> None:
    # One round per process is enough: the processes agree exactly, so the interval
    # has zero width; two processes give the gate a spread (of zero) to judge with.
    gate = ("--energy-rounds=1", "--energy-processes=2")
    saved = ops_run(pytester, "--energy-save-baseline", *gate)
    saved.stdout.fnmatch_lines(["*saved 2 tests for ops-horowitz45-v1"])
    assert saved.ret == 0
    for _ in range(2):
        more = ops_run(pytester, "--energy-compare", *gate, rows=1100)
        assert more.ret == 1
        verdict = {t["nodeid"].split("::")[1]: t for t in results()["tests"]}["test_matmul"][
            "verdict"
        ]
        assert verdict["status"] == "regression"
        assert verdict["ci_low"] == verdict["ci_high"] > 1.05
    same = ops_run(pytester, "--energy-compare", *gate)
    assert same.ret == 0
    assert results()["tests"][0]["verdict"]["status"] == "unchanged"


def test_ops_combined_with_another_meter_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--energy", "--energy-meter=ops,rapl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'ops' stand alone*"])


def test_other_meters_never_load_the_ops_meter_or_torch(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import sys

        def pytest_unconfigure(config):
            loaded = [m for m in ("torch", "pytest_energy.meters.ops",
                                  "pytest_energy.meters.ops_count") if m in sys.modules]
            print("LOADED:", loaded)
        """
    )
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess("-s", "--energy", "--energy-meter=model")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["LOADED: []"])
