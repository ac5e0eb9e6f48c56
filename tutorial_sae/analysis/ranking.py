"""Rank statistics: Spearman's correlation and top-k overlap of two scores (chapter 6).

Split out of `tutorial_sae.analysis.ablation`, which re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.utils import check_int, check_tensor


def rank(values: Float[Tensor, " n"]) -> Float[Tensor, " n"]:
    """Ranks 1..n of `values` (ties get their average rank)."""
    values = values.double().flatten()
    order = values.argsort()
    ranks = torch.empty_like(values)
    ranks[order] = torch.arange(1, len(values) + 1, dtype=values.dtype)
    for v in values[order][1:][values[order][1:] == values[order][:-1]].unique():
        ties = values == v
        ranks[ties] = ranks[ties].mean()
    return ranks


def spearman(a: Float[Tensor, " n"], b: Float[Tensor, " n"]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks (undefined, so refused,
    when either vector is constant)."""
    for name, v in (("a", a), ("b", b)):
        check_tensor(v, name, 1, "real", min_rows=2)
    if a.shape != b.shape:
        raise ValueError(f"expected two vectors a and b of one length >= 2, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")  # fmt: skip
    ra, rb = rank(a) - (len(a) + 1) / 2, rank(b) - (len(b) + 1) / 2
    if ra.norm() == 0 or rb.norm() == 0:
        which = "a" if ra.norm() == 0 else "b"
        raise ValueError(f"spearman is undefined: {which} is constant (all its ranks tie)")
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


@dataclass(frozen=True)
class TopKOverlap:
    """The top-k feature sets by two scores: shared members, their union and Jaccard index."""

    k: int
    by_first: tuple[int, ...]
    by_second: tuple[int, ...]
    shared: int
    union: int
    jaccard: float


def top_k_overlap(
    features: Int[Tensor, " n"],
    first: Float[Tensor, " n"],
    second: Float[Tensor, " n"],
    k: int = 10,
) -> TopKOverlap:
    """Compare the k features with the largest `first` score with the k largest by `second`."""
    check_tensor(features, "features", 1, "int")
    check_tensor(first, "first", 1, "real")
    check_tensor(second, "second", 1, "real")
    check_int(k, "k")
    if not (features.shape == first.shape == second.shape) or not 0 < k <= len(features):
        raise ValueError(
            f"expected features, first and second of one length >= k={k}, got "
            f"{tuple(features.shape)}, {tuple(first.shape)}, {tuple(second.shape)}"
        )
    a = features[first.topk(k).indices].tolist()
    b = features[second.topk(k).indices].tolist()
    shared, union = len(set(a) & set(b)), len(set(a) | set(b))
    return TopKOverlap(k, tuple(a), tuple(b), shared, union, shared / union)
