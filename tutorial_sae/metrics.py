"""Sparsity and reconstruction metrics, one definition each (chapters 2-8)."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

DENSE_THRESHOLD = 0.1


def _check_pair(x: Tensor, x_hat: Tensor) -> None:
    if x.shape != x_hat.shape:
        raise ValueError(
            f"x and x_hat must have the same shape, got {tuple(x.shape)} and {tuple(x_hat.shape)}"
        )


def l0(f: Float[Tensor, "... d_sae"]) -> float:
    """Mean number of non-zero features per token."""
    return float((f != 0).float().sum(-1).mean())


def mse(x: Float[Tensor, "... d_in"], x_hat: Float[Tensor, "... d_in"]) -> float:
    """Squared error summed over d_in, averaged over tokens (the training loss's L2 term)."""
    _check_pair(x, x_hat)
    return float((x - x_hat).pow(2).sum(-1).mean())


def explained_variance(x: Float[Tensor, "batch d_in"], x_hat: Float[Tensor, "batch d_in"]) -> float:
    """1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over the batch."""
    _check_pair(x, x_hat)
    x2, xh2 = x.reshape(-1, x.shape[-1]), x_hat.reshape(-1, x.shape[-1])
    if x2.shape[0] < 2:
        raise ValueError(f"explained_variance needs at least 2 tokens, got {x2.shape[0]}")
    resid = (x2 - xh2).pow(2).sum()
    total = (x2 - x2.mean(0)).pow(2).sum()
    return float(1 - resid / total)


def feature_density(f: Float[Tensor, "... d_sae"]) -> Float[Tensor, " d_sae"]:
    """Fraction of tokens on which each feature fires (f_i > 0)."""
    f2 = f.reshape(-1, f.shape[-1])
    if f2.shape[0] == 0:
        raise ValueError("feature_density needs at least one token, got 0")
    return (f2 > 0).float().mean(0)


def _as_density(f_or_density: Tensor) -> Tensor:
    return f_or_density if f_or_density.ndim == 1 else feature_density(f_or_density)


def dead_fraction(f_or_density: Tensor) -> float:
    """Fraction of features that never fired (density 0) over the tokens given."""
    return float((_as_density(f_or_density) == 0).float().mean())


def dense_fraction(f_or_density: Tensor, threshold: float = DENSE_THRESHOLD) -> float:
    """Fraction of features that fire on more than `threshold` (10%) of tokens."""
    return float((_as_density(f_or_density) > threshold).float().mean())


def log10_density(density: Float[Tensor, " d_sae"], eps: float = 1e-10) -> Tensor:
    """log10 of feature density, with dead features placed at log10(eps) for histograms."""
    return torch.log10(density.clamp_min(eps))
