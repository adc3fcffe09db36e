"""Model variants for the bundled example suite: a digits MLP and four compressed versions of it.

Pure model code (no pytest), shared by ``examples/conftest.py`` and
``benchmarks/variant_ratios.py``. Everything runs offline: the data set is scikit-learn's
``load_digits`` (1 797 8x8 images, shipped inside the scikit-learn wheel) and every model is
trained here, in seconds, with fixed seeds.

Variants of the fp32 reference (``build_variants``):

``int8``
    ``torch.ao.quantization.quantize_dynamic`` on every ``nn.Linear``: int8 weights, activations
    quantized per call. The fastest eager int8 path on CPU in torch 2.13 (compressed-models.md
    section 2.1: 0.33-0.41x CPU time on a digits MLP, accuracy unchanged).
``pruned``
    Structured pruning: the hidden units with the smallest L2 norm are *physically removed*
    (smaller ``nn.Linear`` layers), then the network is briefly fine-tuned. Cost follows the
    remaining FLOPs (section 2.4(b): 25 % width -> 0.08x).
``distilled``
    A much smaller student trained with Hinton knowledge distillation from the fp32 teacher
    (section 2.6). Cost follows the student's size.
``masked``
    ``torch.nn.utils.prune.l1_unstructured`` masks made permanent: half the weights are zero but
    the tensors keep their shape and the same dense GEMM runs, so it saves **nothing** on CPU
    (pytorch#36214, "Pruning doesn't affect speed nor memory usage"; section 2.4). It is in the
    suite on purpose, to show an honest "no saving" result.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "HIDDEN",
    "SEED",
    "STUDENT_HIDDEN",
    "VARIANTS",
    "Digits",
    "accuracy",
    "build_variants",
    "distill_student",
    "load_digits_data",
    "make_mlp",
    "mask_prune",
    "predictor",
    "quantize_int8",
    "structured_prune",
    "train_reference",
]

SEED = 0
#: Width of the two hidden layers of the fp32 reference (64 -> HIDDEN -> HIDDEN -> 10).
#: Large enough that the hidden GEMM dominates a forward pass (so int8 and pruning have
#: something to save, section 1: "quantization adds per-call overhead ... on tiny models it
#: dominates"), small enough that the reference trains in about a second on 2 cores.
HIDDEN = 512
#: Fraction of hidden units the structured-pruned variant keeps.
PRUNE_KEEP = 0.25
#: Width of the distilled student's hidden layers.
STUDENT_HIDDEN = 64
#: Fraction of each weight matrix zeroed by the masks-only variant.
MASK_AMOUNT = 0.5
#: Threads used while *training*: fixed so that the trained weights (and the accuracies the
#: examples gate on) do not depend on the machine's core count. One thread, because batch-64
#: steps gain little from two, and on a busy 2-core machine two OpenMP threads waiting on each
#: other made the same training 10-20x slower (measured: 2.5-7 s with 1 thread, 44-68 s with 2
#: while other jobs ran).
TRAIN_THREADS = 1

VARIANTS: tuple[str, ...] = ("fp32", "int8", "pruned", "distilled", "masked")

# The two warnings torch 2.13 emits on every quantize_dynamic call (compressed-models.md 2.1):
# the stale "will be removed in 2.10" DeprecationWarning (pytorch PR #153892) and the UserWarning
# about qint8/quint8 tensor-creation functions (pytorch#184982). Suites running with -W error
# (this repository's pyproject does) would fail on them, so exactly these two are silenced.
_QUANT_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    (r"torch\.ao\.quantization is deprecated", DeprecationWarning),
    (
        r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor "
        r"creation functions",
        UserWarning,
    ),
)


@dataclass(frozen=True)
class Digits:
    """scikit-learn's digits as float tensors, split 70/30 (stratified, seed 0)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def x(self) -> torch.Tensor:
        """The evaluation inputs (the test split) -- what the energy examples run on."""
        return self.x_test

    @property
    def y(self) -> torch.Tensor:
        """Labels of :attr:`x`."""
        return self.y_test


