"""Counting what torch computes: operations by kind and dtype, and the bytes they move.

:class:`CountingMode` is a ``TorchDispatchMode``: every aten or quantized operation
that reaches torch's dispatcher passes through it, runs unchanged, and is added to an
:class:`OpTally` from the shapes and dtypes of its inputs and outputs. Counts are
whole numbers, so the same work gives the same tally on any machine.

What is counted (``docs/ops-meter.md`` has the whole model):

* Matrix products, convolutions and attention: multiply-accumulates from
  ``torch.utils.flop_counter``'s formulas (its FLOPs are 2 per multiply-accumulate),
  one multiply at the operands' dtype and one add at the accumulator's (fp32 for
  fp16/bf16 operands, int32 for int8) each. Dense kernels multiply zeros like any
  other number, so masks-only pruning costs the full product; a sparse operand
  costs its stored values only. Quantized linear and convolution kernels
  (``torch.ao.quantization``) are int8 products from their packed weights' shape,
  plus the quantization of their inputs and the dequantization of their outputs.
* Every other operation that computes: one operation per element of its largest
  input or of its output ("mult" for multiplications and divisions, "add" for the
  rest). Transcendental functions cost more than that in hardware; this is a model.
* Views and metadata cost nothing; copies, concatenations and factories move bytes
  but compute nothing.
* Bytes: weights (``nn.Parameter`` tensors and views of them, packed quantized
  weights) are charged as read from DRAM by every operation that reads them; every
  other tensor read or written is charged at SRAM cost. A model, stated as such.

Work torch never dispatches (pure Python, numpy, other libraries) is invisible here;
the meter reports windows where nothing was counted as uncounted, never as free.
Operations whose dtype has no price (fp64, int64, bool) are tallied as unpriced.
"""

from __future__ import annotations

import math
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch._C import DispatchKey
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode, _get_current_dispatch_mode

#: torch dtypes -> the table's dtype names. Quantized tensors hold 8-bit integers.
PRICED_DTYPES = {
    torch.float32: "fp32",
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.int8: "int8",
    torch.uint8: "int8",
    torch.qint8: "int8",
    torch.quint8: "int8",
    torch.int32: "int32",
    torch.qint32: "int32",
}
#: GEMM and convolution kernels accumulate narrow operands in a wider type
#: (fp32 for fp16/bf16 in cuBLAS and oneDNN; int32 for int8 in FBGEMM and oneDNN).
ACCUMULATOR = {"fp16": "fp32", "bf16": "fp32", "int8": "int32"}

#: Element-wise operations that multiply or divide; the rest are priced as adds.
MULT_OPS = frozenset({"mul", "mul_", "div", "div_", "true_divide", "reciprocal", "square"})
#: Operations that only move or fill memory.
MOVE_OPS = frozenset(
    {
        "clone",
        "copy_",
        "_to_copy",
        "_copy_from",
        "_copy_from_and_resize",
        "cat",
        "stack",
        "index_select",
        "gather",
        "index",
        "_unsafe_index",
        "embedding",
        "constant_pad_nd",
        "repeat",
        "flip",
        "roll",
        "fill_",
        "zero_",
        "zeros_like",
        "ones_like",
        "full_like",
        "new_zeros",
        "new_ones",
        "new_full",
        "slice_scatter",
        "select_scatter",
        "lift_fresh_copy",
        "detach_copy",
        "view_copy",
        "_reshape_copy",
        "split_with_sizes_copy",
    }
)
#: Allocations: memory is reserved, nothing is computed, read or written.
ALLOCATIONS = frozenset(
    {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "resize_"}
)
#: Marks a view of a weight, so that its bytes are charged as weight bytes (inference
#: mode records no ``_base`` for views).
WEIGHT_MARK = "_pytest_energy_weight"
#: torch's formula for attention FLOPs (untyped in torch).
SDPA_FLOPS: Callable[..., int] = flop_counter.sdpa_flop_count


