"""What can be read off a model and the machine, for a variant's metadata.

``describe_model(module)`` reads a torch module (parameters, dtypes, quantized
layers and their scheme, storage bits, zero fraction); the user passes the rest
(batch size, sequence length) to ``energy_benchmark.metadata``. The plugin adds
:func:`environment` by itself: framework versions, the CPU's low-precision
instruction sets and the GPU, which decide whether an int8 or bf16 saving on
one machine says anything about another.

torch is never imported here: a module is inspected through the torch that
created it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any


def _weights(module: Any) -> Iterator[tuple[str, Any]]:
    """(kind, tensor) for every weight-like tensor directly owned by ``module``.

    Dynamically quantized layers keep packed weights, reachable only through
    their ``weight()`` method, which returns a quantized tensor.
    """
    torch = sys.modules["torch"]
    weight = getattr(module, "weight", None)
    if callable(weight) and not isinstance(weight, torch.Tensor):
        with contextlib.suppress(Exception):
            unpacked = weight()
            if isinstance(unpacked, torch.Tensor):
                yield "quantized", unpacked
        bias = getattr(module, "bias", None)
        value = bias() if callable(bias) else None
        if isinstance(value, torch.Tensor):
            yield "dense", value
        return
    for parameter in module.parameters(recurse=False):
        yield "dense", parameter
    for buffer in module.buffers(recurse=False):
        if buffer.is_floating_point():
            yield "dense", buffer


def describe_model(model: Any) -> dict[str, Any]:
    """Parameters, weight bytes, dtypes, quantization and sparsity of a torch module.

    Keys: ``parameters`` (stored weight elements, quantized ones included),
    ``weight_bytes``, ``dtypes``, ``quantized_layers``, ``quant_scheme`` (e.g.
    ``"dynamic qint8 per_tensor_affine"`` or ``"none"``), ``weight_bits`` (the
    narrowest storage among weight matrices) and ``sparsity`` (fraction of
    weights exactly zero: what unstructured pruning leaves, and what a dense
    kernel still multiplies).
    """
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(model, torch.nn.Module):
        raise TypeError(f"describe_model needs a torch.nn.Module, got {type(model).__name__}")
    parameters = weight_bytes = zeros = matrix_elements = quantized_layers = 0
    dtypes: set[str] = set()
    bits: set[int] = set()
    schemes: set[str] = set()
    for module in model.modules():
        for kind, tensor in _weights(module):
            values = tensor.detach()
            dtype = str(values.dtype).removeprefix("torch.")
            dtypes.add(dtype)
            parameters += values.numel()
            weight_bytes += values.numel() * values.element_size()
            if kind == "quantized":
                quantized_layers += 1
                dynamic = "dynamic " if "dynamic" in type(module).__module__ else ""
                bits.add(values.element_size() * 8)
                schemes.add(f"{dynamic}{dtype} {str(values.qscheme()).removeprefix('torch.')}")
                raw = values.int_repr()
                per_tensor = values.qscheme() == torch.per_tensor_affine
                zeros += int((raw == (values.q_zero_point() if per_tensor else 0)).sum())
                matrix_elements += values.numel()
            elif values.dim() >= 2:
                bits.add(values.element_size() * 8)
                zeros += int((values == 0).sum())
                matrix_elements += values.numel()
    return {
        "parameters": parameters,
        "weight_bytes": weight_bytes,
        "dtypes": ",".join(sorted(dtypes)),
        "quantized_layers": quantized_layers,
        "quant_scheme": ",".join(sorted(schemes)) or "none",
        "weight_bits": min(bits) if bits else 0,
        "sparsity": round(zeros / matrix_elements, 4) if matrix_elements else 0.0,
    }


def environment(cpu_flags: list[str], gpus: list[dict[str, Any]]) -> dict[str, Any]:
    """Facts about where a variant ran, added to its metadata by the plugin."""
    frameworks = {"python": sys.version.split()[0]}
    for name in ("torch", "torchao", "onnxruntime", "transformers", "sklearn", "numpy"):
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None)
        if isinstance(version, str):
            # str(): torch's TorchVersion is a str subclass that pytest-xdist cannot send.
            frameworks[name] = str(version)
    info: dict[str, Any] = {"frameworks": frameworks, "cpu_flags": list(cpu_flags)}
    if gpus:
        info["gpu"] = ", ".join(
            f"{g.get('name', 'GPU')} (driver {g.get('driver', '?')})" for g in gpus
        )
    return info
