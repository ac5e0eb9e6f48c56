"""Tokens/s of one SAE training step: ours (hand-written and autograd) against SAELens 6.

SAELens lives in its own venv so it never changes the book's environment:
    python -m venv .venv-bench && .venv-bench/bin/pip install torch==2.13.0
    .venv-bench/bin/pip install -e '.[bench]'
    .venv-bench/bin/python benchmarks/bench_train_step.py [--sizes small gelu-1l] [--steps 5]

All contenders train on the same pre-made activation batches, in one process, taking turns
step by step; the matmul peak is measured in the same run with a plain matmul loop, so
"% of peak" is comparable across machines. A step is counted as 5 matmuls of
batch x d_in x d_sae (two forward, three backward: the least any exact SAE step needs),
2 flops per multiply-add.
Here the SAEs start from random initialisation (dense codes), so "ours, hand-written grads" is
the dense step (`sparse="never"`); bench_sparse_step.py measures the step from a trained, sparse
state. bf16 rows run by default only where the CPU has native bf16 (AVX-512-BF16 or AMX, printed
on the first line); elsewhere torch emulates it and a step takes minutes (`--dtypes bf16` forces).
Not a test: timings depend on the machine and on its load (printed with the results).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch

from tutorial_sae.core.cpu_features import describe_cpu, native_bf16
from tutorial_sae.core.fast_step import fast_train_step
from tutorial_sae.core.sae import SAE, SAEConfig
from tutorial_sae.training.trainer import train_step

SIZES = {"small": (512, 4096), "gelu-1l": (2048, 16384)}
L1_PER_TOKEN = 1.23  # Nanda's run1 3e-4 summed over a batch of 4096


def make_batches(n: int, batch: int, d_in: int, seed: int = 0) -> list[torch.Tensor]:
    """GELU of Gaussians: non-negative-heavy like MLP post-activations, with a shared offset."""
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.nn.functional.gelu(torch.randn(batch, d_in, generator=gen) + 0.5) for _ in range(n)
    ]


def matmul_peak(batch: int, d_in: int, d_sae: int, dtype: torch.dtype, seconds: float) -> float:
    """Best GFLOP/s of [batch, d_in] @ [d_in, d_sae] and its transposed products."""
    a = torch.randn(batch, d_in, dtype=dtype)
    b = torch.randn(d_in, d_sae, dtype=dtype)
    c = torch.randn(batch, d_sae, dtype=dtype)
    products = (lambda: a @ b, lambda: c @ b.T, lambda: a.T @ c)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        for product in products:
            start = time.perf_counter()
            product()
            best = max(best, 2 * batch * d_in * d_sae / (time.perf_counter() - start) / 1e9)
    return best


def ours(d_in: int, d_sae: int, bf16: bool, manual: bool):
    """Our step plus the trainer's per-step bookkeeping (firing counts), as in `train._train`."""
    sae = SAE(SAEConfig(d_in=d_in, d_sae=d_sae, l1_coeff=L1_PER_TOKEN, seed=49))
    with torch.no_grad():
        for p in sae.parameters():
            p.data = p.data.contiguous()
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4, betas=(0.9, 0.99), fused=True)
    since_fired = torch.zeros(d_sae, dtype=torch.long)
    dtype = torch.bfloat16 if bf16 else torch.float32
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step(x: torch.Tensor) -> None:
        nonlocal since_fired
        if manual:
            out = fast_train_step(sae, opt, x, None, dtype, sparse="never")
        else:
            with autocast:
                out = train_step(sae, opt, x, None)
        counts = torch.count_nonzero(out.feature_acts, dim=0)
        since_fired = torch.where(counts > 0, 0, since_fired + 1)

    return step


def sae_lens(d_in: int, d_sae: int, batch: int, bf16: bool):
    """SAELens 6's `SAETrainer.step` on a standard SAE with the same l1 (their per-token sum)."""
    from sae_lens import SAETrainer, StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig

    sae = StandardTrainingSAE(
        StandardTrainingSAEConfig(d_in=d_in, d_sae=d_sae, l1_coefficient=L1_PER_TOKEN)
    )
    cfg = SAETrainerConfig(
        total_training_samples=10**9,
        train_batch_size_samples=batch,
        lr=1e-4,
        lr_end=1e-4,  # constant lr; the config leaves it None and the trainer asserts it is set
        adam_beta1=0.9,
        adam_beta2=0.99,
        device="cpu",
        autocast=bf16,
    )
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=iter(()))

    def step(x: torch.Tensor) -> None:
        trainer.step(x)
        trainer.n_training_steps += 1

    return step


def interleaved_rates(
    steps: dict[str, object], batches: list[torch.Tensor], warmup: int, n: int
) -> dict[str, float]:
    """Tokens/s of each contender from the median of `n` timed steps, taken in turns.

    Taking turns step by step spreads any change in the machine's load (it is shared) over all
    contenders alike, and the median ignores a step that a load spike hit.
    """
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(warmup + n):
        for name, step in steps.items():
            start = time.perf_counter()
            step(batches[i % len(batches)])
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: len(batches[0]) / statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["small", "gelu-1l"])
    default_dtypes = ["fp32", "bf16"] if native_bf16() else ["fp32"]
    parser.add_argument("--dtypes", nargs="+", choices=["fp32", "bf16"], default=default_dtypes)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per contender")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{describe_cpu()}; torch {torch.__version__}; load {os.getloadavg()}")
    header = f"{'size':8s} {'dtype':5s} {'contender':26s} {'tokens/s':>9s} {'x SAELens':>9s}"
    print(f"{header} {'% peak':>7s}")
    for size in args.sizes:
        d_in, d_sae = SIZES[size]
        batches = make_batches(3, args.batch, d_in)
        for dtype_name in args.dtypes:
            bf16 = dtype_name == "bf16"
            mm_dtype = torch.bfloat16 if bf16 else torch.float32
            peak = matmul_peak(args.batch, d_in, d_sae, mm_dtype, 3)
            flops_per_token = 5 * 2 * d_in * d_sae
            contenders = {
                "SAELens SAETrainer.step": sae_lens(d_in, d_sae, args.batch, bf16),
                "ours, hand-written grads": ours(d_in, d_sae, bf16, manual=True),
                "ours, autograd": ours(d_in, d_sae, bf16, manual=False),
            }
            rates = interleaved_rates(contenders, batches, args.warmup, args.steps)
            # Measured again afterwards: a load spike on a shared machine can hide the peak.
            peak = max(peak, matmul_peak(args.batch, d_in, d_sae, mm_dtype, 3))
            base = rates["SAELens SAETrainer.step"]
            for name, rate in rates.items():
                pct = 100 * rate * flops_per_token / (peak * 1e9)
                print(
                    f"{size:8s} {dtype_name:5s} {name:26s} {rate:9.0f} {rate / base:9.2f} {pct:6.0f}%"
                )
            print(f"{size:8s} {dtype_name:5s} {'matmul peak':26s} {peak:7.0f} GFLOP/s")
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