def load_digits_data(seed: int = SEED) -> Digits:
    """Load the digits bundled with scikit-learn (no download) and split them deterministically."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x / 16.0, y, test_size=0.3, random_state=seed, stratify=y
    )
    return Digits(
        x_train=torch.tensor(x_train, dtype=torch.float32),
        y_train=torch.tensor(y_train, dtype=torch.int64),
        x_test=torch.tensor(x_test, dtype=torch.float32),
        y_test=torch.tensor(y_test, dtype=torch.int64),
    )


@contextlib.contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    """Seed torch, fix the thread count and use deterministic kernels; restore afterwards."""
    threads = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.set_num_threads(TRAIN_THREADS)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)


def make_mlp(hidden: int = HIDDEN, n_in: int = 64, n_out: int = 10) -> nn.Sequential:
    """The digits classifier: two ReLU hidden layers of width ``hidden``."""
    return nn.Sequential(
        nn.Linear(n_in, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_out),
    )


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor, _idx: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


def _fit(
    model: nn.Module,
    data: Digits,
    *,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 64,
    loss_fn: LossFn = _cross_entropy,
) -> nn.Module:
    """Plain Adam mini-batch training with a seeded shuffle; returns the model in eval mode."""
    with _deterministic(seed):
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        n = len(data.x_train)
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                loss = loss_fn(model(data.x_train[idx]), data.y_train[idx], idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return model.eval()


def train_reference(data: Digits, *, epochs: int = 12, seed: int = SEED) -> nn.Sequential:
    """Train the fp32 reference MLP (1-2 s on one thread)."""
    with _deterministic(seed):
        model = make_mlp()
    _fit(model, data, epochs=epochs, lr=1e-3, seed=seed)
    return model


def quantize_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 copy of ``model`` (``nn.Linear`` -> ``DynamicQuantizedLinear``).

    Weights are quantized per tensor once; activations are quantized per call (7-bit range,
    ``reduce_range=True``), which is fine for an MLP classifier (compressed-models.md 2.1).
    """
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        for message, category in _QUANT_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        return quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def _keep_by_l2(weight: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices (sorted) of the ``keep`` output units whose weight rows have the largest L2 norm."""
    return torch.topk(weight.norm(p=2, dim=1), keep).indices.sort().values


def structured_prune(
    model: nn.Sequential,
    data: Digits,
    *,
    keep: float = PRUNE_KEEP,
    epochs: int = 15,
    seed: int = SEED,
) -> nn.Sequential:
    """Physically remove hidden units (L2 norm of their incoming weights), then fine-tune.

    Unlike ``torch.nn.utils.prune.ln_structured`` (which only masks rows, so the dense GEMM
    keeps its size), the kept rows/columns are copied into smaller ``nn.Linear`` layers, so the
    cost drops with the remaining FLOPs (compressed-models.md 2.4(b)).
    """
    fc1, fc2, fc3 = _linears(model)
    with torch.no_grad():
        k1 = _keep_by_l2(fc1.weight, max(1, round(fc1.out_features * keep)))
        k2 = _keep_by_l2(fc2.weight[:, k1], max(1, round(fc2.out_features * keep)))
        pruned = nn.Sequential(
            nn.Linear(fc1.in_features, len(k1)),
            nn.ReLU(),
            nn.Linear(len(k1), len(k2)),
            nn.ReLU(),
            nn.Linear(len(k2), fc3.out_features),
        )
        p1, p2, p3 = _linears(pruned)
        p1.weight.copy_(fc1.weight[k1])
        p1.bias.copy_(fc1.bias[k1])
        p2.weight.copy_(fc2.weight[k2][:, k1])
        p2.bias.copy_(fc2.bias[k2])
        p3.weight.copy_(fc3.weight[:, k2])
        p3.bias.copy_(fc3.bias)
    # Removing 3/4 of the units costs a few points of accuracy; a short fine-tune recovers them
    # (measured: 6 epochs leave ~2 points missing, 15 epochs recover fp32's accuracy).
    _fit(pruned, data, epochs=epochs, lr=1e-3, seed=seed + 1)
    return pruned


def distill_student(
    teacher: nn.Module,
    data: Digits,
    *,
    hidden: int = STUDENT_HIDDEN,
    epochs: int = 40,
    temperature: float = 4.0,
    alpha: float = 0.7,
    seed: int = SEED,
) -> nn.Sequential:
    """Train a small student on the teacher's softened outputs (Hinton KD, section 2.6)."""
    with torch.inference_mode():
        soft_targets = F.softmax(teacher(data.x_train) / temperature, dim=-1)

    def kd_loss(logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        kd = F.kl_div(
            F.log_softmax(logits / temperature, dim=-1), soft_targets[idx], reduction="batchmean"
        )
        # T^2 keeps the soft-target gradients on the same scale as the hard-label ones.
        return alpha * kd * temperature**2 + (1 - alpha) * F.cross_entropy(logits, y)

    with _deterministic(seed + 2):
        student = make_mlp(hidden=hidden)
    _fit(student, data, epochs=epochs, lr=3e-3, seed=seed + 2, loss_fn=kd_loss)
    return student


def mask_prune(model: nn.Module, *, amount: float = MASK_AMOUNT) -> nn.Module:
    """Zero the smallest-|w| ``amount`` of every Linear weight with masks made permanent.

    Shapes are unchanged, so the same dense kernels run on the zeros: expect ~1.0x the energy
    of the original (pytorch#36214; compressed-models.md 2.4 measured 1.01-1.05x on this MLP).
    """
    from torch.nn.utils import prune

    masked = copy.deepcopy(model)
    for lin in _linears(masked):
        prune.l1_unstructured(lin, "weight", amount=amount)
        prune.remove(lin, "weight")  # bake the zeros in; drops the mask and forward hook
    return masked.eval()


def build_variants(data: Digits, *, seed: int = SEED) -> dict[str, nn.Module]:
    """Train the reference and derive every variant; all in eval mode, all deterministic."""
    reference = train_reference(data, seed=seed)
    return {
        "fp32": reference,
        "int8": quantize_int8(reference),
        "pruned": structured_prune(reference, data, seed=seed),
        "distilled": distill_student(reference, data, seed=seed),
        "masked": mask_prune(reference),
    }


def predictor(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The callable to benchmark: one forward pass under ``torch.inference_mode``.

    inference_mode skips autograd bookkeeping, which would otherwise be part of what is measured.
    """

    def predict(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return predict


def accuracy(model: nn.Module, data: Digits) -> float:
    """Top-1 accuracy of ``model`` on the test split (0..1, higher is better)."""
    logits = predictor(model)(data.x_test)
    return float((logits.argmax(dim=-1) == data.y_test).float().mean())
