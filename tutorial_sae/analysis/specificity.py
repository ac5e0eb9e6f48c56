"""Specificity and sensitivity of SAE features and MLP neurons for script concepts (chapter 5).

Definitions after Bricken et al. 2023 ("Towards Monosemanticity", the Arabic feature): for a
concept C (a set of tokens) and a unit with activation a >= 0 on each token,
  specificity = sum of a over C / sum of a over all tokens  (the activation mass on C),
  precision   = #(C and a > 0) / #(a > 0)                   (the same, counting firings),
  sensitivity = #(C and a > 0) / #C                         (how much of C the unit fires on),
and F1 = 2 precision sensitivity / (precision + sensitivity) ranks units. A GELU neuron is never
exactly 0, so a neuron "fires" above a threshold, chosen per comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.analysis.scripts import (
    CONCEPTS,
    N_GROUPS,
    SCRIPTS,
    LabelledTokens,
    check_concepts,
    concept_groups,
)
from tutorial_sae.data.activations import DEFAULT_HOOK, run_to_hook
from tutorial_sae.utils import check_hook, check_index, check_int, check_sae

# Neuron thresholds: log-spaced bin edges from 0.01 to 31.6; a neuron "fires" above the edge
# a comparison picks (bin 0 holds everything at or below 0.01, negative GELU outputs included).
_EDGE_LOG10 = (-2.0, 1.5)
NEURON_EDGES = torch.logspace(*_EDGE_LOG10, 127)


def _neuron_bin(acts: Tensor) -> Tensor:
    # The bin of each value among NEURON_EDGES, by arithmetic on log10 (bucketize is slower).
    lo, hi = _EDGE_LOG10
    step = (hi - lo) / (len(NEURON_EDGES) - 1)
    position = (acts.clamp_min(1e-30).log10() - lo) / step
    return (position.ceil().clamp(0, len(NEURON_EDGES)) * (acts > 10**lo)).long()


@dataclass
class ScriptScan:
    """One pass of a model and SAE over labelled tokens (BOS excluded), everything later needs.

    Feature codes are kept sparse (row, feature, value); neurons as histograms of their
    activation per (bin, group), so any threshold can be evaluated afterwards.
    """

    token_ids: Int[Tensor, " n"]
    group: Int[Tensor, " n"]
    rows: Int[Tensor, " nnz"]
    cols: Int[Tensor, " nnz"]
    vals: Float[Tensor, " nnz"]
    feature_fires: Float[Tensor, "d_sae groups"]
    feature_mass: Float[Tensor, "d_sae groups"]
    neuron_counts: Float[Tensor, "d_mlp bins groups"]
    neuron_mass: Float[Tensor, "d_mlp bins groups"]

    @property
    def group_sizes(self) -> Float[Tensor, " groups"]:
        return torch.bincount(self.group, minlength=N_GROUPS).double()

    def concept_mask(self, concept: str) -> Tensor:
        """Bool [n]: the tokens of `concept`."""
        return concept_groups(concept)[self.group]

    def feature_values(self, feature: int) -> Float[Tensor, " n"]:
        """The feature's activation on every token (dense)."""
        out = torch.zeros(len(self.group))
        hit = self.cols == feature
        out[self.rows[hit]] = self.vals[hit]
        return out


