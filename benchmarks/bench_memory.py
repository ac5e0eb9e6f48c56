"""Peak memory (RSS) of `train_sae` against a bound computed from the config, per buffer size.

    .venv/bin/python benchmarks/bench_memory.py [--size gelu-1l] [--batch 1024]
        [--buffer-batches 8 32]

Each buffer size runs in its own process: the model (random, of the size's shape) and token
ids are made, one tiny training run warms up the libraries, the resident set is read (the
baseline), then `train_sae` runs the named config for `--steps` steps (default: enough for a
second refill, after Adam's moments exist) and the process's peak RSS since the baseline is
read (VmHWM, reset at the baseline; `getrusage`'s lifetime peak where it cannot be reset).
Peak - baseline grows by one buffer per buffer while the step's workspace dominates the peak
and by two once a refill does (its staging tensor and the shuffled copy), and stays below
`memory_bound`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

F32 = 4
MiB = 2**20
SLACK = 64 * MiB  # allocator rounding, the trainer's small tensors, the SAE's init temporaries


def memory_bound(
    d_in: int,
    d_sae: int,
    batch: int,
    buffer_batches: int,
    model_batch: int,
    seq_len: int,
    d_model: int,
    n_heads: int,
) -> dict[str, int]:
    """Bytes above the baseline (model and libraries loaded) that training may hold at once.

    - params: W_enc, W_dec, b_enc, b_dec, their gradients and Adam's two moments (4 copies);
    - buffer: `ActivationStream` holds `rows` = buffer_batches * batch (+ one model batch of
      overshoot) activations; a refill holds two (the staging tensor and the shuffled copy);
    - forward: one model batch's forward to the hook (residual, attention scores, MLP);
    - step: the step's batch x d_sae tensors (pre-activations/f, the gradient through f, and
      two for the ghost/sparse branches), the decoder projection's d_sae x d_in temporaries and
      a few batch x d_in tensors (x - b_dec, x_hat, the error, its gradient).
    The trainer drops the last step's tensors before a refill, so the peak is the larger of a
    refill (two buffers + forward) and a step (one buffer + step), plus params and SLACK.
    """
    n_params = 2 * d_in * d_sae + d_sae + d_in
    rows = buffer_batches * batch + model_batch * seq_len
    tokens = model_batch * seq_len
    parts = {
        "params": 4 * n_params * F32,
        "buffer": rows * d_in * F32,
        "forward": tokens * (4 * d_in + 8 * d_model + 3 * n_heads * seq_len) * F32,
        "step": (4 * batch * d_sae + 2 * d_sae * d_in + 4 * batch * d_in) * F32,
    }
    refill = 2 * parts["buffer"] + parts["forward"]
    step = parts["buffer"] + parts["step"]
    parts["bound"] = parts["params"] + max(refill, step) + SLACK
    return parts


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> bool:
    """Start the kernel's peak-RSS count (VmHWM) afresh at the current RSS (Linux >= 4.0), so an
    earlier peak (imports, the warm-up) is not mistaken for training's. False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_bytes(reset_worked: bool) -> int:
    """The peak RSS since `_reset_peak`, or over the process's life where it could not reset."""
    if reset_worked:
        return _status_bytes("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def child(args) -> dict:
    """Measurements in this process (run by `measure` in a fresh one), one per buffer size.

    Several sizes in one process must come in increasing order: the peak only ever grows.
    """
    import torch

    torch.set_num_threads(1)
    from tutorial_sae.core.sae import SAEConfig
    from tutorial_sae.training.trainer import TrainConfig, train_sae

    model = _table_model(args) if args.table_model else _transformer(args)
    most = max(args.buffer_batches)
    n_seq = (most + _steps(args, most) + 1) * args.batch // args.seq_len + args.model_batch
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, args.vocab, (n_seq, args.seq_len), generator=gen)

    def cfg(d_sae: int, batch: int, buffer_batches: int, steps: int) -> TrainConfig:
        return TrainConfig(
            sae=SAEConfig(d_in=args.d_in, d_sae=d_sae, l1_coeff=1.0, seed=0),
            n_steps=steps,
            batch_size=batch,
            dead_features="none",
            matmul_dtype="float32",
            buffer_batches=buffer_batches,
            model_batch_size=args.model_batch,
            log_every=10**9,
            checkpoint_every=10**9,
            device="cpu",
        )

    # warm-up: the first forward and step load kernels and grow the allocator's pools
    train_sae(model, cfg(64, args.seq_len, 2, 2), tokens, progress=False)
    reset = _reset_peak()
    baseline, peaks = _status_bytes("VmRSS"), []
    for k in args.buffer_batches:
        train_sae(model, cfg(args.d_sae, args.batch, k, _steps(args, k)), tokens, progress=False)
        peaks.append(_peak_bytes(reset))
    return {"baseline": baseline, "peaks": peaks, "peak_since_baseline": reset}


