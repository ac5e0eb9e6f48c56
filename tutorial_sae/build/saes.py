"""Train and ship the mini model's SAEs: `python -m tutorial_sae.build.saes build` (chapters 3-4).

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

from tutorial_sae.analysis.evaluation import evaluate_sae
from tutorial_sae.core.sae import SAE
from tutorial_sae.models.loading import load_tokens
from tutorial_sae.models.mini import load_mini_model
from tutorial_sae.paths import atomic_write_json, cache_root, mini_sae_dir
from tutorial_sae.training.presets import MINI_SAES
from tutorial_sae.training.trainer import TrainResult, train_sae

BUILD_COMMAND = "python -m tutorial_sae.build.saes build"
# The Arabic share (15%) of the mixture caps this near 3.9M tokens of the train split.
TRAIN_TOKENS = 3_000_000
EVAL_TOKENS = 65_536


def model_fingerprint(model) -> str:
    """A short hash of the model's weights: checkpoints of SAEs on another model never resume."""
    digest = hashlib.sha256()
    for name, param in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(param.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:12]


def work_dir(name: str, model) -> Path:
    """Cache folder for one SAE's checkpoints on this model (never inside the repository)."""
    return cache_root() / "sae-build" / f"{model_fingerprint(model)}-{name}"


def save_fp16(sae: SAE, folder: Path) -> Path:
    """Write `sae` with fp16 weights (half the size; `SAE.load` returns fp32)."""
    small = copy.deepcopy(sae).to("cpu", torch.float16)
    small.save(folder)
    for name in os.listdir(folder):
        # SAE.save writes owner-only temporary files; shipped assets must be readable by all.
        os.chmod(folder / name, 0o644)
    return folder


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
    metrics = {
        "name": f"mini/{name}",
        "train_seconds": round(result.seconds, 1),
        "train_tokens": result.n_tokens,
        "tokens_per_second": round(result.tokens_per_second),
        "torch_threads": torch.get_num_threads(),
        **eval_metrics(model, shipped, eval_tokens, cfg.hook),
        "final_train_log": {k: v[-1] for k, v in asdict(result.log).items() if v},
        "train_config": json.loads(json.dumps(asdict(cfg))),
        "build": BUILD_COMMAND,
    }
    atomic_write_json(folder / "metrics.json", metrics, mode=0o644)
    return metrics


def eval_metrics(model, sae: SAE, eval_tokens: torch.Tensor, hook: str) -> dict:
    """The held-out part of metrics.json: `evaluate_sae`'s scores and density histogram."""
    scores = evaluate_sae(model, sae, eval_tokens, hook, progress=False)
    return {"eval": scores.as_dict(), "density_histogram": asdict(scores.density_histogram())}


def refresh_metrics(names: list[str], model_folder: Path | None = None) -> None:
    """Re-evaluate the shipped SAEs and rewrite only the held-out part of their metrics.json."""
    model = load_mini_model("cpu", model_folder)
    eval_tokens = load_tokens("mini", "eval", EVAL_TOKENS, tokenizer=model.tokenizer)
    for name in names:
        folder = mini_sae_dir() / name
        path = folder / "metrics.json"
        old = json.loads(path.read_text(encoding="utf-8"))
        fresh = eval_metrics(model, SAE.load(folder), eval_tokens, MINI_SAES[name].hook)
        kept = {k: v for k, v in old.items() if k not in ("eval", "log10_density_histogram")}
        kept["build"] = BUILD_COMMAND
        metrics = {**kept, **fresh}
        atomic_write_json(path, metrics, mode=0o644)
        e = fresh["eval"]
        print(
            f"mini/{name}: L0 {e['l0']:.1f}, CE recovered {e['ce_loss_recovered']:.1%} "
            f"(mean ablation {e['ce_loss_recovered_mean_ablation']:.1%}), dead "
            f"{fresh['density_histogram']['dead']} -> {path}"
        )


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
    out_dir = mini_sae_dir() if out_dir is None else out_dir
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
    parser = argparse.ArgumentParser(prog="python -m tutorial_sae.build.saes", description=__doc__)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("build", help="train the mini SAEs and write them to the package")
    cmd.add_argument("--resume", action="store_true", help="continue from the last checkpoints")
    cmd.add_argument("--only", nargs="+", choices=sorted(MINI_SAES), default=list(MINI_SAES))
    cmd.add_argument("--model-folder", type=Path, default=None, help="mini model to use")
    cmd.add_argument("--out", type=Path, default=None, help="folder for the SAE folders")
    cmd.add_argument("--train-tokens", type=int, default=TRAIN_TOKENS)
    cmd.add_argument("--steps", type=int, default=None, help="override the configs' n_steps")
    refresh = commands.add_parser("metrics", help="re-evaluate the shipped SAEs' metrics.json")
    refresh.add_argument("--only", nargs="+", choices=sorted(MINI_SAES), default=list(MINI_SAES))
    refresh.add_argument("--model-folder", type=Path, default=None, help="mini model to use")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command == "metrics":
        refresh_metrics(args.only, args.model_folder)
    else:
        build(args.only, args.resume, args.model_folder, args.out, args.train_tokens, args.steps)


if __name__ == "__main__":
    main()
