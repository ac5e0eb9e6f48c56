"""Token counts per concept and the log-likelihood-ratio proxy built from them (chapter 5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from tutorial_sae.utils import check_real


@dataclass(frozen=True)
class TokenCounts:
    """How often each token id occurs in the text of each concept (the proxy's statistics).

    `weights` give each concept's share of the model's training distribution, so that the
    mixture of the concepts' distributions is P(t).
    """

    counts: dict[str, list[int]]
    weights: dict[str, float]

    def __post_init__(self) -> None:
        if set(self.weights) != set(self.counts):
            raise ValueError(
                f"expected weights for concepts {sorted(self.counts)}, got {sorted(self.weights)}"
            )
        sizes = {len(c) for c in self.counts.values()}
        if len(sizes) != 1:
            raise ValueError(f"expected one vocabulary size for all languages, got {sizes}")


def count_tokens(token_ids: Mapping[str, np.ndarray], d_vocab: int, weights: Mapping[str, float]):
    """TokenCounts from each concept's stream of token ids (ids must be < d_vocab)."""
    counts = {}
    for lang, ids in token_ids.items():
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= d_vocab):
            raise ValueError(f"expected token ids in [0, {d_vocab}), got {ids.min()}..{ids.max()}")
        counts[lang] = np.bincount(ids, minlength=d_vocab).tolist()
    return TokenCounts(counts, dict(weights))


def log_ratio_of_counts(
    concept_counts: Float[Tensor, " d_vocab"],
    all_counts: Float[Tensor, " d_vocab"],
    alpha: float = 1.0,
) -> Float[Tensor, " d_vocab"]:
    """log P(t | concept) / P(t) from two count vectors, each smoothed by adding `alpha` to every
    count before normalising (Bricken et al. 2023's proxy, pooled version)."""
    if concept_counts.shape != all_counts.shape or concept_counts.ndim != 1:
        raise ValueError(
            f"expected two count vectors of one length, got {tuple(concept_counts.shape)} and "
            f"{tuple(all_counts.shape)}"
        )
    p_concept = (concept_counts + alpha) / (concept_counts + alpha).sum()
    p_all = (all_counts + alpha) / (all_counts + alpha).sum()
    return p_concept.log() - p_all.log()


def llr_proxy(counts: TokenCounts, concept: str, alpha: float = 1.0) -> Float[Tensor, " d_vocab"]:
    """Per token t, log P(t | concept) / P(t), Bricken et al. 2023's proxy for a concept.

    P(t | concept) comes from the concept's counts, P(t) from the mixture of all concepts with
    `counts.weights` (the model's training distribution); both add `alpha` to every count
    (Laplace smoothing), so a token never seen in one concept's text stays finite.
    """
    if concept not in counts.counts:
        raise ValueError(f"expected a concept in {sorted(counts.counts)}, got {concept!r}")
    check_real(alpha, "alpha")
    if alpha <= 0:
        raise ValueError(f"expected alpha > 0 (smoothing), got {alpha}")

    def probs(lang: str) -> Tensor:
        c = torch.tensor(counts.counts[lang], dtype=torch.float64) + alpha
        return c / c.sum()

    total = sum(counts.weights.values())
    mixture = sum(w / total * probs(lang) for lang, w in counts.weights.items())
    return (probs(concept).log() - mixture.log()).float()
