"""Tokens/s of training an SAE from token ids: ours (`train_sae`) against SAELens 6 end to end.

Run in the bench environment (see bench_train_step.py for how to make it):
    .venv-bench/bin/python benchmarks/bench_end_to_end.py [--sizes mini gelu-1l] [--steps 8]

Both contenders start from the same `HookedTransformer` object and the same token ids, hook
`blocks.0.mlp.hook_post`, and train a fresh SAE of the same size with the same batch, the same
buffer (in tokens), the same model batch (sequences per forward), fp32, for the same number of
steps: ours is `train_sae` (its `ActivationStream`: forward stopped at the hook, a shuffled
buffer refilled when half drained, the hand-written step); SAELens's is its own
`ActivationsStore` (tokens given as an in-memory dataset, no download) feeding `SAETrainer.fit`.
The clock runs from token ids to the trained SAE (SAE set-up, buffer fills and all steps).
Runs take turns (the order flips every repeat) and the median of the repeats is reported.
Then one more run of ours is split into activation making (the model's forward to the hook),
buffer (storing and shuffling) and step, and profiled.

Start (`--start`): "init" trains a fresh SAE (seed 49, the first steps of a run: the code is
dense, about half the features fire on each token); "trained" starts both contenders from the
same SAE with a trained SAE's sparsity (the rest of a run, where a trainer spends most of its
steps): for mini the shipped mini/run1 (L0 ~31 of 4096); for gelu-1l an SAE whose encoder biases
are set on a calibration batch of the model's own activations so that each feature fires on
`--l0`/16384 of it (as bench_sparse_step.py does). SAELens's step costs the same in both (its
autograd step is dense whatever the code); ours takes its sparse branch where the batch is
sparse enough (`core/sparse_step.py`).

Sizes: "mini" is the shipped mini model (d_mlp 512, SAE 4096) on its own corpus; "gelu-1l" is a
randomly initialised model of gelu-1l's shape (d_model 512, d_mlp 2048, SAE 16384; built here,
nothing downloaded) on random token ids, batch 1024 by default (a step of that size takes ~10 s at
4096 on a busy 2-core machine; --batch sets both sizes' batch). Not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import io
import os
import platform
import pstats
import statistics
import time
import warnings

import torch

SIZES = {"mini": (512, 4096), "gelu-1l": (2048, 16384)}
# Default batch per size: a gelu-1l-sized step takes ~10 s at 4096 on a busy 2-core machine, so
# its default is 1024 (tokens/s and the ratio barely depend on it; pass --batch 4096 to check).
BATCH = {"mini": 4096, "gelu-1l": 1024}
SEQ_LEN = 128
L1_PER_TOKEN = 1.23  # Nanda's run1 3e-4 summed over a batch of 4096
GELU_1L_VOCAB = 48_262  # gelu-1l's vocabulary: the embeddings cost memory, never time here


def machine_facts() -> str:
    """CPU model, native bf16 (AVX-512-BF16 or AMX in the CPU flags), torch threads, load."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    native = sorted(flags & {"avx512_bf16", "amx_bf16", "amx_tile"})
    bf16 = f"yes ({', '.join(native)})" if native else "no (emulated)"
    return (
        f"CPU: {model}, {os.cpu_count()} logical cores; native bf16: {bf16}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def build_model(size: str):
    """The HookedTransformer both contenders share."""
    if size == "mini":
        import tutorial_sae as ts

        return ts.load_model("mini", device="cpu")
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=512,
        d_head=64,
        n_heads=8,
        d_mlp=2048,
        d_vocab=GELU_1L_VOCAB,
        n_ctx=1024,
        act_fn="gelu",
        normalization_type="LN",
        device="cpu",
        seed=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HookedTransformer(cfg)


def make_tokens(size: str, model, n_seq: int) -> torch.Tensor:
    """`n_seq` rows of SEQ_LEN ids, each starting with BOS: the mini corpus, or random ids."""
    if size == "mini":
        import tutorial_sae as ts

        return ts.load_tokens("mini", "train", n_seq * SEQ_LEN, tokenizer=model.tokenizer)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, model.cfg.d_vocab, (n_seq, SEQ_LEN), generator=gen)
    tokens[:, 0] = 0
    return tokens


def our_config(d_in: int, d_sae: int, args):
    from tutorial_sae.core.sae import SAEConfig
    from tutorial_sae.training.trainer import TrainConfig

    return TrainConfig(
        sae=SAEConfig(d_in=d_in, d_sae=d_sae, l1_coeff=L1_PER_TOKEN, seed=49),
        n_steps=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        dead_features="none",  # SAELens 6 has no ghost grads; no feature is dead this early
        matmul_dtype="float32",
        buffer_batches=args.buffer_batches,
        model_batch_size=args.model_batch,
        log_every=args.log_every or 10**9,
        checkpoint_every=10**9,
        device="cpu",
    )


