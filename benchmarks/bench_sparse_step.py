"""Tokens/s of the SAE step from a trained (sparse) state: our sparse-aware step vs SAELens 6.

Run in the bench environment (see bench_train_step.py for how to make it):
    .venv-bench/bin/python benchmarks/bench_sparse_step.py [--sizes mini gelu-1l] [--steps 5]
    .venv-bench/bin/python benchmarks/bench_sparse_step.py --crossover   # sets DENSITY_THRESHOLD

Starting states. "mini": the shipped mini/run1 SAE (512/4096) on real activations of the mini
model (`blocks.0.mlp.hook_post`, its own corpus). "gelu-1l": an SAE of gelu-1l's size
(2048/16384, seed 49) whose encoder biases are set so that each feature fires on `--l0`/16384 of
a calibration batch (L0 ~ `--l0` on fresh batches): the sparsity a trained SAE has, without an
hours-long training run. Its inputs are GELU(Gaussian + 0.5) as in bench_train_step.py; its
firing is spread evenly over features, uncorrelated between them - for the sparse kernels'
memory access, a worse case than a trained SAE's.
SAELens starts from the same weights (copied in), steps on the same batches, taking turns step by
step with ours; medians of the timed steps. No ghost grads (SAELens 6 has none). Each contender
also keeps the per-feature firing counts a trainer keeps (SAELens's trainer does it inside its
step; ours uses the sparse step's counts, or counts f on the dense branch).
The dense step is also run (`sparse="never"`). "% peak" rates every row against the fp32 matmul
peak, a plain torch.mm of the same shapes measured in the same run, counting the 5 dense
matmuls of a step (as bench_train_step): above 100% means the step did fewer flops than that.
bf16 rows run only where the CPU has native bf16 (AVX-512-BF16 / AMX; printed): ours with bf16
matmuls vs SAELens with autocast. Not a test: timings depend on the machine and on its load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from bench_train_step import L1_PER_TOKEN, SIZES, interleaved_rates, make_batches, matmul_peak

from tutorial_sae.core.cpu_features import describe_cpu, native_bf16
from tutorial_sae.core.fast_step import fast_train_step, loss_and_grads
from tutorial_sae.core.sae import SAE, SAEConfig

SIZES = {"mini": SIZES["small"], "gelu-1l": SIZES["gelu-1l"]}
try:  # the trainer's blocked count where it has one (what `train_sae` does on the dense branch)
    from tutorial_sae.training.trainer import fire_counts as count_fired
except ImportError:

    def count_fired(f: torch.Tensor) -> torch.Tensor:
        return torch.count_nonzero(f, dim=0)


def mini_state(batch: int, n_batches: int) -> tuple[SAE, list[torch.Tensor]]:
    """mini/run1 and shuffled real activations of the mini model at its hook."""
    from tutorial_sae.data.activations import collect_activations
    from tutorial_sae.models.loading import load_model, load_sae, load_tokens

    model = load_model("mini", device="cpu")
    tokens = load_tokens(
        "mini", split="train", n_tokens=batch * n_batches, tokenizer=model.tokenizer
    )
    acts = collect_activations(model, tokens, progress=False).flatten(0, 1)
    acts = acts[torch.randperm(len(acts), generator=torch.Generator().manual_seed(0))]
    return load_sae("mini/run1", device="cpu"), [
        acts[i * batch : (i + 1) * batch] for i in range(n_batches)
    ]


def sparse_state(d_in: int, d_sae: int, batch: int, n_batches: int, l0: float):
    """A random SAE whose b_enc makes each feature fire on l0/d_sae of a calibration batch."""
    sae = SAE(SAEConfig(d_in=d_in, d_sae=d_sae, l1_coeff=L1_PER_TOKEN, seed=49))
    batches = make_batches(n_batches + 1, batch, d_in)
    calib = batches.pop()
    with torch.no_grad():
        sae.b_dec.copy_(calib.mean(0))
        pre = (calib - sae.b_dec) @ sae.W_enc
        k = max(1, round(l0 / d_sae * batch))
        sae.b_enc.copy_(-pre.topk(k + 1, dim=0).values[-1])  # k tokens above the threshold
    return sae, batches


def contiguous(sae: SAE) -> SAE:
    with torch.no_grad():
        for p in sae.parameters():
            p.data = p.data.contiguous()
    return sae


def ours(sae: SAE, sparse: str, dtype: torch.dtype, l0s: list[float] | None = None):
    """Our step + the trainer's firing counts; `l0s` collects each step's L0."""
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4, betas=(0.9, 0.99), fused=True)
    since_fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long)

    def step(x: torch.Tensor) -> None:
        nonlocal since_fired
        out = fast_train_step(sae, opt, x, None, dtype, sparse=sparse)
        counts = out.fire_counts
        if counts is None:
            counts = count_fired(out.feature_acts)
        since_fired = torch.where(counts > 0, 0, since_fired + 1)
        if l0s is not None:
            l0s.append(float(counts.sum()) / len(x))

    return step


def sae_lens(sae: SAE, batch: int, bf16: bool):
    """SAELens 6's `SAETrainer.step` on a StandardTrainingSAE holding `sae`'s weights."""
    from sae_lens import SAETrainer, StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig

    d_in, d_sae = sae.cfg.d_in, sae.cfg.d_sae
    theirs = StandardTrainingSAE(
        StandardTrainingSAEConfig(d_in=d_in, d_sae=d_sae, l1_coefficient=sae.cfg.l1_coeff)
    )
    with torch.no_grad():
        for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
            getattr(theirs, name).copy_(getattr(sae, name))
    cfg = SAETrainerConfig(
        total_training_samples=10**9,
        train_batch_size_samples=batch,
        lr=1e-4,
        lr_end=1e-4,
        adam_beta1=0.9,
        adam_beta2=0.99,
        device="cpu",
        autocast=bf16,
    )
    trainer = SAETrainer(cfg=cfg, sae=theirs, data_provider=iter(()))

    def step(x: torch.Tensor) -> None:
        trainer.step(x)
        trainer.n_training_steps += 1

    return step


def copy_sae(sae: SAE) -> SAE:
    new = SAE(sae.cfg)
    new.load_state_dict(sae.state_dict())
    return contiguous(new)


def compare(size: str, sae: SAE, batches, args) -> None:
    d_in, d_sae = sae.cfg.d_in, sae.cfg.d_sae
    dtypes = [name for name in args.dtypes if name == "fp32" or native_bf16()]
    for dtype_name in dtypes:
        bf16 = dtype_name == "bf16"
        dtype = torch.bfloat16 if bf16 else torch.float32
        peak = matmul_peak(args.batch, d_in, d_sae, torch.float32, 2)
        l0s: list[float] = []
        contenders = {
            "SAELens SAETrainer.step": sae_lens(sae, args.batch, bf16),
            "ours, sparse step (auto)": ours(copy_sae(sae), "auto", dtype, l0s),
            "ours, dense step": ours(copy_sae(sae), "never", dtype),
        }
        rates = interleaved_rates(contenders, batches, args.warmup, args.steps)
        peak = max(peak, matmul_peak(args.batch, d_in, d_sae, torch.float32, 2))
        base = rates["SAELens SAETrainer.step"]
        for name, rate in rates.items():
            pct = 100 * rate * 5 * 2 * d_in * d_sae / (peak * 1e9)
            print(
                f"{size:8s} {dtype_name:5s} {name:26s} {rate:9.0f} {rate / base:9.2f} {pct:6.0f}%"
            )
        print(
            f"{size:8s} {dtype_name:5s} L0 {statistics.median(l0s):.1f} of {d_sae}; "
            f"fp32 matmul peak {peak:.0f} GFLOP/s; load {os.getloadavg()[0]:.1f}"
        )


def crossover(sae: SAE, batches, densities, steps: int, dtype: torch.dtype) -> None:
    """Seconds of `loss_and_grads` on the sparse and the dense branch, by batch density."""
    x0 = batches[0]
    with torch.no_grad():
        pre = (x0 - sae.b_dec) @ sae.W_enc + sae.b_enc
    for density in densities:
        k = max(1, round(density * len(x0)))
        trial = copy_sae(sae)
        with torch.no_grad():  # shift b_enc so each feature fires on k tokens of the first batch
            trial.b_enc.sub_(pre.topk(k + 1, dim=0).values[-1])
        times = {"always": [], "never": []}
        for i in range(steps + 1):
            for mode in times:
                start = time.perf_counter()
                out = loss_and_grads(trial, batches[i % len(batches)], None, dtype, mode)
                if i:
                    times[mode].append(time.perf_counter() - start)
        got = float((out.feature_acts > 0).float().mean())
        sparse_s, dense_s = (statistics.median(times[m]) for m in ("always", "never"))
        print(
            f"  density {got:7.4f} (L0 {got * sae.cfg.d_sae:7.1f}): sparse {sparse_s:6.3f} s, "
            f"dense {dense_s:6.3f} s, sparse/dense {sparse_s / dense_s:5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["mini", "gelu-1l"])
    parser.add_argument("--dtypes", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per contender")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    parser.add_argument("--l0", type=float, default=80.0, help="target L0 of the gelu-1l size")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--crossover", action="store_true", help="time both branches by density")
    parser.add_argument(
        "--densities", nargs="+", type=float, default=[0.005, 0.01, 0.02, 0.04, 0.08]
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{describe_cpu()}; torch {torch.__version__}; load {os.getloadavg()}")
    for size in args.sizes:
        d_in, d_sae = SIZES[size]
        n = 3
        if size == "mini":
            sae, batches = mini_state(args.batch, n)
        else:
            sae, batches = sparse_state(d_in, d_sae, args.batch, n, args.l0)
        sae = contiguous(sae)
        if args.crossover:
            for name in args.dtypes:
                if name == "bf16" and not native_bf16():
                    continue
                dtype = torch.bfloat16 if name == "bf16" else torch.float32
                print(f"{size} {name}: step seconds by batch density (sparse vs dense branch)")
                crossover(sae, batches, args.densities, max(1, args.steps // 2), dtype)
            continue
        head = f"{'size':8s} {'dtype':5s} {'contender':26s} {'tokens/s':>9s} {'x SAELens':>9s}"
        print(f"{head} {'% peak':>7s}")
        compare(size, sae, batches, args)
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