def _steps(args, buffer_batches: int) -> int:
    """--steps, or by default enough for a second refill (the first comes before Adam's moments
    exist, so only the second shows the steady state: params, moments and two buffers)."""
    return args.steps or buffer_batches // 2 + 2


def _transformer(args):
    """A randomly initialised 1-layer GELU HookedTransformer of the benchmark's shape."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=args.d_model,
        d_head=args.d_model // args.n_heads,
        n_heads=args.n_heads,
        d_mlp=args.d_in,
        d_vocab=args.vocab,
        n_ctx=args.seq_len,
        act_fn="gelu",
        normalization_type="LN",
        device="cpu",
        seed=0,
    )
    return HookedTransformer(cfg)


def _table_model(args):
    """A stand-in with the three things `run_to_hook` uses (cfg, hook_dict, run_with_hooks):
    the hook sees a lookup of d_in-wide rows per token. For the test of the bound, which is
    about the trainer and its buffer: it spares the seconds transformer_lens takes to import.
    """
    import types

    import torch

    from tutorial_sae.data.activations import DEFAULT_HOOK

    table = torch.randn(args.vocab, args.d_in, generator=torch.Generator().manual_seed(0))
    cfg = types.SimpleNamespace(d_vocab=args.vocab, n_ctx=args.seq_len, device="cpu")

    def run_with_hooks(tokens, fwd_hooks):
        for _, hook_fn in fwd_hooks:
            hook_fn(torch.nn.functional.gelu(table[tokens]), hook=None)

    return types.SimpleNamespace(
        cfg=cfg,
        hook_dict={DEFAULT_HOOK: None},
        run_with_hooks=run_with_hooks,
        reset_hooks=lambda: None,
    )


def measure(args, buffer_batches: list[int]) -> dict:
    """Run `child` in a fresh process (its peak RSS is its own) and return its numbers."""
    cmd = [sys.executable, __file__, "--child", "--buffer-batches", *map(str, buffer_batches)]
    for name in ("d_in", "d_sae", "batch", "model_batch", "seq_len", "d_model", "n_heads"):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    cmd += ["--vocab", str(args.vocab), "--steps", str(args.steps or 0)]
    if getattr(args, "table_model", False):
        cmd.append("--table-model")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"the measuring process failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


SIZES = {
    # d_in (= d_mlp), d_sae, d_model, n_heads, vocab
    "gelu-1l": (2048, 16384, 512, 8, 48_262),
    "mini": (512, 4096, 128, 4, 4096),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="gelu-1l")
    parser.add_argument("--buffer-batches", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--model-batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=0, help="default: buffer_batches // 2 + 2")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--table-model", action="store_true", help=argparse.SUPPRESS)
    for name in ("--d-in", "--d-sae", "--d-model", "--n-heads", "--vocab"):
        parser.add_argument(name, type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    d_in, d_sae, d_model, n_heads, vocab = SIZES[args.size]
    for name, value in zip(
        ("d_in", "d_sae", "d_model", "n_heads", "vocab"),
        (d_in, d_sae, d_model, n_heads, vocab),
        strict=True,
    ):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.child:
        print(json.dumps(child(args)))
        return
    print(
        f"{args.size}: d_in {args.d_in}, d_sae {args.d_sae}, batch {args.batch}, model batch "
        f"{args.model_batch} x {args.seq_len}, steps {args.steps or 'buffer_batches // 2 + 2'}, "
        f"fp32, load {os.getloadavg()}"
    )
    print(
        f"{'buffer':>12s} {'buffer':>7s} {'baseline':>9s} {'peak':>9s} {'peak-base':>9s} "
        f"{'bound':>9s}  (MiB)"
    )
    for k in args.buffer_batches:
        got = measure(args, [k])
        got["peak"] = got["peaks"][0]
        b = memory_bound(
            args.d_in,
            args.d_sae,
            args.batch,
            k,
            args.model_batch,
            args.seq_len,
            args.d_model,
            args.n_heads,
        )
        grow = got["peak"] - got["baseline"]
        print(
            f"{k:4d} batches {b['buffer'] / MiB:7.0f} {got['baseline'] / MiB:9.0f} "
            f"{got['peak'] / MiB:9.0f} {grow / MiB:9.0f} {b['bound'] / MiB:9.0f}"
            f"  {'within' if grow <= b['bound'] else 'ABOVE'} the bound"
        )
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