def start_state(size: str, model, tokens: torch.Tensor, d_in: int, d_sae: int, args):
    """The SAE both contenders start from with `--start trained` (None with `--start init`)."""
    if args.start == "init":
        return None
    import tutorial_sae as ts
    from tutorial_sae.core.sae import SAE, SAEConfig

    if size == "mini":
        sae = ts.load_sae("mini/run1", device="cpu")
    else:
        sae = SAE(SAEConfig(d_in=d_in, d_sae=d_sae, l1_coeff=L1_PER_TOKEN, seed=49))
        calib = ts.collect_activations(model, tokens[-32:], progress=False).flatten(0, 1)
        with torch.no_grad():
            sae.b_dec.copy_(calib.mean(0))
            pre = (calib - sae.b_dec) @ sae.W_enc
            k = max(1, round(args.l0 / d_sae * len(calib)))
            sae.b_enc.copy_(-pre.topk(k + 1, dim=0).values[-1])  # k tokens above threshold
    if (sae.cfg.d_in, sae.cfg.d_sae) != (d_in, d_sae):
        raise ValueError(f"{size}: expected a {d_in}/{d_sae} SAE, got {sae.cfg}")
    return {k: v.detach().clone().contiguous() for k, v in sae.state_dict().items()}


def run_ours(model, tokens, d_in: int, d_sae: int, args, start_from=None) -> float:
    """Seconds of `train_sae` from token ids to the trained SAE (L0 of its last step kept)."""
    from tutorial_sae.core.sae import SAE
    from tutorial_sae.training.trainer import train_sae

    cfg = our_config(d_in, d_sae, args)
    start = time.perf_counter()
    sae = None
    if start_from is not None:
        sae = SAE(cfg.sae)
        sae.load_state_dict(start_from)
    result = train_sae(model, cfg, tokens, sae=sae, progress=False)
    seconds = time.perf_counter() - start
    assert result.n_tokens == args.steps * args.batch
    LAST_L0["ours"] = result.log.l0[-1]
    LAST_L0["trajectory"] = list(zip(result.log.step, result.log.l0, strict=True))
    return seconds


LAST_L0: dict[str, float] = {}


def run_saelens(model, dataset, d_in: int, d_sae: int, args, start_from=None) -> float:
    """Seconds of SAELens's ActivationsStore + SAETrainer.fit on the same model and tokens."""
    from sae_lens import SAETrainer, StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.activations_store import ActivationsStore

    n_tokens = args.steps * args.batch
    start = time.perf_counter()
    sae = StandardTrainingSAE(
        StandardTrainingSAEConfig(d_in=d_in, d_sae=d_sae, l1_coefficient=L1_PER_TOKEN)
    )
    if start_from is not None:
        with torch.no_grad():
            for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
                getattr(sae, name).copy_(start_from[name])
    store = ActivationsStore(
        model=model,
        dataset=dataset,
        streaming=False,
        hook_name="blocks.0.mlp.hook_post",
        hook_head_index=None,
        context_size=SEQ_LEN,
        d_in=d_in,
        # SAELens's mixing buffer holds n_batches_in_buffer * context_size tokens
        n_batches_in_buffer=args.buffer_batches * args.batch // SEQ_LEN,
        total_training_tokens=n_tokens,
        store_batch_size_prompts=args.model_batch,
        train_batch_size_tokens=args.batch,
        prepend_bos=False,  # the rows already start with BOS
        normalize_activations="none",
        device=torch.device("cpu"),
        dtype="float32",
    )
    cfg = SAETrainerConfig(
        total_training_samples=n_tokens,
        train_batch_size_samples=args.batch,
        lr=args.lr,
        lr_end=args.lr,
        adam_beta1=0.9,
        adam_beta2=0.99,
        device="cpu",
    )
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=store)
    with _quiet_tqdm():
        trainer.fit()
    return time.perf_counter() - start


@contextlib.contextmanager
def _quiet_tqdm():
    """SAETrainer.fit always draws a progress bar: silence it (ours runs with progress=False)."""
    import sae_lens.training.sae_trainer as module

    real = module.tqdm
    module.tqdm = functools.partial(real, disable=True)
    try:
        yield
    finally:
        module.tqdm = real


