"""One model family, five variants: "each variant is cheaper than fp32 and almost as accurate".

``pytest --energy examples/`` measures every variant's energy per sample, interleaved with the
fp32 reference, and fails a variant whose energy ratio or quality ratio misses its limit:

    energy(variant) / energy(fp32) <= max_energy_ratio     (per sample)
    accuracy(variant) / accuracy(fp32) >= min_quality_ratio

Limits are set with margin from ``python benchmarks/variant_ratios.py`` (2-vCPU AMD EPYC Zen 4,
torch 2.13 CPU, one thread, CPU-time based): int8 ~0.30x, pruned ~0.10x, distilled ~0.045x,
masked ~1.0x (like an A/A copy of fp32); accuracies 0.976 (fp32, int8, pruned), 0.974
(distilled, masked). See examples/README.md.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch
from digits_models import Digits, accuracy, predictor
from torch import nn

from pytest_energy import describe_model

#: A planted regression, for the README's two-command demonstration of the gate: the variants
#: named here (comma-separated) also classify a 30 % copy of the batch, ~30 % more work per
#: sample counted, like a preprocessing step that started duplicating inputs.
EXTRA_WORK = os.environ.get("ENERGY_EXAMPLES_EXTRA_WORK", "")


@pytest.mark.parametrize(
    "variant",
    [
        "fp32",
        "int8",
        "pruned",
        "distilled",
        # Masks-only pruning keeps every tensor's shape, so the same dense GEMM multiplies the
        # zeros: no saving on CPU (pytorch#36214; measured 0.99-1.00x, within the noise band of
        # fp32 against a copy of itself). The honest gate is "must not cost more", with 10 %
        # for noise; a marker on the parameter overrides the family's 0.7x for this variant.
        pytest.param("masked", marks=pytest.mark.energy(max_energy_ratio=1.10)),
    ],
)
@pytest.mark.energy(
    family="digits-mlp",
    reference="fp32",
    # The headline: a variant must cost at most 0.7x fp32 per sample and keep at least 99 % of
    # its accuracy (int8 keeps 100 %). int8's saving depends on the CPU: ~0.30x on the AMD EPYC
    # (Zen 4) VM, but 0.49-0.57x on an Intel Xeon (Sapphire Rapids) VM, both with VNNI, whose
    # fp32 GEMMs are relatively faster; there the 95 % upper bounds reached 0.58-0.60x in 9 runs
    # of 9, so 0.6x would have been inconclusive in some runs (2026-12-06).
    max_energy_ratio=0.7,
    min_quality_ratio=0.99,
    variants={
        # Physically smaller networks: hold them to what they actually deliver (measured 0.10x
        # and 0.045x, worst 5-round bounds 0.14x and 0.05x), with margin for machines where
        # fixed per-call costs weigh more.
        "pruned": {"max_energy_ratio": 0.3},
        # A 35x smaller student may lose a little accuracy; DistilBERT's published trade-off is
        # 97 % of the teacher's quality (Sanh et al. 2019). Measured here: 99.8 %.
        "distilled": {"max_energy_ratio": 0.2, "min_quality_ratio": 0.97},
    },
)
def test_digits(
    energy_benchmark: Any, variant: str, models: dict[str, nn.Module], digits: Digits
) -> None:
    model = models[variant]
    batch = digits.x
    if variant in EXTRA_WORK.split(","):
        batch = torch.cat([batch, batch[: len(batch) * 3 // 10]])
    energy_benchmark(predictor(model), batch, units=len(digits.x), unit="sample")
    energy_benchmark.quality(accuracy=accuracy(model, digits))  # higher is better by default
    energy_benchmark.metadata(**describe_model(model), batch_size=len(digits.x))
