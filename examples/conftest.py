"""Session fixtures for the example suite: the digits data and every model variant.

The models are trained once per session (a few seconds on 2 cores) and shared by all tests;
measuring energy repeats only the inference, never the training. The tests use pytest-energy's
``energy_benchmark`` fixture, ``energy`` marker and ``describe_model`` helper, so this
directory also works as a template for a project's own suite.

``accuracy(model, digits)`` is a plain function in ``digits_models`` (import it in tests);
it is not a fixture because it takes arguments.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from digits_models import Digits, build_variants, load_digits_data
from torch import nn

#: Intra-op threads for every example: one. Process CPU time -- what a modelled energy backend
#: scales into joules -- then counts the model's arithmetic and nothing else; with two OpenMP
#: threads it also counts time spent spin-waiting for the other thread, which on a busy or
#: shared machine (another job, a noisy VM neighbour) inflated the fp32 reference 2-10x and made
#: ratios meaningless (benchmarks/variant_ratios.py, "other" column). A fixed count also keeps
#: results independent of the core count; it is part of what a baseline must match
#: (compressed-models.md 2.8).
EXAMPLE_THREADS = 1


@pytest.fixture(scope="session", autouse=True)
def torch_threads() -> Iterator[int]:
    """Pin torch's intra-op thread count for the session; restore it afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(EXAMPLE_THREADS)
    yield EXAMPLE_THREADS
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits() -> Digits:
    """scikit-learn's bundled digits: ``digits.x`` / ``digits.y`` are the 540-image test split."""
    return load_digits_data()


@pytest.fixture(scope="session")
def models(digits: Digits) -> dict[str, nn.Module]:
    """Variant name -> trained model: fp32 (the reference), int8, pruned, distilled, masked."""
    return build_variants(digits)
