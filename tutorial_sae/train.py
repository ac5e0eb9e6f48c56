"""Training loop for SAEs on any stream of activations (chapters 2-3)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from tutorial_sae.metrics import explained_variance, l0
from tutorial_sae.sae import SAE, SAEConfig, SAELoss
from tutorial_sae.utils import get_device, set_seed

DeadFeatureMethod = Literal["ghost", "none"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and dead-feature settings. Defaults are CPU-fast; Nanda's run1 used
    batch 4096, lr 1e-4, Adam betas (0.9, 0.99)."""

    sae: SAEConfig = field(default_factory=SAEConfig)
    n_steps: int = 2_000
    batch_size: int = 4096
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    dead_features: DeadFeatureMethod = "ghost"
    dead_window: int = 1000
    log_every: int = 50
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        for name in ("n_steps", "batch_size", "dead_window", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.dead_features not in ("ghost", "none"):
            raise ValueError(f"dead_features must be 'ghost' or 'none', got {self.dead_features!r}")


@dataclass
class TrainLog:
    """Metrics recorded every `log_every` steps, one list entry per record."""

    step: list[int] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)
    l1: list[float] = field(default_factory=list)
    ghost: list[float] = field(default_factory=list)
    l0: list[float] = field(default_factory=list)
    dead_fraction: list[float] = field(default_factory=list)
    explained_variance: list[float] = field(default_factory=list)

    def record(self, step: int, out: SAELoss, x: Tensor, dead_fraction: float) -> None:
        self.step.append(step)
        for name in ("total", "mse", "l1", "ghost"):
            getattr(self, name).append(float(getattr(out, name).detach()))
        self.l0.append(l0(out.feature_acts))
        self.dead_fraction.append(dead_fraction)
        self.explained_variance.append(explained_variance(x, out.x_hat.detach()))


@dataclass
class TrainResult:
    sae: SAE
    log: TrainLog


def train_step(
    sae: SAE, optimizer: torch.optim.Optimizer, x: Tensor, dead_mask: Tensor | None
) -> SAELoss:
    """One plain autograd step: loss, backward, keep decoder norms fixed, update, renormalise."""
    out = sae.loss(x, dead_mask=dead_mask)
    optimizer.zero_grad(set_to_none=True)
    out.total.backward()
    sae.remove_parallel_decoder_grad()
    optimizer.step()
    sae.normalize_decoder()
    return out


def _batches(
    activations: Tensor | Iterable[Tensor], batch_size: int, seed: int
) -> Iterator[Tensor]:
    """Shuffled minibatches forever from a tensor, or the items of an iterable as they come."""
    if not isinstance(activations, Tensor):
        yield from activations
        return
    if activations.ndim != 2:
        raise ValueError(
            f"activations must have shape [n_tokens, d_in], got {tuple(activations.shape)}"
        )
    if activations.shape[0] < batch_size:
        raise ValueError(
            f"need at least batch_size={batch_size} activations, got {activations.shape[0]}"
        )
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(activations.shape[0], generator=gen)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield activations[order[start : start + batch_size]]


def train_sae_on(
    activations: Tensor | Iterable[Tensor],
    cfg: TrainConfig,
    sae: SAE | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train an SAE (new from `cfg.sae`, or the one given) on a tensor or stream of batches.

    Stops after `cfg.n_steps` steps or when an iterable runs out. Dead features (no firing for
    `cfg.dead_window` steps) get the ghost-grad term when `cfg.dead_features == "ghost"`.
    """
    set_seed(cfg.seed)
    device = torch.device(cfg.device) if cfg.device else get_device()
    sae = (sae if sae is not None else SAE(cfg.sae)).to(device)
    optimizer = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=cfg.betas)
    steps_since_fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long, device=device)
    log = TrainLog()
    bar = tqdm(total=cfg.n_steps, desc="training SAE", disable=not progress)
    for step, batch in enumerate(_batches(activations, cfg.batch_size, cfg.seed), start=1):
        x = batch.to(device, torch.float32)
        dead = steps_since_fired >= cfg.dead_window
        out = train_step(sae, optimizer, x, dead if cfg.dead_features == "ghost" else None)
        if not torch.isfinite(out.total):
            raise FloatingPointError(
                f"loss became {float(out.total)} at step {step} (mse={float(out.mse)}, "
                f"l1={float(out.l1)}); try a lower lr (now {cfg.lr}) or check the activations"
            )
        fired = (out.feature_acts > 0).any(0)
        steps_since_fired = torch.where(fired, 0, steps_since_fired + 1)
        if step % cfg.log_every == 0 or step == cfg.n_steps:
            log.record(step, out, x, float(dead.float().mean()))
            bar.set_postfix(mse=f"{log.mse[-1]:.3g}", l0=f"{log.l0[-1]:.1f}")
        bar.update()
        if step >= cfg.n_steps:
            break
    bar.close()
    return TrainResult(sae=sae, log=log)