@torch.no_grad()
def scan_scripts(
    model, sae, data: LabelledTokens, batch_size: int = 16, hook: str = DEFAULT_HOOK
) -> ScriptScan:
    """Run `model` to `hook` and `sae.encode` over `data`, collecting a ScriptScan."""
    if not isinstance(data, LabelledTokens):
        raise ValueError(f"data must be a LabelledTokens (label_tokens), got {type(data).__name__}")
    check_sae(sae)
    check_int(batch_size, "batch_size")
    check_hook(model, hook)
    if data.tokens.shape != data.script.shape or data.tokens.shape != data.lang.shape:
        raise ValueError(
            f"expected tokens, script and lang of one shape, got {tuple(data.tokens.shape)}, "
            f"{tuple(data.script.shape)}, {tuple(data.lang.shape)}"
        )
    d_sae, d_mlp, bins = sae.cfg.d_sae, sae.cfg.d_in, len(NEURON_EDGES) + 1
    feature_counts = torch.zeros(N_GROUPS * d_sae, dtype=torch.float64)
    feature_mass = torch.zeros_like(feature_counts)
    neuron_counts = torch.zeros(d_mlp * bins * N_GROUPS, dtype=torch.float64)
    neuron_mass = torch.zeros_like(neuron_counts)
    groups = (data.lang * len(SCRIPTS) + data.script)[:, 1:]
    rows, cols, vals, done = [], [], [], 0
    device = next(sae.parameters()).device
    for i in range(0, len(data.tokens), batch_size):
        acts = run_to_hook(model, data.tokens[i : i + batch_size], hook)[:, 1:]
        acts = acts.reshape(-1, d_mlp).to(device)
        group = groups[i : i + batch_size].flatten().to(device)
        codes = sae.encode(acts)
        r, c = codes.nonzero(as_tuple=True)
        v = codes[r, c]
        # Bincounts over (group, feature) and (neuron, bin, group) pairs: no dense [n, d] work.
        index = group[r] * d_sae + c
        feature_counts += torch.bincount(index, minlength=len(feature_counts)).cpu()
        feature_mass += torch.bincount(index, v.double(), minlength=len(feature_mass)).cpu()
        rows.append((r + done).cpu())
        cols.append(c.cpu())
        vals.append(v.cpu())
        index = (torch.arange(d_mlp, device=device) * bins + _neuron_bin(acts)) * N_GROUPS
        index = (index + group[:, None]).flatten()
        neuron_counts += torch.bincount(index, minlength=len(neuron_counts)).cpu()
        neuron_mass += torch.bincount(
            index, acts.flatten().double(), minlength=len(neuron_mass)
        ).cpu()
        done += len(group)
    return ScriptScan(
        token_ids=data.tokens[:, 1:].flatten(),
        group=groups.flatten(),
        rows=torch.cat(rows),
        cols=torch.cat(cols),
        vals=torch.cat(vals),
        feature_fires=feature_counts.reshape(N_GROUPS, d_sae).T,
        feature_mass=feature_mass.reshape(N_GROUPS, d_sae).T,
        neuron_counts=neuron_counts.reshape(d_mlp, bins, N_GROUPS),
        neuron_mass=neuron_mass.reshape(d_mlp, bins, N_GROUPS),
    )


@dataclass(frozen=True)
class Specificity:
    """One unit's specificity, precision and sensitivity for one concept (module docstring)."""

    specificity: float
    precision: float
    sensitivity: float


def specificity_sensitivity(acts: Float[Tensor, " n"], concept: Tensor) -> Specificity:
    """Scores of one unit with activations `acts` (>= 0, 0 = silent) on a bool `concept` mask,
    as Bricken et al. 2023 define them (module docstring)."""
    if acts.shape != concept.shape or concept.dtype != torch.bool:
        raise ValueError(
            f"expected acts and a bool concept mask of one shape, got {tuple(acts.shape)} "
            f"{acts.dtype} and {tuple(concept.shape)} {concept.dtype}"
        )
    on = acts > 0
    return Specificity(
        specificity=float(acts[concept].sum() / acts.sum().clamp_min(1e-12)),
        precision=float((on & concept).sum() / on.sum().clamp_min(1)),
        sensitivity=float((on & concept).sum() / concept.sum().clamp_min(1)),
    )


@dataclass(frozen=True)
class UnitScore:
    """One feature's or neuron's scores for a concept; `threshold` is 0 for features."""

    kind: str
    index: int
    concept: str
    specificity: float
    precision: float
    sensitivity: float
    f1: float
    threshold: float = 0.0


def _f1(precision: Tensor, sensitivity: Tensor) -> Tensor:
    return 2 * precision * sensitivity / (precision + sensitivity).clamp_min(1e-12)


def feature_scores(scan: ScriptScan, concept: str) -> dict[str, Tensor]:
    """specificity, precision, sensitivity, f1 and fires of every feature, each [d_sae]."""
    groups = concept_groups(concept)
    fires_all = scan.feature_fires.sum(1)
    hits = scan.feature_fires[:, groups].sum(1)
    precision = hits / fires_all.clamp_min(1)
    sensitivity = hits / scan.group_sizes[groups].sum().clamp_min(1)
    return {
        "specificity": scan.feature_mass[:, groups].sum(1)
        / scan.feature_mass.sum(1).clamp_min(1e-12),
        "precision": precision,
        "sensitivity": sensitivity,
        "f1": _f1(precision, sensitivity),
        "fires": fires_all,
    }


def _unit(kind: str, index: int, concept: str, scores: dict, threshold: float = 0.0) -> UnitScore:
    return UnitScore(
        kind,
        int(index),
        concept,
        *(float(scores[k]) for k in ("specificity", "precision", "sensitivity", "f1")),
        threshold=threshold,
    )


def best_feature(scan: ScriptScan, concept: str, min_specificity: float = 0.0) -> UnitScore:
    """The feature with the highest F1 for `concept` among those at least `min_specificity`."""
    scores = feature_scores(scan, concept)
    f1 = torch.where(scores["specificity"] >= min_specificity, scores["f1"], -1.0)
    best = int(f1.argmax())
    if f1[best] < 0:
        raise ValueError(f"no feature reaches specificity {min_specificity} for {concept!r}")
    return _unit("feature", best, concept, {k: v[best] for k, v in scores.items()})