class OpTally:
    """Cumulative whole-number counts of one process's torch work; never reset."""

    def __init__(self) -> None:
        #: (kind, table dtype) -> operations, kind "add" or "mult".
        self.ops: Counter[tuple[str, str]] = Counter()
        #: memory level ("sram", "dram") -> bytes read or written.
        self.bytes: Counter[str] = Counter()
        #: (kind, torch dtype) -> operations with no price in the table.
        self.unpriced: Counter[tuple[str, str]] = Counter()
        #: Operations counted, and operations the tally could not size (a counting bug,
        #: never the user's): name -> calls.
        self.counted = 0
        self.failed: Counter[str] = Counter()

    def add_ops(self, kind: str, dtype: torch.dtype | str, count: int) -> None:
        if count <= 0:
            return
        name = dtype if isinstance(dtype, str) else PRICED_DTYPES.get(dtype)
        if name is None:
            self.unpriced[(kind, str(dtype).replace("torch.", ""))] += count
        else:
            self.ops[(kind, name)] += count

    def add_macs(self, dtype: torch.dtype, count: int) -> None:
        """Multiply-accumulates: a multiply at the operands' dtype, an add at the accumulator's."""
        name = PRICED_DTYPES.get(dtype)
        if name is None:
            self.add_ops("mult", dtype, count)
            self.add_ops("add", dtype, count)
            return
        self.add_ops("mult", name, count)
        self.add_ops("add", ACCUMULATOR.get(name, name), count)


# -- sizes --------------------------------------------------------------------------------


def _collect(value: object, found: dict[int, torch.Tensor]) -> None:
    # Operator arguments nest tensors in lists, tuples and (kwargs) dicts only; a
    # plain walk costs a fraction of torch's pytree on every dispatched operation.
    if isinstance(value, torch.Tensor):
        found.setdefault(id(value), value)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, found)


def tensors_in(*values: object) -> list[torch.Tensor]:
    """Every tensor in nested arguments, each object once."""
    found: dict[int, torch.Tensor] = {}
    _collect(values, found)
    return list(found.values())


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes a kernel reads or writes for ``t``: stored values only (an expanded
    dimension is read once; a sparse tensor is its values and indices)."""
    size = t.element_size()
    if t.layout == torch.strided:
        return size * math.prod(n for n, s in zip(t.shape, t.stride(), strict=True) if s != 0)
    nnz = int(t._nnz())
    if t.layout == torch.sparse_coo:
        return nnz * (size + 8 * t.sparse_dim())
    # Compressed layouts: values, one index per value, and the compressed offsets.
    return nnz * (size + 8) + 8 * (t.shape[0] + 1)


def is_weight(t: torch.Tensor) -> bool:
    if isinstance(t, torch.nn.Parameter) or getattr(t, WEIGHT_MARK, False):
        return True
    base = t._base
    return base is not None and isinstance(base, torch.nn.Parameter)


def charge_bytes(tally: OpTally, inputs: Iterable[torch.Tensor], outputs: Iterable[object]) -> None:
    for t in inputs:
        tally.bytes["dram" if is_weight(t) else "sram"] += tensor_bytes(t)
    for t in tensors_in(outputs):
        tally.bytes["sram"] += tensor_bytes(t)


# -- handlers: (tally, func, args, kwargs, out) -> None ---------------------------------

Handler = Callable[[OpTally, Any, tuple[Any, ...], dict[str, Any], Any], None]


def count_elementwise(
    tally: OpTally, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
) -> None:
    inputs = tensors_in(args, kwargs)
    outputs = tensors_in(out)
    if not outputs:
        return  # a query (sizes, item()): nothing computed worth pricing
    if not inputs:  # a factory (zeros, arange, randn): it only writes its output
        charge_bytes(tally, [], outputs)
        return
    largest = max(inputs, key=lambda t: t.numel())
    count = max(largest.numel(), sum(t.numel() for t in outputs))
    kind = "mult" if func.overloadpacket.__name__ in MULT_OPS else "add"
    tally.add_ops(kind, largest.dtype, count)
    charge_bytes(tally, inputs, outputs)


def count_nothing(
    tally: OpTally, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
) -> None:
    """Allocations cost nothing until something writes them."""


def count_move(
    tally: OpTally, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
) -> None:
    inputs = tensors_in(args, kwargs)
    if func.overloadpacket.__name__ == "embedding" and inputs:
        # A lookup reads the rows it returns, not the whole table.
        table, rest = inputs[0], inputs[1:]
        tally.bytes["dram" if is_weight(table) else "sram"] += sum(
            tensor_bytes(t) for t in tensors_in(out)
        )
        inputs = rest
    charge_bytes(tally, inputs, out)


def count_view(
    tally: OpTally, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
) -> None:
    """Free; a view of a weight is marked so later reads of it are weight reads."""
    if args and isinstance(args[0], torch.Tensor) and is_weight(args[0]):
        for t in tensors_in(out):
            setattr(t, WEIGHT_MARK, True)


def _matrix_operands(func: Any, args: tuple[Any, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The two multiplied operands of mm/addmm/bmm/baddbmm (``addmm(bias, a, b)``)."""
    name = func.overloadpacket.__name__
    first = 1 if name in ("addmm", "baddbmm", "_sparse_addmm") else 0
    return args[first], args[first + 1]


