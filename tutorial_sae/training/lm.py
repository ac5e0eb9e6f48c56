"""Train the fact model of chapter 8 on its fact world (used by build/fact_model.py and tests).

The loss is the cross-entropy of the object token only: the filler prefixes are random and the
templates carry no information the model needs. Deterministic on the CPU for a given seed.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import torch

from tutorial_sae.data.facts import FactWorld, batch_prompts, profile_batch, sample_prompts
from tutorial_sae.models.facts import FactModel, FactModelConfig, build_fact_model


@dataclass(frozen=True)
class LMTrainConfig:
    """AdamW with warm-up and cosine decay; batches of random (subject, relation, frame, prefix)."""

    n_steps: int = 3000
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: int = 100
    seed: int = 0
    log_every: int = 100
    profiles: int = 0  # profile sequences per batch besides the questions (see profile_batch)


@dataclass
class LMTrainResult:
    """The trained model, its loss curve and accuracies, and the wall time."""

    fact_model: FactModel
    losses: list[float] = field(default_factory=list)
    train_accuracy: float = 0.0
    held_out_accuracy: float = 0.0
    seconds: float = 0.0


def sample_batch(world: FactWorld, rng: random.Random, n: int):
    """n random training prompts: (tokens [n, pos], last index [n], targets [n])."""
    return batch_prompts(sample_prompts(world, rng, n))


def object_logits(model, tokens, last):
    """Logits at each prompt's last token, [n, d_vocab]."""
    logits = model(tokens, return_type="logits")
    return logits[torch.arange(len(last)), last]


@torch.no_grad()
def fact_accuracy(model, world: FactWorld, split: str = "train", subjects=None) -> float:
    """Top-1 accuracy of the object over every (subject, relation, frame of `split`), no prefix."""
    subjects = range(len(world.subjects)) if subjects is None else subjects
    prompts = [
        world.prompt(s, r, f)
        for s in subjects
        for r in range(len(world.relations))
        for f in world.frames(r, split)
    ]
    correct = 0
    for i in range(0, len(prompts), 1024):
        tokens, last, targets = batch_prompts(prompts[i : i + 1024])
        correct += int((object_logits(model, tokens, last).argmax(-1) == targets).sum())
    return correct / len(prompts)


def train_fact_model(
    world: FactWorld, model_cfg: FactModelConfig, cfg: LMTrainConfig, progress: bool = True
) -> LMTrainResult:
    """Train a fresh fact model on `world`'s training frames; evaluate both splits."""
    start = time.perf_counter()
    model = build_fact_model(model_cfg, len(world.tokenizer))
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "W_" in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "W_" in n)]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )

    def schedule(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        progress_ = (step - cfg.warmup) / max(1, cfg.n_steps - cfg.warmup)
        return 0.5 * (1 + torch.cos(torch.tensor(torch.pi * progress_)).item())

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    result = LMTrainResult(FactModel(model, world, model_cfg))
    model.train()
    for step in range(cfg.n_steps):
        tokens, last, targets = sample_batch(world, rng, cfg.batch_size)
        loss = torch.nn.functional.cross_entropy(object_logits(model, tokens, last), targets)
        if cfg.profiles:
            tokens, where, objects = profile_batch(world, rng, cfg.profiles)
            logits = model(tokens, return_type="logits")
            picked = logits[torch.arange(cfg.profiles)[:, None], where]
            loss = loss + torch.nn.functional.cross_entropy(picked.flatten(0, 1), objects.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        result.losses.append(loss.item())
        if progress and (step % cfg.log_every == 0 or step == cfg.n_steps - 1):
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.perf_counter() - start:.0f}s")
    model.eval()
    result.train_accuracy = fact_accuracy(model, world, "train")
    result.held_out_accuracy = fact_accuracy(model, world, "held_out")
    result.seconds = time.perf_counter() - start
    return result
