"""The 2D and 3D views of a dictionary's directions and their sampled trustworthiness (chapter 4)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.analysis.neighbourhoods import StoredProjections, project, trustworthiness
from tutorial_sae.utils import check_int, check_tensor

MAX_TRUST_POINTS = 4_096


def trust_sample(n: int, max_points: int = MAX_TRUST_POINTS, seed: int = 0) -> Int[Tensor, " m"]:
    """Rows scored by trustworthiness: all n when n <= max_points, else a seeded random
    max_points of them (scikit-learn ranks every pair of points, O(n^2) memory)."""
    check_int(n, "n")
    check_int(max_points, "max_points")
    if n <= max_points:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_points]


@dataclass(frozen=True)
class ProjectionViews:
    """2D projections by method name, the 3D coordinates, and each 2D view's trustworthiness
    on the sampled rows."""

    coords: dict[str, Float[Tensor, "n 2"]]
    coords3d: Float[Tensor, "n 3"]
    trust: dict[str, float]
    rows: Int[Tensor, " m"]
    n_points: int

    @property
    def sample_note(self) -> str | None:
        """The line saying trustworthiness scored a sample, None when it scored every point."""
        if len(self.rows) == self.n_points:
            return None
        return f"trustworthiness of a sample: {len(self.rows):,} of {self.n_points:,} points"


def projection_views(
    directions: Float[Tensor, "n d"], stored: StoredProjections | None, k: int = 10,
    seed: int = 0, umap: bool = True, max_points: int = MAX_TRUST_POINTS,
) -> ProjectionViews:  # fmt: skip
    """PCA in 2D, plus UMAP in 2D and 3D (McInnes et al. 2018): the `stored` coordinates when
    given, computed when `umap`, else the 3D view is PCA too (one SVD). Each 2D view is
    scored by trustworthiness (Venna & Kaski 2001) with `k` neighbours on `trust_sample` rows."""
    check_tensor(directions, "directions", 2)
    if stored is not None and not isinstance(stored, StoredProjections):
        raise TypeError(
            f"expected stored as StoredProjections or None, got {type(stored).__name__}"
        )
    if stored is not None and len(stored.umap_2d) != len(directions):
        raise ValueError(
            f"expected stored projections of {len(directions)} points, got {len(stored.umap_2d)}"
        )
    pca_only = stored is None and not umap
    pca = project(directions, "pca", 3 if pca_only else 2).coords
    coords = {"PCA": pca[:, :2]}
    if stored is not None:
        coords["UMAP"], coords3d = stored.umap_2d, stored.umap_3d
    elif umap:
        coords["UMAP"] = project(directions, "umap", 2, seed).coords
        coords3d = project(directions, "umap", 3, seed).coords
    else:
        coords3d = pca
    rows = trust_sample(len(directions), max_points, seed)
    trust = {m: trustworthiness(directions[rows], xy[rows], k) for m, xy in coords.items()}
    return ProjectionViews(coords, coords3d, trust, rows, len(directions))
