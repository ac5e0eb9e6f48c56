"""Checkers for the exercises of chapter 4 (cosine neighbours, best matches, kNN label agreement)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tutorial_sae.analysis.neighbourhoods import best_matches, cosine_neighbours, knn_agreement
from tutorial_sae.exercises.runner import CheckResult, Mistake, compare_tensors, run_check


def _unit(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def _directions(seed: int, n: int, d: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    # Norms from 0.2 to 5: a dot product ranks neighbours differently from a cosine.
    scale = 0.2 + 4.8 * torch.rand(n, 1, generator=gen)
    return torch.randn(n, d, generator=gen) * scale


def _compare_indices(got: Any, expected: Tensor) -> str | None:
    if not isinstance(got, Tensor):
        return f"expected a torch.Tensor of indices, got {type(got).__name__}"
    if got.shape != expected.shape:
        return f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    if got.is_floating_point() or got.dtype == torch.bool:
        return f"dtype {got.dtype}, expected integer indices (the .indices of topk)"
    wrong = (got != expected).any(-1).nonzero().flatten().tolist()
    if not wrong:
        return None
    row = wrong[0]
    return (
        f"{len(wrong)} of {len(expected)} rows differ, first row {row}: got "
        f"{got[row].tolist()}, expected {expected[row].tolist()}"
    )


def _neighbours_ref(directions: Tensor, k: int) -> Tensor:
    return cosine_neighbours(directions, k).indices


def _neighbours_with_self(directions: Tensor, k: int) -> Tensor:
    unit = _unit(directions)
    return (unit @ unit.T).topk(k, dim=-1).indices


def _neighbours_dot(directions: Tensor, k: int) -> Tensor:
    sims = directions @ directions.T
    sims.fill_diagonal_(-float("inf"))
    return sims.topk(k, dim=-1).indices


def _neighbours_farthest(directions: Tensor, k: int) -> Tensor:
    unit = _unit(directions)
    sims = unit @ unit.T
    sims.fill_diagonal_(float("inf"))
    return (-sims).topk(k, dim=-1).indices


def check_cosine_neighbours(
    student_fn: Callable[[Tensor, int], Tensor], seed: int = 0
) -> CheckResult:
    """Compare `student_fn(directions, k)` (indices [n, k]) with `cosine_neighbours(...).indices`."""
    cases = [
        {"directions": _directions(seed + i, n, d), "k": k}
        for i, (n, d, k) in enumerate(((12, 5, 3), (200, 32, 10), (50, 8, 1)))
    ]
    mistakes = [
        Mistake(
            _neighbours_with_self,
            "every direction is its own nearest neighbour (cosine 1): "
            "set the diagonal of the similarity matrix to -inf before topk.",
        ),  # fmt: skip
        Mistake(
            _neighbours_dot,
            "normalise the directions first: a dot product favours long "
            "vectors, a cosine compares directions only.",
        ),  # fmt: skip
        Mistake(
            _neighbours_farthest,
            "topk returns the LARGEST values: you want the most "
            "similar directions, not the least similar.",
        ),  # fmt: skip
    ]
    return run_check(
        "cosine_neighbours", student_fn, _neighbours_ref, cases, compare=_compare_indices,
        mistakes=mistakes,
        hint="unit = directions / norm; sims = unit @ unit.T; sims.fill_diagonal_(-inf); "
        "return sims.topk(k, dim=-1).indices.",
    )  # fmt: skip


def _best_ref(small: Tensor, large: Tensor) -> Tensor:
    return best_matches(small, large).best_cosine


def _best_unnormalised(small: Tensor, large: Tensor) -> Tensor:
    return (small @ large.T).max(-1).values


def _best_wrong_axis(small: Tensor, large: Tensor) -> Tensor:
    return (_unit(small) @ _unit(large).T).max(0).values


def _best_abs(small: Tensor, large: Tensor) -> Tensor:
    return (_unit(small) @ _unit(large).T).abs().max(-1).values


def check_best_match_cosine(
    student_fn: Callable[[Tensor, Tensor], Tensor], seed: int = 0
) -> CheckResult:
    """Compare `student_fn(small, large)` ([n_small] best cosines) with `best_matches`."""
    cases = [
        {
            "small": _directions(seed + 10 + i, n_small, d),
            "large": _directions(seed + 20 + i, n_large, d),
        }
        for i, (n_small, n_large, d) in enumerate(((6, 12, 4), (64, 128, 16), (1, 9, 3)))
    ]
    mistakes = [
        Mistake(
            _best_unnormalised,
            "the rows have different norms: normalise both dictionaries "
            "so that you compare directions (cosines lie in [-1, 1]).",
        ),  # fmt: skip
        Mistake(
            _best_wrong_axis,
            "one value per row of `small`: take the max over the LARGE "
            "dictionary's features (the last axis of small @ large.T).",
        ),  # fmt: skip
        Mistake(
            _best_abs,
            "a decoder direction and its negative are different features (f >= 0 "
            "only adds the direction): do not take the absolute value.",
        ),  # fmt: skip
    ]
    return run_check(
        "best_match_cosine", student_fn, _best_ref, cases, compare=compare_tensors,
        mistakes=mistakes,
        hint="normalise the rows of both, then (small_unit @ large_unit.T).max(dim=-1).values.",
    )  # fmt: skip


def _agreement_ref(neighbours: Tensor, labels: Tensor) -> Tensor:
    return torch.tensor(knn_agreement(neighbours, labels, n_shuffles=2).agreement)


def _agreement_first_only(neighbours: Tensor, labels: Tensor) -> Tensor:
    return (labels[neighbours[:, 0]] == labels).float().mean()


def _agreement_counts(neighbours: Tensor, labels: Tensor) -> Tensor:
    return (labels[neighbours] == labels[:, None]).float().sum(-1).mean()


def _agreement_wrong_gather(neighbours: Tensor, labels: Tensor) -> Tensor:
    return (labels[neighbours] == labels[neighbours[:, :1]]).float().mean()


def check_knn_agreement(
    student_fn: Callable[[Tensor, Tensor], Tensor], seed: int = 0
) -> CheckResult:
    """Compare `student_fn(neighbours, labels)` (a scalar share) with the kNN agreement of
    `tutorial_sae.analysis.neighbourhoods.knn_agreement`."""
    cases = []
    for i, (n, k, n_labels) in enumerate(((10, 3, 2), (300, 10, 4), (40, 5, 3))):
        gen = torch.Generator().manual_seed(seed + 30 + i)
        neighbours = torch.stack([torch.randperm(n, generator=gen)[:k] for _ in range(n)])
        cases.append(
            {"neighbours": neighbours, "labels": torch.randint(0, n_labels, (n,), generator=gen)}
        )
    mistakes = [
        Mistake(_agreement_first_only, "use all k neighbours of each feature, not only the first."),
        Mistake(
            _agreement_counts, "average over the k neighbours (a share in [0, 1]), not a count."
        ),
        Mistake(
            _agreement_wrong_gather,
            "compare each neighbour's label with the feature's OWN "
            "label, labels[:, None], not with its first neighbour's.",
        ),  # fmt: skip
    ]
    return run_check(
        "knn_agreement", student_fn, _agreement_ref, cases, compare=compare_tensors,
        mistakes=mistakes,
        hint="(labels[neighbours] == labels[:, None]).float().mean(): labels[neighbours] has "
        "shape [n, k], one label per neighbour.",
    )  # fmt: skip
