"""Feature geometry: cosine neighbours, label agreement, projections, splitting (chapter 4).

The seed paper plots features in 2D/3D and reads their nearest neighbours by cosine; Bricken et
al. 2023 (*Towards Monosemanticity*) match features across dictionary sizes ("feature
splitting"); completeness (Templeton et al. 2024) lives in analysis/completeness.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from tutorial_sae.core.sae import SAE
from tutorial_sae.utils import (
    check_choice,
    check_int,
    check_real,
    check_sae,
    check_tensor,
    check_width,
    read_json_object,
)

PROJECTION_METHODS = ("pca", "umap")


def decoder_directions(sae: SAE) -> Float[Tensor, "d_sae d_in"]:
    """Unit-norm rows of W_dec: the direction each feature writes."""
    return _unit_rows(sae, "W_dec")


def encoder_directions(sae: SAE) -> Float[Tensor, "d_sae d_in"]:
    """Unit-norm columns of W_enc: the direction each feature reads (the paper's plots)."""
    return _unit_rows(sae, "W_enc")


def _unit_rows(sae: SAE, key: str) -> Tensor:
    check_sae(sae)
    w = getattr(sae, key).detach().float().cpu()
    check_tensor(w, f"sae.{key}")
    return torch.nn.functional.normalize(w.T if key == "W_enc" else w, dim=-1)


def encoder_decoder_cosine(sae: SAE) -> Float[Tensor, " d_sae"]:
    """cos(W_enc[:, i], W_dec[i]) per feature: 1 only if a feature reads what it writes."""
    return (encoder_directions(sae) * decoder_directions(sae)).sum(-1)


@dataclass(frozen=True)
class Neighbours:
    """The k nearest directions of each row by cosine similarity (self excluded)."""

    indices: Int[Tensor, "n k"]
    cosines: Float[Tensor, "n k"]


def _check_directions(directions: Tensor, name: str = "directions") -> None:
    check_tensor(directions, name, 2, "real")


def cosine_neighbours(
    directions: Float[Tensor, "n d"], k: int = 10, chunk: int = 2048
) -> Neighbours:
    """Top-k cosine neighbours of every row among the other rows (chunked: n can be 16,384)."""
    _check_directions(directions)
    check_int(k, "k")
    check_int(chunk, "chunk")
    if not 1 <= k < len(directions):
        raise ValueError(f"expected 1 <= k < {len(directions)}, got {k}")
    unit = torch.nn.functional.normalize(directions.float(), dim=-1)
    values, indices = [], []
    for start in range(0, len(unit), chunk):
        cos = unit[start : start + chunk] @ unit.T
        rows = torch.arange(len(cos))
        cos[rows, rows + start] = -float("inf")
        top = cos.topk(k, dim=-1)
        values.append(top.values)
        indices.append(top.indices)
    return Neighbours(torch.cat(indices), torch.cat(values))


@dataclass(frozen=True)
class KnnAgreement:
    """Mean share of a feature's k neighbours with its own label, and the shuffled baseline."""

    agreement: float
    shuffled: float
    shuffled_std: float
    per_feature: Float[Tensor, " n"]


def knn_agreement(
    neighbours: Int[Tensor, "n k"],
    labels: Int[Tensor, " n"],
    n_shuffles: int = 20,
    seed: int = 0,
) -> KnnAgreement:
    """kNN label agreement over features with a label (>= 0); neighbours that are unlabelled
    count as disagreeing. The baseline permutes the labels among labelled features."""
    check_tensor(neighbours, "neighbours", 2, "int")
    check_tensor(labels, "labels", 1, "int")
    check_int(n_shuffles, "n_shuffles", 2)
    if neighbours.min() < 0 or neighbours.max() >= len(labels):
        raise ValueError(f"neighbours must index rows in [0, {len(labels)}), got "
                         f"{int(neighbours.min())}..{int(neighbours.max())}")  # fmt: skip
    if labels.shape != (len(neighbours),):
        raise ValueError(
            f"expected neighbours [n, k] and labels [n], got {tuple(neighbours.shape)} and "
            f"{tuple(labels.shape)}"
        )
    keep = labels >= 0
    if not keep.any():
        raise ValueError("expected at least one labelled feature (label >= 0), got none")

    def score(lab: Tensor) -> Tensor:
        return (lab[neighbours] == lab[:, None]).float().mean(-1)[keep]

    per_feature = score(labels)
    gen = torch.Generator().manual_seed(seed)
    shuffled = []
    for _ in range(n_shuffles):
        lab = labels.clone()
        lab[keep] = labels[keep][torch.randperm(int(keep.sum()), generator=gen)]
        shuffled.append(float(score(lab).mean()))
    base = torch.tensor(shuffled)
    return KnnAgreement(
        float(per_feature.mean()), float(base.mean()), float(base.std()), per_feature
    )


@dataclass(frozen=True)
class Projection:
    """Low-dimensional coordinates of directions and how they were made."""

    coords: Float[Tensor, "n n_components"]
    method: str


def project(
    directions: Float[Tensor, "n d"], method: str = "pca", n_components: int = 2, seed: int = 0
) -> Projection:
    """PCA (on the unit directions, via torch's SVD) or UMAP (cosine metric, McInnes et al.
    2018; umap-learn imported only here: it compiles with numba, tens of seconds on first use)."""
    _check_directions(directions)
    check_choice(method, "method", PROJECTION_METHODS)
    check_int(n_components, "n_components")
    if not len(directions) > n_components <= directions.shape[1]:
        raise ValueError(f"n_components must be < n and <= d of directions {tuple(directions.shape)}, "
                         f"got {n_components}")  # fmt: skip
    unit = torch.nn.functional.normalize(directions.float(), dim=-1)
    if method == "pca":
        centred = unit - unit.mean(0)
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        return Projection(centred @ v[:n_components].T, method)
    import umap

    reducer = umap.UMAP(n_components=n_components, metric="cosine", random_state=seed, n_jobs=1)
    return Projection(torch.from_numpy(reducer.fit_transform(unit.numpy())).float(), method)


def trustworthiness(
    directions: Float[Tensor, "n d"], coords: Float[Tensor, "n c"], k: int = 10
) -> float:
    """scikit-learn's trustworthiness (Venna & Kaski 2001) of a projection, cosine in the input:
    1 when every point's k nearest neighbours in the plot are neighbours in the original space."""
    from sklearn.manifold import trustworthiness as sk_trustworthiness

    _check_directions(directions)
    _check_directions(coords, "coords")
    check_int(k, "k")
    if not k < len(directions) / 2:
        raise ValueError(f"k must be < n / 2 = {len(directions) / 2} (sklearn's limit), got {k}")
    if len(directions) != len(coords):
        raise ValueError(
            f"expected as many coords as directions, got {len(coords)} and {len(directions)}"
        )
    return float(
        sk_trustworthiness(directions.numpy(), coords.numpy(), n_neighbors=k, metric="cosine")
    )


@dataclass(frozen=True)
class DictionaryMatch:
    """For each feature of dictionary A, its best decoder-cosine match in dictionary B."""

    best_cosine: Float[Tensor, " n_a"]
    best_index: Int[Tensor, " n_a"]
    random_cosine: Float[Tensor, " n_a"]

    @property
    def median(self) -> float:
        return float(self.best_cosine.median())

    @property
    def random_median(self) -> float:
        return float(self.random_cosine.median())


def best_matches(a: Float[Tensor, "n_a d"], b: Float[Tensor, "n_b d"]) -> DictionaryMatch:
    """max_j cos(a_i, b_j) for every row of `a`; the baseline draws len(a) random unit
    directions (seed 0) and matches them against `b` the same way (Bricken et al. 2023)."""
    _check_directions(a, "a")
    _check_directions(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"expected directions a and b of the same width, got {a.shape[1]} and {b.shape[1]}"
        )
    b = torch.nn.functional.normalize(b.float(), dim=-1)
    best = (torch.nn.functional.normalize(a.float(), dim=-1) @ b.T).max(-1)
    gen = torch.Generator().manual_seed(0)
    rand = torch.nn.functional.normalize(torch.randn(a.shape, generator=gen), dim=-1)
    return DictionaryMatch(best.values, best.indices, (rand @ b.T).max(-1).values)


@dataclass(frozen=True)
class SplittingFamily:
    """A parent feature of a small SAE and the children (of a larger one) that split it."""

    parent: int
    children: tuple[int, ...]
    child_cosines: tuple[float, ...]
    parent_firings: int
    coverage: float
    child_shares: tuple[float, ...]


@torch.no_grad()
def splitting_families(
    small: SAE, large: SAE, acts: Float[Tensor, "n_seq pos d_in"], min_cosine: float = 0.5,
    min_children: int = 2, max_children: int = 4, min_firings: int = 20, chunk: int = 4096,
) -> list[SplittingFamily]:  # fmt: skip
    """Parents with min_children to max_children children (decoder cosine >= min_cosine), best first.

    coverage: of the non-BOS tokens where the parent fires, the share where at least one child
    fires; child_shares: the share where each child fires.
    """
    check_sae(small, "small")
    check_sae(large, "large", small.cfg.d_in, "the small SAE")
    check_tensor(acts, "acts", 3)
    check_width(acts, small.cfg.d_in, "acts", "the SAEs' d_in")
    check_real(min_cosine, "min_cosine", -1.0, 1.0)
    check_int(min_children, "min_children")
    check_int(max_children, "max_children", min_children)
    check_int(min_firings, "min_firings", 0)
    check_int(chunk, "chunk")
    cos = decoder_directions(small) @ decoder_directions(large).T
    member = cos >= min_cosine
    n_children = member.sum(-1)
    parents = ((n_children >= min_children) & (n_children <= max_children)).nonzero().flatten()
    if not len(parents):
        return []
    children = member[parents].any(0).nonzero().flatten()
    flat = acts[:, 1:].reshape(-1, acts.shape[-1]).float()
    fires = torch.zeros(len(parents), dtype=torch.long)
    joint = torch.zeros(len(parents), len(children), dtype=torch.long)
    any_child = torch.zeros(len(parents), dtype=torch.long)
    sub_member = member[parents][:, children].float()
    for start in range(0, len(flat), chunk):
        x = flat[start : start + chunk]
        p = _encode_subset(small, x, parents).float()
        c = _encode_subset(large, x, children).float()
        fires += p.sum(0).long()
        joint += (p.T @ c).long()
        any_child += (p * ((c @ sub_member.T) > 0)).sum(0).long()
    families = []
    for row, parent in enumerate(parents.tolist()):
        if fires[row] < min_firings:
            continue
        cols = sub_member[row].nonzero().flatten()
        families.append(SplittingFamily(
            parent, tuple(children[cols].tolist()), tuple(cos[parent, children[cols]].tolist()),
            int(fires[row]), float(any_child[row] / fires[row]),
            tuple((joint[row, cols].float() / fires[row]).tolist()),
        ))  # fmt: skip
    return sorted(families, key=lambda f: (-f.coverage, -f.parent_firings))


def _encode_subset(sae: SAE, x: Tensor, features: Tensor) -> Bool[Tensor, "n f"]:
    w, b = sae.W_enc[:, features].cpu(), sae.b_enc[features].cpu()
    return ((x - sae.b_dec.cpu()) @ w + b) > 0


def clean_split(families: list[SplittingFamily], min_coverage: float = 0.8) -> SplittingFamily:
    """The family whose children best divide the parent's firings: coverage >= min_coverage and
    the least double counting (sum of child shares / coverage, 1 for a perfect partition)."""
    check_real(min_coverage, "min_coverage", 0.0, 1.0)
    good = [f for f in families if f.coverage >= min_coverage]
    if not good:
        best = max((f.coverage for f in families), default=0.0)
        raise ValueError(f"expected a family with coverage >= {min_coverage}, best is {best:.2f}")
    return min(good, key=lambda f: sum(f.child_shares) / f.coverage)


def sae_fingerprint(sae: SAE) -> str:
    """A short hash of W_dec: precomputed projections are used only for the SAE they came from."""
    import hashlib

    raw = sae.W_dec.detach().float().cpu().contiguous().numpy().tobytes()
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class StoredProjections:
    """UMAP coordinates of an SAE's decoder directions, precomputed by
    `python -m tutorial_sae.build.neighbourhoods` (UMAP compiles for over a minute here)."""

    sae: str
    umap_2d: Float[Tensor, "d_sae 2"]
    umap_3d: Float[Tensor, "d_sae 3"]


def load_projections(sae: SAE, path=None) -> StoredProjections | None:
    """The shipped projections (assets/mini/neighbourhoods.json) if made from this SAE, else None."""
    from tutorial_sae.paths import assets_dir

    path = assets_dir() / "neighbourhoods.json" if path is None else path
    try:
        raw = read_json_object(path)
    except FileNotFoundError:
        return None
    if raw.get("fingerprint") != sae_fingerprint(sae):
        return None
    try:
        coords = {k: torch.tensor(raw[k], dtype=torch.float32) for k in ("umap_2d", "umap_3d")}
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{path}: expected umap_2d and umap_3d as lists of numbers ({err!r})"
        ) from err
    for key, c in coords.items():
        if c.shape != (sae.cfg.d_sae, int(key[-2])):
            raise ValueError(
                f"expected {key} of shape ({sae.cfg.d_sae}, {key[-2]}), got {tuple(c.shape)}"
            )
    return StoredProjections(raw["sae"], coords["umap_2d"], coords["umap_3d"])
