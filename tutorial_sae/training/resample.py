"""Reviving dead SAE features by resampling them from badly reconstructed inputs (chapter 3)."""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from tutorial_sae.core.sae import SAE

ENCODER_SCALE = 0.2


@torch.no_grad()
def resample_dead_features(
    sae: SAE,
    optimizer: torch.optim.Optimizer,
    x: Float[Tensor, "batch d_in"],
    dead_mask: Bool[Tensor, " d_sae"],
    generator: torch.Generator | None = None,
) -> int:
    """Re-initialise dead features from inputs the SAE reconstructs badly; returns how many.

    Anthropic's recipe ("Towards Monosemanticity", 2023), used for Nanda's run1: draw inputs with
    probability proportional to their squared reconstruction loss; each dead feature's decoder
    direction becomes a drawn input, normalised (here centred by b_dec first, because the encoder
    reads x - b_dec); its encoder row the same direction at 0.2 times the mean encoder norm of
    the live features; its encoder bias 0; and its Adam moments are zeroed so stale statistics
    from its dead life do not drive the first updates.
    """
    if dead_mask.shape != (sae.cfg.d_sae,) or dead_mask.dtype != torch.bool:
        raise ValueError(
            f"dead_mask must be a bool tensor of shape ({sae.cfg.d_sae},), "
            f"got {dead_mask.dtype} {tuple(dead_mask.shape)}"
        )
    n_dead = int(dead_mask.sum())
    if n_dead == 0:
        return 0
    per_token_loss = (sae(x) - x).pow(2).sum(-1)
    weights = per_token_loss.pow(2).cpu().double()
    if not (weights.sum() > 0 and torch.isfinite(weights).all()):
        weights = torch.ones_like(weights)
    picks = torch.multinomial(weights, n_dead, replacement=True, generator=generator)
    directions = x[picks.to(x.device)] - sae.b_dec
    directions = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    alive = ~dead_mask
    enc_norm = sae.W_enc[:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
    sae.W_dec[dead_mask] = directions
    sae.W_enc[:, dead_mask] = (directions * ENCODER_SCALE * enc_norm).T
    sae.b_enc[dead_mask] = 0.0
    for param, index in (
        (sae.W_dec, (dead_mask,)),
        (sae.b_enc, (dead_mask,)),
        (sae.W_enc, (slice(None), dead_mask)),
    ):
        state = optimizer.state.get(param, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][index] = 0.0
    return n_dead


def update_dead_counters(
    steps_since_fired: Int[Tensor, " d_sae"], feature_acts: Float[Tensor, "... d_sae"]
) -> Int[Tensor, " d_sae"]:
    """Steps since each feature last fired, after one more batch: 0 if it fired, else + 1.

    A feature is dead for ghost grads once its counter reaches the trainer's `dead_window`
    (SAELens' convention, counted in training steps).
    """
    if steps_since_fired.shape != feature_acts.shape[-1:]:
        raise ValueError(
            f"expected counters of shape [{feature_acts.shape[-1]}] (d_sae), got "
            f"{tuple(steps_since_fired.shape)}"
        )
    fired = (feature_acts.reshape(-1, feature_acts.shape[-1]) > 0).any(0)
    return torch.where(fired, 0, steps_since_fired + 1)