def count_product(
    tally: OpTally, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
) -> None:
    """Matrix products, convolutions and attention, from torch's own FLOP formulas."""
    name = func.overloadpacket.__name__
    outputs = tensors_in(out)
    sparse = name in ("mm", "addmm", "_sparse_mm", "_sparse_addmm") and any(
        t.layout != torch.strided for t in _matrix_operands(func, args)
    )
    if sparse:
        a, b = _matrix_operands(func, args)
        # A sparse kernel multiplies stored values only.
        if a.layout != torch.strided:
            macs = int(a._nnz()) * b.shape[-1]
        else:
            macs = int(b._nnz()) * a.shape[0]
        dtype = a.dtype
    elif name == "_scaled_dot_product_flash_attention_for_cpu":
        q, k, v = args[:3]
        macs = SDPA_FLOPS(q.shape, k.shape, v.shape) // 2
        dtype = q.dtype
        # The softmax over the scores, as the math path would count it.
        tally.add_ops("add", q.dtype, q.shape[:-1].numel() * k.shape[-2])
    else:
        formula = flop_counter.flop_registry[func.overloadpacket]
        macs = int(formula(*args, **kwargs, out_val=out)) // 2
        tensors = [t for t in tensors_in(args) if t.dim() >= 2]
        dtype = tensors[0].dtype if tensors else outputs[0].dtype
    tally.add_macs(dtype, macs)
    if name in ("addmm", "baddbmm", "_sparse_addmm") and outputs:
        tally.add_ops("add", outputs[0].dtype, outputs[0].numel())  # beta * self + product
    charge_bytes(tally, tensors_in(args, kwargs), out)


def count_layer(
    tally: OpTally, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
) -> None:
    """``linear``, ``matmul`` and ``conv1d/2d/3d`` as inference mode hands them over:
    each output element is a dot product as long as the input features (linear,
    matmul) or as one filter (convolution)."""
    name = func.overloadpacket.__name__
    a, b = args[0], args[1]
    y = tensors_in(out)[0]
    if name == "matmul" and any(t.layout != torch.strided for t in (a, b)):
        count_product(tally, torch.ops.aten.mm.default, (a, b), {}, out)
        return
    if name == "matmul":
        depth = a.shape[-1]
    elif name == "linear":
        depth = b.shape[-1]
    else:
        depth = math.prod(b.shape[1:])
    tally.add_macs(a.dtype, y.numel() * depth)
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    if name != "matmul" and isinstance(bias, torch.Tensor):
        tally.add_ops("add", y.dtype, y.numel())
    charge_bytes(tally, tensors_in(args, kwargs), out)


