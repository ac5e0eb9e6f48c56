"""How a dictionary changes as it grows: best matches, a splitting example, completeness (chapter 4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.analysis.completeness import (
    Completeness,
    CompletenessCurve,
    completeness,
    completeness_curve,
    frequency_edges,
)
from tutorial_sae.analysis.features import FeatureCard, FeatureStats, LabelledTokens, feature_card
from tutorial_sae.analysis.neighbourhoods import (
    DictionaryMatch,
    SplittingFamily,
    best_matches,
    clean_split,
    splitting_families,
)
from tutorial_sae.core.sae import SAE
from tutorial_sae.utils import check_real


@dataclass(frozen=True)
class SplitExample:
    """All splitting families of the smallest SAE in the largest, the cleanest split with the
    feature cards of its parent and children (None and () when no family qualifies, with
    clean_split's reason), and how many families cover at least `min_coverage`."""

    families: list[SplittingFamily]
    n_covering: int
    family: SplittingFamily | None
    reason: str | None
    parent: FeatureCard | None
    children: tuple[FeatureCard, ...]


def _sizes(saes: Mapping, stats: Mapping) -> tuple[str, str]:
    if not isinstance(saes, Mapping) or len(saes) < 2:
        raise ValueError(f"expected a mapping of at least two size -> SAE, got {saes!r:.80}")
    if not isinstance(stats, Mapping) or set(stats) != set(saes):
        got = list(stats) if isinstance(stats, Mapping) else type(stats).__name__
        raise ValueError(f"expected stats keyed like saes {list(saes)}, got {got}")
    sizes = list(saes)
    return sizes[0], sizes[-1]


def splitting_example(
    saes: Mapping[str, SAE], stats: Mapping[str, FeatureStats],
    acts: Float[Tensor, "n_seq pos d_in"], data: LabelledTokens, tokenizer,
    min_coverage: float = 0.8,
) -> SplitExample:  # fmt: skip
    """Feature splitting (Bricken et al. 2023) from the first (smallest) SAE of `saes` to the last
    (largest): `splitting_families`, then `clean_split`, then `feature_card`s (no logit effect)
    of the chosen parent and children. A model with no qualifying family (e.g. random weights)
    gives family None and clean_split's reason."""
    small, large = _sizes(saes, stats)
    check_real(min_coverage, "min_coverage", 0.0, 1.0)
    families = splitting_families(saes[small], saes[large], acts)
    n_covering = sum(f.coverage >= min_coverage for f in families)
    try:
        family = clean_split(families, min_coverage)
    except ValueError as err:
        return SplitExample(families, n_covering, None, str(err), None, ())
    parent = feature_card(saes[small], stats[small], acts, data, tokenizer, family.parent)
    children = tuple(
        feature_card(saes[large], stats[large], acts, data, tokenizer, c) for c in family.children
    )
    return SplitExample(families, n_covering, family, None, parent, children)


@dataclass(frozen=True)
class CompletenessBySize:
    """Completeness of each dictionary, its curve on shared frequency bins (keyed
    "<size> features") and the frequency above which half the token types are covered."""

    results: dict[str, Completeness]
    curves: dict[str, CompletenessCurve]
    half_frequency: dict[str, float]

    @property
    def prose_numbers(self) -> dict[str, float | int]:
        """half_<i> and dedicated_<i> for the i-th dictionary, the numbers the text quotes."""
        numbers: dict[str, float | int] = {}
        for i, (size, half) in enumerate(self.half_frequency.items()):
            numbers[f"half_{i}"] = half
            numbers[f"dedicated_{i}"] = self.results[size].n_dedicated
        return numbers


def completeness_by_size(
    stats: Mapping[str, FeatureStats], tokens: Int[Tensor, "n_seq pos"], d_vocab: int
) -> CompletenessBySize:
    """Templeton et al. (2024)'s completeness with token types as concepts, for every dictionary
    of `stats` (size name -> feature_stats), binned on shared log10-frequency edges."""
    if not isinstance(stats, Mapping) or not stats:
        raise ValueError(f"expected a non-empty mapping of size -> FeatureStats, got {stats!r:.80}")
    results = {s: completeness(st, tokens, d_vocab) for s, st in stats.items()}
    edges = frequency_edges(list(results.values()))
    curves = {f"{s} features": completeness_curve(r, edges) for s, r in results.items()}
    half = {s: 10**c.half_coverage_log10 for s, c in zip(stats, curves.values(), strict=True)}
    return CompletenessBySize(results, curves, half)


def dictionary_matches(saes: Mapping[str, SAE]) -> dict[str, DictionaryMatch]:
    """`best_matches` of each SAE's decoder rows in the next one of `saes` (in order; Bricken et
    al. 2023's feature splitting), keyed "<a> → <b> features"."""
    if not isinstance(saes, Mapping) or len(saes) < 2:
        raise ValueError(f"expected a mapping of at least two size -> SAE, got {saes!r:.80}")
    sizes = list(saes)
    return {
        f"{a} → {b} features": best_matches(saes[a].W_dec.detach(), saes[b].W_dec.detach())
        for a, b in zip(sizes, sizes[1:], strict=False)
    }


def same_index_share(match: DictionaryMatch) -> float:
    """The share of features whose best match has their own index (SAEs grown from one seed
    start with equal first rows)."""
    if not isinstance(match, DictionaryMatch):
        raise TypeError(f"expected a DictionaryMatch, got {type(match).__name__}")
    index = match.best_index
    return float((index == torch.arange(len(index))).float().mean())
