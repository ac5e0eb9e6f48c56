"""Train and ship the fact model of chapter 8 and its SAE: `python -m tutorial_sae.build.fact_model`.

Deterministic on a CPU with one thread: the same command writes the same bytes (the script
prints the sha256 of the weights). Steps: train the model on the fact world; trace 50 facts
to find the MLP layer with the largest indirect effect at the last subject token (the edit
layer); train an SAE on that layer's `mlp.hook_post`; write everything into assets/facts/.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
from pathlib import Path

import torch

from tutorial_sae.analysis.tracing import average_traces, subject_noise_std, trace_prompts
from tutorial_sae.core.sae import SAEConfig
from tutorial_sae.data.facts import FactWorld, FactWorldConfig, key_tokens
from tutorial_sae.models.facts import FactModelConfig, facts_dir, save_fact_model
from tutorial_sae.training.lm import LMTrainConfig, train_fact_model
from tutorial_sae.training.trainer import TrainConfig, train_sae_on

WORLD = FactWorldConfig()
MODEL = FactModelConfig(local_window=2)
TRAIN = LMTrainConfig(n_steps=1400, batch_size=128, profiles=64)
SAE_TRAIN = TrainConfig(
    sae=SAEConfig(d_in=MODEL.d_mlp, d_sae=1024, l1_coeff=3.0, seed=0),
    n_steps=1000,
    batch_size=256,
    lr=1e-3,
    dead_features="resample",
    resample_every=300,
    resample_stop=700,
    backward="manual",
    matmul_dtype="float32",
)


def edit_layer(model, world: FactWorld, n_facts: int = 50) -> tuple[int, list[float]]:
    """The MLP layer with the largest mean indirect effect at the last subject token."""
    std = subject_noise_std(model, world)
    rng = random.Random(0)
    facts = rng.sample(range(len(world.subjects) * len(world.relations)), n_facts)
    prompts = [world.prompt(f // len(world.relations), f % len(world.relations)) for f in facts]
    avg = average_traces(trace_prompts(model, prompts, std))
    effects = avg.indirect["mlp"][:, 1].tolist()
    return max(range(len(effects)), key=effects.__getitem__), effects


def ship(fact_model, record: dict, folder: Path) -> None:
    """Pick the edit layer by tracing, train the SAE there, write model + SAE into `folder`."""
    model, world = fact_model.model, fact_model.world
    layer, effects = edit_layer(model, world)
    print(f"edit layer {layer} (MLP indirect effects at the last subject token {effects})")
    hook = f"blocks.{layer}.mlp.hook_post"
    tokens = key_tokens(world)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=hook, stop_at_layer=layer + 1)
    sae_run = train_sae_on(cache[hook][tokens != world.tokenizer.pad_id], SAE_TRAIN, progress=False)
    fact_model.edit_layer = layer
    extra = {"edit_layer": layer, "mlp_effects_last_subject": effects, **record}
    extra["sae_seconds"] = sae_run.seconds
    save_fact_model(fact_model, folder, extra)
    # float16 halves the SAE's file (the package ships <= 5 MB); SAE.load reads it as float32.
    sae_run.sae.half().save(folder / "sae")
    for path in folder.rglob("*.*"):
        path.chmod(0o644)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=TRAIN.n_steps)
    parser.add_argument("--out", type=Path, default=facts_dir(), help="default: assets/facts")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()
    world = FactWorld(WORLD)
    train = LMTrainConfig(**{**TRAIN.__dict__, "n_steps": args.steps})
    result = train_fact_model(world, MODEL, train)
    print(f"accuracy train {result.train_accuracy:.4f} held-out {result.held_out_accuracy:.4f}")
    ship(
        result.fact_model,
        {
            "train": {**train.__dict__},
            "train_accuracy": result.train_accuracy,
            "held_out_accuracy": result.held_out_accuracy,
            "final_loss": result.losses[-1],
            "train_seconds": result.seconds,
        },
        args.out,
    )
    folder = args.out
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    print(f"wrote {folder} in {time.perf_counter() - start:.0f}s; model sha256 {digest}")


if __name__ == "__main__":
    main()
