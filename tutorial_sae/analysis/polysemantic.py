"""Neurons that respond to two concepts which separate SAE features keep apart (chapter 5).

Superposition predicts such neurons (Bricken et al. 2023): a neuron's activation mixes several
features, so one neuron can fire on, say, Chinese and Arabic tokens, while the SAE gives each
script its own feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tutorial_sae.analysis.scripts import check_concepts, concept_groups
from tutorial_sae.analysis.specificity import NEURON_EDGES, ScriptScan, UnitScore, best_feature
from tutorial_sae.utils import check_real


@dataclass(frozen=True)
class PolysemanticNeuron:
    """A neuron that fires on two concepts, and the SAE features that separate them.

    Above `threshold` the neuron fires on `sensitivity` of each concept's tokens, and
    `precision` of its firings fall on one of the two (`share` on each); `features` holds the
    best feature (by F1, specificity >= 0.8) of each concept, and `leak` the share of each
    feature's activation mass that falls on the other concept.
    """

    neuron: int
    concepts: tuple[str, str]
    threshold: float
    sensitivity: tuple[float, float]
    share: tuple[float, float]
    precision: float
    features: tuple[UnitScore, UnitScore]
    leak: tuple[float, float]


def polysemantic_neurons(
    scan: ScriptScan,
    concepts: tuple[str, ...] = ("han", "arabic", "latin", "code"),
    min_precision: float = 0.8,
    min_share: float = 0.2,
    min_specificity: float = 0.8,
    strong: float = 0.25,
) -> list[PolysemanticNeuron]:
    """For each pair of concepts, the neuron (and threshold) that fires on most of both.

    A candidate responds strongly (its threshold is at least `strong` times its own top value,
    the 99.9th percentile of its activations), fires mostly on the pair (precision >=
    `min_precision` for their union) and puts at least `min_share` of its firings on each;
    among those, the one with the largest smaller sensitivity wins. A pair is kept when each concept has its own feature with specificity >=
    `min_specificity`: the SAE separates what the neuron mixes. Sorted, most polysemantic first.
    """
    check_concepts(concepts)
    for name, value in (("min_precision", min_precision), ("min_share", min_share),
                        ("min_specificity", min_specificity), ("strong", strong)):  # fmt: skip
        check_real(value, name, 0.0, 1.0)
    above = scan.neuron_counts.flip(1).cumsum(1).flip(1)[:, 1:]
    total = above.sum(-1).clamp_min(1)
    top_k = (total / len(scan.group) > 1e-3).sum(1).clamp_max(len(NEURON_EDGES) - 1)
    strong_enough = NEURON_EDGES[None, :] >= strong * NEURON_EDGES[top_k][:, None]
    found = []
    for i, a in enumerate(concepts):
        for b in concepts[i + 1 :]:
            hit_a, hit_b = (above[..., concept_groups(c)].sum(-1) for c in (a, b))
            sens_a, sens_b = (
                h / scan.group_sizes[concept_groups(c)].sum().clamp_min(1)
                for h, c in ((hit_a, a), (hit_b, b))
            )
            ok = (
                strong_enough
                & ((hit_a + hit_b) / total >= min_precision)
                & (torch.minimum(hit_a, hit_b) / total >= min_share)
            )
            score = torch.where(ok, torch.minimum(sens_a, sens_b), -1.0)
            n, k = divmod(int(score.flatten().argmax()), score.shape[1])
            if score[n, k] <= 0:
                continue
            try:
                features = tuple(best_feature(scan, c, min_specificity) for c in (a, b))
            except ValueError:
                continue
            leak = tuple(
                float(
                    scan.feature_mass[f.index, concept_groups(other)].sum()
                    / scan.feature_mass[f.index].sum().clamp_min(1e-12)
                )
                for f, other in zip(features, (b, a), strict=True)
            )
            found.append(
                PolysemanticNeuron(
                    n,
                    (a, b),
                    float(NEURON_EDGES[k]),
                    (float(sens_a[n, k]), float(sens_b[n, k])),
                    (float(hit_a[n, k] / total[n, k]), float(hit_b[n, k] / total[n, k])),
                    float((hit_a[n, k] + hit_b[n, k]) / total[n, k]),
                    features,
                    leak,
                )
            )
    return sorted(found, key=lambda p: -min(p.sensitivity))
