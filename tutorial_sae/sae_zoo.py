"""Train and ship the mini model's SAEs: `python -m tutorial_sae.sae_zoo build` (chapters 3-4).

Three SAEs on `blocks.0.mlp.hook_post`: `run1` (8x expansion, the mini run1 of chapter 3) and
`x2`, `x4` (2x and 4x) for feature splitting in chapter 4. Each is seeded and checkpointed in the
user cache, so `build --resume` continues an interrupted build to the same weights. The package
gets fp16 weights (about 15 MB for all three) plus `metrics.json` with the training time and the
held-out scores.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from tutorial_sae import corpus
from tutorial_sae.evaluation import evaluate_sae
from tutorial_sae.loading import load_tokens
from tutorial_sae.metrics import feature_density, log10_density
from tutorial_sae.model import assets_dir, load_mini_model
from tutorial_sae.sae import SAE, SAEConfig
from tutorial_sae.train import TrainConfig, TrainResult, train_sae
from tutorial_sae.utils import atomic_write_bytes

D_MLP = 512
# The Arabic share (15%) of the mixture caps this near 3.9M tokens of the train split.
TRAIN_TOKENS = 3_000_000
EVAL_TOKENS = 65_536
# run1 mirrors Nanda's run1 (seed 49, batch 4096, Adam (0.9, 0.99), 8x, resampling); lr, step
# count and windows are scaled to a CPU budget of about ten minutes per SAE.
RUN1 = TrainConfig(
    sae=SAEConfig(d_in=D_MLP, d_sae=8 * D_MLP, l1_coeff=1.3, seed=49),
    n_steps=1_000,
    batch_size=2048,
    lr=1e-3,
    dead_features="resample",
    dead_window=250,
    resample_every=250,
    resample_stop=750,
    matmul_dtype="bfloat16",
    buffer_batches=16,
    checkpoint_every=200,
    seed=49,
)
MINI_SAES: dict[str, TrainConfig] = {
    "run1": RUN1,
    "x4": replace(RUN1, sae=replace(RUN1.sae, d_sae=4 * D_MLP)),
    "x2": replace(RUN1, sae=replace(RUN1.sae, d_sae=2 * D_MLP)),
}


def saes_dir() -> Path:
    """Where the shipped mini SAEs live: one folder per name (read by `loading.load_sae`)."""
    return assets_dir() / "saes"


def model_fingerprint(model) -> str:
    """A short hash of the model's weights: checkpoints of SAEs on another model never resume."""
    digest = hashlib.sha256()
    for name, param in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(param.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:12]


def work_dir(name: str, model) -> Path:
    """Cache folder for one SAE's checkpoints on this model (never inside the repository)."""
    return corpus.cache_root() / "sae-build" / f"{model_fingerprint(model)}-{name}"


def save_fp16(sae: SAE, folder: Path) -> Path:
    """Write `sae` with fp16 weights (half the size; `SAE.load` returns fp32)."""
    small = copy.deepcopy(sae).to("cpu", torch.float16)
    small.save(folder)
    for name in os.listdir(folder):
        # Temporary files are created owner-only; shipped assets must be readable by everyone.
        os.chmod(folder / name, 0o644)
    return folder


def density_histogram(
    density: torch.Tensor, bins: int = 24, low: float = -10.0
) -> dict[str, list[float]]:
    """Counts of log10 feature density in equal bins from `low` (dead) to 0."""
    log_d = log10_density(density).clamp(low, 0).double()
    counts = torch.histc(log_d, bins=bins, min=low, max=0.0)
    edges = torch.linspace(low, 0.0, bins + 1)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


@torch.no_grad()
def eval_density(model, sae: SAE, tokens: torch.Tensor, hook: str) -> torch.Tensor:
    """Firing frequency of every feature over `tokens` at `hook`."""
    from tutorial_sae.activations import collect_activations

    acts = collect_activations(model, tokens, hook, progress=False)
    return feature_density(sae.encode(acts.reshape(-1, acts.shape[-1]).to(sae.W_enc.device)))


