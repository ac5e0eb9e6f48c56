"""Train chapter 3's precomputed runs: `python -m tutorial_sae.build.sweeps build`.

One short SAE per l1_coeff in `presets.L1_VALUES` (-> `assets/mini/l1_sweep.json`) and one per
dead-feature method (-> `assets/mini/dead_features.json`), all from one seed on the mini model.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from tutorial_sae.analysis.sweeps import (
    DEAD_FILE,
    SWEEP_FILE,
    default_path,
    run_dead_feature_comparison,
    run_l1_sweep,
    save_json,
)
from tutorial_sae.models.loading import load_tokens
from tutorial_sae.models.mini import load_mini_model
from tutorial_sae.training.presets import BASE, DEAD_BASE

TRAIN_TOKENS = 1_048_576
EVAL_TOKENS = 16_384


def build(what: tuple[str, ...], n_steps: int, out_dir: Path, model_folder: Path | None) -> None:
    """Train and write the requested files, printing one line per file."""
    model = load_mini_model("cpu", model_folder)
    train = load_tokens("mini", "train", TRAIN_TOKENS, tokenizer=model.tokenizer)
    held_out = load_tokens("mini", "eval", EVAL_TOKENS, tokenizer=model.tokenizer)
    base = replace(BASE, n_steps=n_steps)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "sweep" in what:
        start = time.perf_counter()
        sweep = run_l1_sweep(model, train, held_out, base=base)
        path = save_json(sweep, out_dir / SWEEP_FILE)
        print(f"wrote {path} in {time.perf_counter() - start:.0f} s")
        for p in sweep.points:
            print(
                f"  l1 {p.l1_coeff:<5} L0 {p.l0:7.1f}  EV {p.explained_variance:6.1%}  "
                f"CE rec {p.ce_loss_recovered:6.1%}  dead {p.dead_fraction:6.1%}  "
                f"dense {p.dense_fraction:6.1%}"
            )
    if "dead" in what:
        start = time.perf_counter()
        dead_base = replace(DEAD_BASE, n_steps=n_steps)
        comparison = run_dead_feature_comparison(model, train, held_out, base=dead_base)
        path = save_json(comparison, out_dir / DEAD_FILE)
        print(f"wrote {path} in {time.perf_counter() - start:.0f} s")
        for name, run in comparison.runs.items():
            f = run.final
            print(
                f"  {name:<8} L0 {f['l0']:7.1f}  EV {f['explained_variance']:6.1%}  CE rec "
                f"{f['ce_loss_recovered']:6.1%}  dead {f['dead_fraction']:6.1%}  "
                f"train-log dead {run.log['dead_fraction'][-1]:6.1%}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_sae.build.sweeps", description=__doc__
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("build", help="train the sweep and comparison SAEs, write JSON")
    cmd.add_argument("--only", nargs="+", choices=("sweep", "dead"), default=["sweep", "dead"])
    cmd.add_argument("--steps", type=int, default=BASE.n_steps, help="training steps per SAE")
    cmd.add_argument("--out", type=Path, default=default_path(""), help="folder for the JSON")
    cmd.add_argument("--model-folder", type=Path, default=None, help="mini model to use")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    build(tuple(args.only), args.steps, args.out, args.model_folder)


if __name__ == "__main__":
    main()
