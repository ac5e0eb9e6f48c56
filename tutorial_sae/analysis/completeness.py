"""Completeness: which token types have a dedicated feature, by frequency (chapter 4).

Templeton et al. 2024 (*Scaling Monosemanticity*) ask how likely a concept is to have a dedicated
feature as a function of its frequency; here the concepts are token types.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from tutorial_sae.analysis.features import FeatureStats
from tutorial_sae.utils import check_int


@dataclass(frozen=True)
class Completeness:
    """Per token type: held-out frequency and whether some feature is dedicated to it."""

    frequency: Float[Tensor, " d_vocab"]
    covered: Bool[Tensor, " d_vocab"]
    n_dedicated: int


def dedicated_tokens(
    top_tokens: Int[Tensor, "d_sae k"], min_share: float = 0.5, min_top: int = 5
) -> Int[Tensor, " d_sae"]:
    """The token a feature is dedicated to (its most common top-k token when that token makes
    up >= min_share of its >= min_top top activations), else -1."""
    valid = top_tokens >= 0
    n = valid.sum(-1)
    mode = torch.where(valid, top_tokens, top_tokens.max() + 1).mode(-1).values
    share = ((top_tokens == mode[:, None]) & valid).sum(-1) / n.clamp_min(1)
    return torch.where((n >= min_top) & (share >= min_share), mode, -1)


def completeness(
    stats: FeatureStats, tokens: Int[Tensor, "n_seq pos"], d_vocab: int, min_share: float = 0.5
) -> Completeness:
    """Which token types have a dedicated feature (Templeton et al. 2024's completeness, with
    token types as the concepts); frequency counts non-BOS held-out tokens."""
    owner = dedicated_tokens(stats.top_tokens(tokens), min_share)
    covered = torch.zeros(d_vocab, dtype=torch.bool)
    covered[owner[owner >= 0]] = True
    counts = torch.bincount(tokens[:, 1:].reshape(-1), minlength=d_vocab).float()
    return Completeness(counts / counts.sum(), covered, int((owner >= 0).sum()))


@dataclass(frozen=True)
class CompletenessCurve:
    """P(token type has a dedicated feature) in bins of log10 frequency."""

    log10_frequency: Float[Tensor, " n_bins"]
    p_covered: Float[Tensor, " n_bins"]
    n_types: Int[Tensor, " n_bins"]
    half_coverage_log10: float


def completeness_curve(
    result: Completeness, edges: Float[Tensor, " n_edges"] | None = None
) -> CompletenessCurve:
    """Bin token types seen in the held-out text by log10 frequency; half_coverage_log10 is the
    log10 frequency above which at least half the types are covered (inf if never)."""
    seen = result.frequency > 0
    logf = result.frequency[seen].log10()
    if edges is None:
        edges = torch.linspace(float(logf.min()), float(logf.max()) + 1e-6, 9)
    idx = torch.bucketize(logf, edges[1:-1])
    n_bins = len(edges) - 1
    n = torch.bincount(idx, minlength=n_bins)
    hit = torch.bincount(idx, weights=result.covered[seen].float(), minlength=n_bins)
    p = torch.where(n > 0, hit / n.clamp_min(1), torch.nan)
    centres = (edges[1:] + edges[:-1]) / 2
    return CompletenessCurve(centres, p, n, _half_crossing(centres[n > 0], p[n > 0]))


def _half_crossing(x: Tensor, p: Tensor) -> float:
    """Where p last rises through 0.5, interpolated linearly between bin centres."""
    above = p >= 0.5
    if not above.any():
        return float("inf")
    if above.all():
        return float(x[0])
    below = (~above).nonzero().flatten()
    i = int(below[-1])
    if i == len(p) - 1:
        return float("inf")
    t = (0.5 - p[i]) / (p[i + 1] - p[i])
    return float(x[i] + t * (x[i + 1] - x[i]))


def frequency_edges(results: list[Completeness], n_bins: int = 8) -> Float[Tensor, " n_edges"]:
    """Shared log10-frequency bin edges for several curves (so they can be compared)."""
    check_int(n_bins, "n_bins")
    if not isinstance(results, (list, tuple)) or not results:
        raise ValueError(f"results must be a non-empty list of Completeness, got {results!r}")
    logs = np.concatenate([r.frequency[r.frequency > 0].log10().numpy() for r in results])
    return torch.linspace(float(logs.min()), float(logs.max()) + 1e-6, n_bins + 1)
