"""Several feature cards in one call and each feature's label and top token as text (chapter 4)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.analysis.features import FeatureCard, FeatureStats, LabelledTokens, feature_card
from tutorial_sae.core.sae import SAE


def feature_cards(
    sae: SAE, stats: FeatureStats, acts: Float[Tensor, "n_seq pos d_in"], data: LabelledTokens,
    model, features: Iterable[int], ln_scale: float,
) -> list[FeatureCard]:  # fmt: skip
    """`feature_card` (density, activation histogram, top held-out contexts and the direct-path
    logit effect through `model`, with its tokenizer) for each of `features`, in order."""
    if getattr(model, "tokenizer", None) is None:
        raise ValueError(f"expected a model with a tokenizer, got {type(model).__name__}")
    features = list(features)
    if not all(isinstance(f, int) and not isinstance(f, bool) for f in features):
        raise TypeError(f"expected features as ints, got {features!r:.80}")
    return [
        feature_card(sae, stats, acts, data, model.tokenizer, f, model, ln_scale) for f in features
    ]


@dataclass(frozen=True)
class FeatureNames:
    """Per feature: its label name ("dead" when it never fired) and its most frequent top
    token decoded ("-" when it has none)."""

    labels: list[str]
    top_words: list[str]


def feature_names(stats: FeatureStats, tokens: Int[Tensor, "n_seq pos"], tokenizer) -> FeatureNames:
    """The label and the first top-activation token (FeatureStats.top_tokens) of every feature,
    as the neighbour table prints them."""
    if not isinstance(stats, FeatureStats):
        raise TypeError(f"expected stats as FeatureStats, got {type(stats).__name__}")
    labels = [stats.label_names[i] if i >= 0 else "dead" for i in stats.labels]
    top_ids = stats.top_tokens(tokens)[:, 0].tolist()
    return FeatureNames(labels, [tokenizer.decode([t]) if t >= 0 else "-" for t in top_ids])