def split_ours(
    model, tokens, d_in: int, d_sae: int, args, start_from=None
) -> tuple[dict[str, float], str]:
    """One more run of ours, timed by part (model forward to the hook, buffer, step) and profiled.

    `run_to_hook` (looked up in its module by `ActivationStream._refill`) and
    `ActivationStream.__next__` are wrapped with clocks for this run only.
    """
    from tutorial_sae.data import activations as acts

    clock = {"activations": 0.0, "next": 0.0}
    real_run, real_next = acts.run_to_hook, acts.ActivationStream.__next__

    def timed_run(*a, **k):
        start = time.perf_counter()
        try:
            return real_run(*a, **k)
        finally:
            clock["activations"] += time.perf_counter() - start

    def timed_next(self):
        start = time.perf_counter()
        try:
            return real_next(self)
        finally:
            clock["next"] += time.perf_counter() - start

    acts.run_to_hook, acts.ActivationStream.__next__ = timed_run, timed_next
    try:
        total = run_ours(model, tokens, d_in, d_sae, args, start_from)
        parts = {"total": total, **clock}
        profiler = cProfile.Profile()
        if args.profile:
            profiler.enable()
            half = replace_steps(args, max(2, args.steps // 2))
            run_ours(model, tokens, d_in, d_sae, half, start_from)
            profiler.disable()
    finally:
        acts.run_to_hook, acts.ActivationStream.__next__ = real_run, real_next
    text = io.StringIO()
    if args.profile:
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
    return parts, text.getvalue()


def replace_steps(args, steps: int):
    return argparse.Namespace(**{**vars(args), "steps": steps})


def bench_size(size: str, args) -> None:
    d_in, d_sae = SIZES[size]
    args = argparse.Namespace(**{**vars(args), "batch": args.batch or BATCH[size]})
    model = build_model(size)
    if model.cfg.d_mlp != d_in:
        raise ValueError(f"{size}: expected d_mlp {d_in}, got {model.cfg.d_mlp}")
    # enough rows that neither contender starts a second pass over them
    n_seq = (args.steps + 2 * args.buffer_batches + 2) * args.batch // SEQ_LEN
    tokens = make_tokens(size, model, n_seq)
    from datasets import Dataset

    dataset = Dataset.from_dict({"tokens": tokens.tolist()})
    print(
        f"\n{size}: d_in {d_in}, d_sae {d_sae}, vocab {model.cfg.d_vocab}, batch {args.batch}, "
        f"buffer {args.buffer_batches} batches, {args.model_batch} sequences per forward, "
        f"{args.steps} steps per run, {args.repeats} repeats, load {os.getloadavg()}"
    )
    start_from = start_state(size, model, tokens, d_in, d_sae, args)
    print(f"start: {args.start}" + ("" if start_from is None else " (same weights for both)"))
    if args.split_only:
        return print_split(model, tokens, d_in, d_sae, args, start_from)
    contenders = {
        "SAELens store + SAETrainer.fit": lambda: run_saelens(
            model, dataset, d_in, d_sae, args, start_from
        ),
        "ours, train_sae": lambda: run_ours(model, tokens, d_in, d_sae, args, start_from),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    # warm-up: first-call costs (imports, kernels, the allocator's pools)
    run_ours(model, tokens, d_in, d_sae, replace_steps(args, 1), start_from)
    run_saelens(model, dataset, d_in, d_sae, replace_steps(args, 1), start_from)
    for r in range(args.repeats):
        order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for name in order:
            times[name].append(contenders[name]())
    n_tokens = args.steps * args.batch
    base = n_tokens / statistics.median(times["SAELens store + SAETrainer.fit"])
    print(f"{'contender':32s} {'tokens/s':>9s} {'x SAELens':>9s}  runs (s)")
    for name, t in times.items():
        rate = n_tokens / statistics.median(t)
        runs = " ".join(f"{s:.1f}" for s in t)
        print(f"{name:32s} {rate:9.0f} {rate / base:9.2f}  {runs}")
    print(f"ours: L0 at the last step {LAST_L0['ours']:.1f} of {d_sae}")
    if args.log_every:
        l0s = ", ".join(f"{step}: {l0:.0f}" for step, l0 in LAST_L0["trajectory"])
        print(f"ours: L0 by step (sparse branch at L0 <= {d_sae // 50}): {l0s}")
    if args.split:
        print_split(model, tokens, d_in, d_sae, args, start_from)


def print_split(model, tokens, d_in: int, d_sae: int, args, start_from) -> None:
    parts, profile = split_ours(model, tokens, d_in, d_sae, args, start_from)
    act, buf = parts["activations"], parts["next"] - parts["activations"]
    step = parts["total"] - parts["next"]
    print(f"ours split ({parts['total']:.1f} s, one run):")
    for label, s in (("activation making", act), ("buffer", buf), ("step and bookkeeping", step)):
        print(f"  {label:22s} {s:7.2f} s {100 * s / parts['total']:5.1f}%")
    if args.profile:
        print(f"profile of ours ({max(2, args.steps // 2)} steps, by own time):")
        print("\n".join(line for line in profile.splitlines()[6:] if line.strip()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["mini", "gelu-1l"])
    parser.add_argument("--batch", type=int, default=None, help="default: 4096, gelu-1l 1024")
    parser.add_argument("--steps", type=int, default=8, help="steps per run")
    parser.add_argument("--buffer-batches", type=int, default=4, help="buffer size in batches")
    parser.add_argument("--model-batch", type=int, default=32, help="sequences per forward")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument(
        "--start", choices=["init", "trained"], default="init", help="a fresh or a sparse SAE"
    )
    parser.add_argument("--no-split", dest="split", action="store_false", help="skip the split")
    parser.add_argument("--split-only", action="store_true", help="only split a run of ours")
    parser.add_argument("--log-every", type=int, default=0, help="print ours' L0 every N steps")
    parser.add_argument("--lr", type=float, default=1e-4, help="both contenders' constant lr")
    parser.add_argument("--l0", type=float, default=80.0, help="gelu-1l --start trained: L0")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    print(machine_facts())
    print(f"load average at the start {os.getloadavg()}")
    for size in args.sizes:
        bench_size(size, args)
    print(f"\nload average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