def build_one(
    name: str,
    model,
    train_tokens: torch.Tensor,
    eval_tokens: torch.Tensor,
    resume: bool,
    out_dir: Path,
    n_steps: int | None = None,
    progress: bool = True,
) -> dict:
    """Train (or resume) one SAE, ship it as fp16 and write its metrics.json; returns them."""
    cfg = MINI_SAES[name] if n_steps is None else replace(MINI_SAES[name], n_steps=n_steps)
    ckpt_dir = work_dir(name, model)
    result: TrainResult = train_sae(
        model, cfg, train_tokens, progress=progress, checkpoint_dir=ckpt_dir, resume=resume
    )
    folder = save_fp16(result.sae, out_dir / name)
    shipped = SAE.load(folder)
    scores = evaluate_sae(model, shipped, eval_tokens, cfg.hook, progress=False)
    density = eval_density(model, shipped, eval_tokens, cfg.hook)
    metrics = {
        "name": f"mini/{name}",
        "train_seconds": round(result.seconds, 1),
        "train_tokens": result.n_tokens,
        "tokens_per_second": round(result.tokens_per_second),
        "torch_threads": torch.get_num_threads(),
        "eval": scores.as_dict(),
        "log10_density_histogram": density_histogram(density),
        "final_train_log": {k: v[-1] for k, v in asdict(result.log).items() if v},
        "train_config": json.loads(json.dumps(asdict(cfg))),
        "build": "python -m tutorial_sae.sae_zoo build",
    }
    atomic_write_bytes(folder / "metrics.json", (json.dumps(metrics, indent=1) + "\n").encode())
    os.chmod(folder / "metrics.json", 0o644)
    return metrics


def build(
    names: list[str],
    resume: bool,
    model_folder: Path | None = None,
    out_dir: Path | None = None,
    train_tokens: int = TRAIN_TOKENS,
    n_steps: int | None = None,
) -> dict[str, dict]:
    """Build each named SAE in turn (`n_steps` overrides the configs'); prints one line each."""
    model = load_mini_model("cpu", model_folder)
    tokens = load_tokens("mini", "train", train_tokens, tokenizer=model.tokenizer)
    eval_tokens = load_tokens("mini", "eval", EVAL_TOKENS, tokenizer=model.tokenizer)
    out_dir = saes_dir() if out_dir is None else out_dir
    results = {}
    for name in names:
        start = time.perf_counter()
        m = build_one(name, model, tokens, eval_tokens, resume, out_dir, n_steps)
        e = m["eval"]
        print(
            f"mini/{name}: trained {m['train_tokens']:,} tokens in {m['train_seconds']:.0f} s "
            f"({m['tokens_per_second']:,} tokens/s); eval L0 {e['l0']:.1f}, "
            f"explained variance {e['explained_variance']:.1%}, CE recovered "
            f"{e['ce_loss_recovered']:.1%}, dead {e['dead_fraction']:.1%} "
            f"[{time.perf_counter() - start:.0f} s with evaluation]"
        )
        results[name] = m
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tutorial_sae.sae_zoo", description=__doc__)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("build", help="train the mini SAEs and write them to the package")
    cmd.add_argument("--resume", action="store_true", help="continue from the last checkpoints")
    cmd.add_argument("--only", nargs="+", choices=sorted(MINI_SAES), default=list(MINI_SAES))
    cmd.add_argument("--model-folder", type=Path, default=None, help="mini model to use")
    cmd.add_argument("--out", type=Path, default=None, help="folder for the SAE folders")
    cmd.add_argument("--train-tokens", type=int, default=TRAIN_TOKENS)
    cmd.add_argument("--steps", type=int, default=None, help="override the configs' n_steps")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    build(args.only, args.resume, args.model_folder, args.out, args.train_tokens, args.steps)


if __name__ == "__main__":
    main()
