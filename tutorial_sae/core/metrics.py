"""Sparsity and reconstruction metrics, one definition each (chapters 2-8)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.utils import check_activations, check_real, check_same_shape, check_tensor

DENSE_THRESHOLD = 0.1


def _check(t: Tensor, name: str) -> None:
    """Metrics take a non-empty, finite float tensor of shape [..., d]: else a ValueError."""
    if not isinstance(t, Tensor) or t.ndim < 1:
        got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a tensor of shape [..., d], got {got}")
    check_activations(t, t.shape[-1], name)


def _check_pair(x: Tensor, x_hat: Tensor) -> None:
    _check(x, "x")
    _check(x_hat, "x_hat")
    if x.shape != x_hat.shape:
        raise ValueError(
            f"x and x_hat must have the same shape, got {tuple(x.shape)} and {tuple(x_hat.shape)}"
        )


def l0(f: Float[Tensor, "... d_sae"]) -> float:
    """Mean number of non-zero features per token."""
    _check(f, "f")
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
    resid = (x2 - xh2).double().pow(2).sum()
    total = (x2 - x2.mean(0)).double().pow(2).sum()
    if total == 0:
        raise ValueError(
            "explained_variance is undefined when x does not vary (every token is the same "
            "vector): there is no variance to explain"
        )
    return float(1 - resid / total)


def feature_density(f: Float[Tensor, "... d_sae"]) -> Float[Tensor, " d_sae"]:
    """Fraction of tokens on which each feature fires (f_i > 0)."""
    if isinstance(f, Tensor) and f.ndim >= 1 and f.numel() == 0:
        raise ValueError(f"f must hold at least one token, got shape {tuple(f.shape)}")
    _check(f, "f")
    return (f.reshape(-1, f.shape[-1]) > 0).float().mean(0)


def _as_density(f_or_density: Tensor) -> Tensor:
    if not isinstance(f_or_density, Tensor) or f_or_density.ndim == 0:
        raise ValueError(
            f"f_or_density must be a tensor [d_sae] or [..., d_sae], got {f_or_density!r}"[:200]
        )
    if isinstance(f_or_density, Tensor) and f_or_density.ndim == 1:
        check_tensor(f_or_density, "f_or_density", 1, "float")
        if f_or_density.min() < 0 or f_or_density.max() > 1:
            raise ValueError(
                "f_or_density must hold fractions in [0, 1] (a 1-D input is read as densities; pass "
                f"feature activations as [..., d_sae]), got values from "
                f"{float(f_or_density.min()):g} to {float(f_or_density.max()):g}"
            )
        return f_or_density
    if isinstance(f_or_density, Tensor) and f_or_density.ndim > 1:
        check_tensor(f_or_density, "f_or_density")
    return feature_density(f_or_density)


def dead_fraction(f_or_density: Tensor) -> float:
    """Fraction of features that never fired (density 0) over the tokens given.

    A 1-D input is read as densities in [0, 1], anything else as activations [..., d_sae].
    """
    return float((_as_density(f_or_density) == 0).float().mean())


def dense_fraction(f_or_density: Tensor, threshold: float = DENSE_THRESHOLD) -> float:
    """Fraction of features that fire on more than `threshold` (10%) of tokens."""
    check_real(threshold, "threshold", 0.0, 1.0)
    return float((_as_density(f_or_density) > threshold).float().mean())


def firing_counts(f: Float[Tensor, "... d_sae"]) -> Int[Tensor, " d_sae"]:
    """How many of the tokens given each feature fires on (f_i > 0), as int64.

    Counts add across batches exactly, which densities in float32 do not; density is
    counts / n_tokens.
    """
    check_tensor(f, "f", kind="real")
    if f.ndim < 1 or f.is_floating_point():
        _check(f, "f")
    f2 = f.reshape(-1, f.shape[-1])
    return (f2 > 0).sum(0, dtype=torch.int64)


@dataclass(frozen=True)
class DensityHistogram:
    """Counts of log10 feature density in `edges` bins; features that never fired are `dead`.

    The lowest measurable non-zero density is one firing in `n_tokens`, so the first edge is
    at or below log10(1 / n_tokens); dead features have no logarithm and are counted apart.
    """

    edges: list[float]
    counts: list[int]
    dead: int
    n_tokens: int

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.counts) + 1 or len(self.counts) == 0:
            raise ValueError(
                f"expected len(edges) == len(counts) + 1 >= 2, got {len(self.edges)} edges "
                f"and {len(self.counts)} counts"
            )
        if list(self.edges) != sorted(self.edges):
            raise ValueError(f"expected increasing edges, got {self.edges}")
        if min(self.counts) < 0 or self.dead < 0 or self.n_tokens < 1:
            raise ValueError(
                f"expected counts and dead >= 0 and n_tokens >= 1, got counts {self.counts}, "
                f"dead {self.dead}, n_tokens {self.n_tokens}"
            )

    @property
    def n_features(self) -> int:
        return sum(self.counts) + self.dead


def density_histogram(
    counts: Int[Tensor, " d_sae"], n_tokens: int, bins: int = 24
) -> DensityHistogram:
    """Histogram of log10 density (counts / n_tokens) of the features that fired, to 0.

    The one feature-density histogram of the book (chapter 3's figures, the shipped
    metrics.json and l1_sweep.json): bins from floor(log10(1 / n_tokens)) to 0, dead
    features counted apart.
    """
    if (
        not isinstance(counts, Tensor)
        or counts.ndim != 1
        or counts.is_floating_point()
        or counts.dtype == torch.bool
        or counts.numel() == 0
    ):
        got = (
            f"{counts.dtype} {tuple(counts.shape)}" if isinstance(counts, Tensor) else type(counts)
        )
        raise ValueError(f"expected non-empty 1-D integer firing counts [d_sae], got {got}")
    largest = int(counts.max()) if counts.numel() else 0
    bad_n = isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 1
    if bad_n or largest > n_tokens or (counts.numel() and int(counts.min()) < 0):
        raise ValueError(
            f"expected counts >= 0 and an int n_tokens >= 1 and >= every count, got "
            f"n_tokens {n_tokens!r} (largest count {largest})"
        )
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"expected bins to be a positive int, got {bins!r}")
    low = math.floor(math.log10(1 / n_tokens))
    alive = counts[counts > 0].double()
    # Clamped because float rounding can put a density of exactly 1 / n_tokens a hair below
    # the first edge, where histc would silently drop it.
    log_alive = (alive / float(n_tokens)).log10().clamp(low, 0.0)
    hist = torch.histc(log_alive, bins=bins, min=low, max=0.0)
    edges = torch.linspace(low, 0.0, bins + 1, dtype=torch.float64)
    return DensityHistogram(
        [round(e, 6) for e in edges.tolist()],
        [int(c) for c in hist.tolist()],
        int((counts == 0).sum()),
        n_tokens,
    )


def ce_loss_recovered(clean, reconstructed, ablated):
    """Share of the ablation's loss gap that the reconstruction recovers (Nanda's run1 metric).

    (ablated - reconstructed) / (ablated - clean): 1 when splicing in the SAE costs nothing,
    0 when it is as bad as the ablation. Elementwise on tensors of one shape. Where the gap is
    zero the share is undefined: NaN (a documented result, for numbers and tensor elements
    alike); non-finite or non-numeric losses raise a ValueError.
    """
    names = ("clean", "reconstructed", "ablated")
    values = (clean, reconstructed, ablated)
    if any(isinstance(v, Tensor) for v in values):
        for name, v in zip(names, values, strict=True):
            check_tensor(v, name, nonempty=False)
        check_same_shape(clean, reconstructed, "clean and reconstructed")
        check_same_shape(clean, ablated, "clean and ablated")
        gap = ablated - clean
        return torch.where(gap == 0, torch.nan, (ablated - reconstructed) / gap)
    for name, v in zip(names, values, strict=True):
        check_real(v, name)
    gap = ablated - clean
    if gap == 0:
        return float("nan")
    return (ablated - reconstructed) / gap