class PackedWeights:
    """Shapes of quantized kernels' packed weights, unpacked once per packed object."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[weakref.ref[Any], torch.Size, torch.dtype, int]] = {}

    def describe(self, packed: Any) -> tuple[torch.Size, torch.dtype, int]:
        """(weight shape, weight dtype, weight + bias bytes)."""
        known = self._known.get(id(packed))
        if known is not None and known[0]() is packed:
            return known[1], known[2], known[3]
        weight, bias = packed.unpack()[:2]
        size = tensor_bytes(weight) + (tensor_bytes(bias) if bias is not None else 0)
        self._known[id(packed)] = (weakref.ref(packed), weight.shape, weight.dtype, size)
        return weight.shape, weight.dtype, size


def quantized_counter(packed_weights: PackedWeights) -> Handler:
    def count_quantized(
        tally: OpTally, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
    ) -> None:
        name = func.overloadpacket.__name__
        x, packed = args[0], args[1]
        shape, weight_dtype, weight_bytes = packed_weights.describe(packed)
        outputs = tensors_in(out)
        y = outputs[0]
        if name.startswith("conv"):
            macs = y.numel() * math.prod(shape[1:])
        else:
            macs = y.numel() * shape[-1]
        if name.endswith("fp16"):
            tally.add_macs(torch.float32, macs)  # fp16 weights widened to fp32 (FBGEMM)
        else:
            tally.add_macs(weight_dtype, macs)
        if "dynamic" in name:
            # Quantize the fp32 input each call: find its range (two compares), then
            # scale and round each element; the int8 copy is written and read again.
            tally.add_ops("add", torch.float32, 3 * x.numel())
            tally.add_ops("mult", torch.float32, x.numel())
            tally.bytes["sram"] += 2 * x.numel()
        # Dequantize or requantize each output (scale, then bias or zero point).
        tally.add_ops("mult", torch.float32, y.numel())
        tally.add_ops("add", torch.float32, y.numel())
        tally.bytes["dram"] += weight_bytes
        charge_bytes(tally, [x], outputs)

    return count_quantized


# -- the mode ---------------------------------------------------------------------------

_DECOMPOSE = "decompose"
_SPECIAL_PRODUCTS = frozenset(
    {"_sparse_mm", "_sparse_addmm", "_scaled_dot_product_flash_attention_for_cpu"}
)
#: Composite layers counted whole: decomposing them on every call costs more than the
#: count (matmul's decomposition is Python), and their formula is exact.
_LAYERS = frozenset({"linear", "matmul", "conv1d", "conv2d", "conv3d"})


def _is_view(func: Any) -> bool:
    returns = func._schema.returns
    return bool(returns) and all(
        r.alias_info is not None and not r.alias_info.is_write for r in returns
    )


class CountingMode(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Counts every dispatched operation into ``tally``; runs each one unchanged."""

    def __init__(self, tally: OpTally) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.tally = tally
        self._handlers: dict[Any, Handler | str] = {}
        self._packed = PackedWeights()

    def _classify(self, func: Any) -> Handler | str:
        packet = func.overloadpacket
        name = packet.__name__
        quantized_kernel = name.startswith(("linear", "conv")) and not name.endswith(
            ("prepack", "unpack")
        )
        if func.namespace == "quantized" and quantized_kernel:
            return quantized_counter(self._packed)
        if name in _SPECIAL_PRODUCTS or packet in flop_counter.flop_registry:
            return count_product
        if name in _LAYERS and func.namespace == "aten":
            return count_layer
        if torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd"):
            # Inference mode hands composite ops (linear, conv2d, sdpa) to the mode
            # whole; their decomposition is what runs under autograd, so counting it
            # counts the same kernels whichever mode the test is in.
            return _DECOMPOSE
        if _is_view(func):
            return count_view
        if name in ALLOCATIONS:
            return count_nothing
        if name in MOVE_OPS:
            return count_move
        return count_elementwise

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        handler = self._handlers.get(func)
        if handler is None:
            handler = self._handlers[func] = self._classify(func)
        if handler == _DECOMPOSE:
            # The C++ decomposition, run under this mode so its parts are counted.
            with self:
                return func._op_dk(DispatchKey.CompositeImplicitAutograd, *args, **kwargs)
        out = func(*args, **kwargs)
        try:
            handler(self.tally, func, args, kwargs, out)  # type: ignore[operator]
            self.tally.counted += 1
        except Exception:
            # Never break the user's code over a count: the operation is listed as
            # uncounted instead.
            self.tally.failed[str(func)] += 1
        return out


def start_counting(tally: OpTally) -> CountingMode:
    """Push a counting mode for this thread; :func:`stop_counting` pops it."""
    mode = CountingMode(tally)
    mode.__enter__()  # type: ignore[no-untyped-call]
    return mode


def stop_counting(mode: CountingMode) -> bool:
    """Pop ``mode`` if it is the innermost mode; a mode pushed above it and never
    popped (a test's own) is left alone, and so is ours then (returns False)."""
    if _get_current_dispatch_mode() is not mode:
        return False
    mode.__exit__(None, None, None)  # type: ignore[no-untyped-call]
    return True
