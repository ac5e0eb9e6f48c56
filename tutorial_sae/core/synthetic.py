"""Synthetic data with a known sparse dictionary, and how well an SAE recovers it (chapter 2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from tutorial_sae.core.sae import SAE

# A true feature counts as recovered when some decoder direction is this close to it (cosine).
RECOVERY_THRESHOLD = 0.9


@dataclass
class SparseDataset:
    """x = codes @ dictionary: each row of x mixes a few unit-norm true features."""

    x: Float[Tensor, "n_samples d"]
    codes: Float[Tensor, "n_samples n_features"]
    dictionary: Float[Tensor, "n_features d"]

    @property
    def mean_l0(self) -> float:
        """Active true features per sample, on average: the L0 a perfect SAE would reach."""
        return float((self.codes > 0).float().sum(-1).mean())

    @property
    def max_overlap(self) -> float:
        """Largest |cosine| between two different true features (0 only if they are orthogonal)."""
        cos = self.dictionary @ self.dictionary.T
        return float((cos - torch.diag(cos.diagonal())).abs().max())


def make_sparse_dataset(
    n_features: int,
    d: int,
    sparsity: float,
    n_samples: int = 20_000,
    seed: int = 0,
) -> SparseDataset:
    """Samples whose true features are known (the toy setting of Elhage et al. 2022).

    `sparsity` is the probability that a feature is off in a sample, so each sample has on
    average n_features * (1 - sparsity) active features, each with a magnitude in U(0, 1].
    The dictionary has unit-norm random rows; with n_features > d they are in superposition.
    """
    for name, value in (("n_features", n_features), ("d", d), ("n_samples", n_samples)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not 0 <= sparsity < 1:
        raise ValueError(
            f"sparsity must be in [0, 1) (probability a feature is off), got {sparsity}"
        )
    gen = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(n_features, d, generator=gen)
    dictionary /= dictionary.norm(dim=-1, keepdim=True)
    active = torch.rand(n_samples, n_features, generator=gen) >= sparsity
    magnitude = 1 - torch.rand(n_samples, n_features, generator=gen)
    codes = active * magnitude
    return SparseDataset(x=codes @ dictionary, codes=codes, dictionary=dictionary)


def feature_recovery(sae: SAE, true_dictionary: Float[Tensor, "n_features d"]) -> Tensor:
    """For each true feature, the highest cosine similarity with any SAE decoder direction."""
    if true_dictionary.ndim != 2 or true_dictionary.shape[1] != sae.cfg.d_in:
        raise ValueError(
            f"true_dictionary must have shape [n_features, {sae.cfg.d_in}], "
            f"got {tuple(true_dictionary.shape)}"
        )
    with torch.no_grad():
        learned = sae.W_dec / sae.W_dec.norm(dim=-1, keepdim=True)
        truth = true_dictionary / true_dictionary.norm(dim=-1, keepdim=True)
        return (truth.to(learned) @ learned.T).max(dim=1).values.cpu()


def recovered_fraction(
    best_cos: Float[Tensor, " n_features"], threshold: float = RECOVERY_THRESHOLD
) -> float:
    """Share of true features whose best cosine (from `feature_recovery`) is at least threshold."""
    if best_cos.ndim != 1 or best_cos.numel() == 0:
        raise ValueError(
            f"best_cos must be a non-empty 1-D tensor, got shape {tuple(best_cos.shape)}"
        )
    return float((best_cos >= threshold).float().mean())