def neuron_scores(scan: ScriptScan, concept: str) -> dict[str, Tensor]:
    """Scores of every neuron at every threshold, each [d_mlp, thresholds]; threshold k means
    firing above NEURON_EDGES[k]."""
    groups = concept_groups(concept)
    # Suffix sums over bins: counts and mass of the tokens above each threshold.
    above = scan.neuron_counts.flip(1).cumsum(1).flip(1)[:, 1:]
    mass = scan.neuron_mass.flip(1).cumsum(1).flip(1)[:, 1:]
    hits = above[..., groups].sum(-1)
    precision = hits / above.sum(-1).clamp_min(1)
    sensitivity = hits / scan.group_sizes[groups].sum().clamp_min(1)
    return {
        "specificity": mass[..., groups].sum(-1) / mass.sum(-1).clamp_min(1e-12),
        "precision": precision,
        "sensitivity": sensitivity,
        "f1": _f1(precision, sensitivity),
    }


def best_neuron(scan: ScriptScan, concept: str, sensitivity: float | None = None) -> UnitScore:
    """The neuron and threshold with the best F1 for `concept`.

    With `sensitivity` (matched sensitivity), each neuron gets the highest threshold at which it
    fires on at least that share of the concept, and the most precise neuron wins.
    """
    scores = neuron_scores(scan, concept)
    if sensitivity is None:
        flat = int(scores["f1"].flatten().argmax())
        n, k = divmod(flat, scores["f1"].shape[1])
    else:
        if not 0 < sensitivity <= 1:
            raise ValueError(f"expected a sensitivity in (0, 1], got {sensitivity}")
        # Sensitivity falls as the threshold rises: count the thresholds that still reach it.
        k_per = ((scores["sensitivity"] >= sensitivity).sum(1) - 1).clamp_min(0)
        precision = scores["precision"].gather(1, k_per[:, None]).squeeze(1)
        n = int(precision.argmax())
        k = int(k_per[n])
    picked = {key: value[n, k] for key, value in scores.items()}
    return _unit("neuron", n, concept, picked, threshold=float(NEURON_EDGES[k]))


@dataclass(frozen=True)
class FeatureFamily:
    """The features with precision >= `min_precision` for a concept, and the share of the
    concept's tokens on which at least one of them fires."""

    concept: str
    features: list[int]
    min_precision: float
    coverage: float


def feature_family(
    scan: ScriptScan, concept: str, min_precision: float = 0.8, min_fires: int = 5
) -> FeatureFamily:
    """All features that fire mostly (>= min_precision, >= min_fires times) on `concept`."""
    scores = feature_scores(scan, concept)
    keep = (scores["precision"] >= min_precision) & (scores["fires"] >= min_fires)
    members = keep.nonzero().flatten()
    mask = scan.concept_mask(concept)
    fired = torch.zeros(len(scan.group), dtype=torch.bool)
    fired[scan.rows[torch.isin(scan.cols, members)]] = True
    coverage = float((fired & mask).sum() / mask.sum().clamp_min(1))
    order = scores["sensitivity"][members].argsort(descending=True)
    return FeatureFamily(concept, members[order].tolist(), min_precision, coverage)


@dataclass(frozen=True)
class ConceptSummary:
    """A concept's best feature, the best neuron at the feature's sensitivity, and its family."""

    concept: str
    feature: UnitScore
    neuron: UnitScore
    family: FeatureFamily


def summarize(
    scan: ScriptScan, concepts: tuple[str, ...] = ("han", "arabic")
) -> list[ConceptSummary]:
    """One ConceptSummary per concept present in `scan` (concepts with no tokens are skipped)."""
    check_concepts(concepts)
    out = []
    for concept in concepts:
        if not scan.concept_mask(concept).any():
            continue
        feature = best_feature(scan, concept)
        out.append(
            ConceptSummary(
                concept,
                feature,
                best_neuron(scan, concept, feature.sensitivity),
                feature_family(scan, concept),
            )
        )
    return out


def concept_shares(scan: ScriptScan, feature: int) -> dict[str, float]:
    """The share of a feature's activation mass on each concept (the rest falls on tokens of no
    concept: spaces, digits and punctuation outside code)."""
    check_index(feature, "feature", len(scan.feature_mass))
    mass = scan.feature_mass[feature]
    total = mass.sum().clamp_min(1e-12)
    return {c: float(mass[concept_groups(c)].sum() / total) for c in CONCEPTS}
