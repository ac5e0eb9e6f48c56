"""Attribution against exact ablation, top-k by activation vs effect, helpful removals (chapter 6).

Every model run goes through `tutorial_sae.analysis.interventions`. The one-layer model makes
exact ablation cheap: after the only MLP, each position's logits depend on that position
alone, so zeroing a feature changes the loss only where it fired and can be re-run on those
positions (`cache_last_mlp`, `logits_from_last_mlp`). The four clamps of one feature live in
`tutorial_sae.analysis.clamps`, re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.analysis.clamps import (  # noqa: F401 - re-exported for chapter 6
    CHANGE_TOL,
    CLAMP_KINDS,
    ClampEffect,
    ClampStudy,
    clamp_effects,
    clamp_values,
)
from tutorial_sae.analysis.interventions import (
    LastMLPCache,
    cache_last_mlp,
    latent_gradients,
    logits_from_last_mlp,
)
from tutorial_sae.analysis.ranking import (  # noqa: F401 - re-exported for chapter 6
    TopKOverlap,
    rank,
    spearman,
    top_k_overlap,
)
from tutorial_sae.core.sae import SAE
from tutorial_sae.data.activations import DEFAULT_HOOK
from tutorial_sae.utils import check_int, check_real, check_sae, check_tensor


@dataclass(frozen=True)
class AttributionStudy:
    """Exact ablation against attribution for many features and clamp strengths.

    A clamp of strength s sets f_i -> (1 - s) f_i at every token (s = 1: zero-ablation).
    `true_dce[s, j]` and `attributed[s, j]` are the change in the mean next-token loss over all
    `n_scored` predictions; `dce_active` is the mean change where feature j fired, at the largest
    strength.
    """

    features: Int[Tensor, " n"]
    frequency: Float[Tensor, " n"]
    mean_act: Float[Tensor, " n"]
    strengths: tuple[float, ...]
    true_dce: Float[Tensor, "s n"]
    attributed: Float[Tensor, "s n"]
    dce_active: Float[Tensor, " n"]
    n_scored: int

    @property
    def spearman(self) -> tuple[float, ...]:
        """Rank correlation of attribution with the exact effect, per strength."""
        return tuple(spearman(a, t) for a, t in zip(self.attributed, self.true_dce, strict=True))

    def summary(self, k: int = 10, n_top: int = 100) -> dict[str, float]:
        """Headline numbers for glue: rank agreement at the smallest and largest strength, how
        many of the `n_top` most frequent features hurt when removed, and the top-k overlap."""
        rho, overlap, n_top = self.spearman, self.overlap(k), min(n_top, len(self.features))
        return {
            "n_features": len(self.features),
            "small_strength": self.strengths[0],
            "rho_small": rho[0],
            "rho_full": rho[-1],
            "n_top": n_top,
            "n_hurts": int((self.dce_active[:n_top] > 0).sum()),
            "k": k,
            "shared": overlap.shared,
            "union": overlap.union,
            "jaccard": overlap.jaccard,
            "rho_act_effect": spearman(self.mean_act, self.true_dce[-1]),
        }

    def overlap(self, k: int = 10) -> TopKOverlap:
        """Top-k by mean activation against top-k by the loss increase at the largest strength."""
        return top_k_overlap(self.features, self.mean_act, self.true_dce[-1], k)


def attribute(
    latents: Float[Tensor, "n d_sae"],
    grads: Float[Tensor, "n d_sae"],
    strength: float = 1.0,
    n_scored: int | None = None,
) -> Float[Tensor, " d_sae"]:
    """Attribution's estimate of the change in mean loss when every feature, alone, is scaled by
    (1 - strength): -strength * sum over tokens of f_i * dL/df_i, over `n_scored` predictions
    (default: all n rows). First order in the edit (Templeton et al. 2024)."""
    check_tensor(latents, "latents", 2, "real")
    check_tensor(grads, "grads", 2, "real")
    check_real(strength, "strength")
    if latents.shape != grads.shape:
        raise ValueError(
            f"expected latents and grads of one shape [n, d_sae], got {tuple(latents.shape)} "
            f"and {tuple(grads.shape)}"
        )
    n_scored = latents.shape[0] if n_scored is None else n_scored
    check_int(n_scored, "n_scored")
    return -strength * (latents * grads).sum(0) / n_scored


def _exact_dce(
    model, sae: SAE, cache: LastMLPCache, clean: Tensor, f: Tensor, feature: int, strengths, hook
) -> Tensor:
    # Summed loss change over the rows where `feature` fires, one per strength: only those
    # rows change (see the module docstring).
    rows = torch.nonzero((f[:, feature] > 0) & (cache.next_tokens >= 0)).flatten()
    if len(rows) == 0:
        return torch.zeros(len(strengths))
    act, resid, target = cache.act[rows], cache.resid_mid[rows], cache.next_tokens[rows]
    direction = f[rows, feature, None] * sae.W_dec[feature].to(act.dtype)
    s = torch.tensor(strengths, dtype=act.dtype)
    logits = logits_from_last_mlp(
        model,
        resid.repeat(len(s), 1),
        (act[None] - s[:, None, None] * direction[None]).reshape(-1, act.shape[-1]),
        hook,
    )
    logp = logits.float().log_softmax(-1).reshape(len(s), len(rows), -1)
    losses = -logp.gather(-1, target[None, :, None].expand(len(s), -1, 1))[..., 0]
    return (losses - clean[rows][None]).sum(1)


def ablation_vs_attribution(
    model,
    sae: SAE,
    tokens: Int[Tensor, "batch pos"],
    n_features: int = 200,
    strengths: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0),
    hook: str = DEFAULT_HOOK,
) -> AttributionStudy:
    """For the `n_features` most frequent features: the exact change in next-token loss when
    each is scaled by (1 - s) alone (error term kept), against `attribute`'s first-order
    estimate, over the predictions of `tokens` (at most the features that fire there)."""
    check_sae(sae)
    check_int(n_features, "n_features")
    if (
        not isinstance(strengths, (tuple, list))
        or not strengths
        or any(isinstance(s, bool) or not isinstance(s, (int, float)) for s in strengths)
        or any(not 0 < s <= 1 for s in strengths)
        or list(strengths) != sorted(strengths)
    ):
        raise ValueError(f"expected increasing clamp strengths in (0, 1], got {strengths}")
    grads = latent_gradients(model, tokens, sae, hook)
    cache = cache_last_mlp(model, tokens, hook)
    f, g = grads.latents, grads.grads
    scored = cache.next_tokens >= 0
    clean = torch.zeros(len(scored))
    clean[scored] = grads.token_losses.flatten()
    fires = (f > 0).float()
    n_features = min(n_features, int((fires.sum(0) > 0).sum()))
    features = fires.sum(0).topk(n_features).indices
    n_scored = int(scored.sum())
    first_order = attribute(f[:, features], g[:, features], 1.0, n_scored)
    total = torch.stack(
        [_exact_dce(model, sae, cache, clean, f, i, strengths, hook) for i in features.tolist()], 1
    )
    n_active = (fires[:, features] * scored[:, None]).sum(0).clamp(min=1)
    return AttributionStudy(
        features=features,
        frequency=fires[:, features].mean(0),
        mean_act=f[:, features].mean(0),
        strengths=tuple(strengths),
        true_dce=total / n_scored,
        attributed=torch.tensor(strengths)[:, None] * first_order[None],
        dce_active=total[-1] / n_active,
        n_scored=n_scored,
    )


@dataclass(frozen=True)
class HelpfulRemoval:
    """A frequent feature whose zero-ablation lowers the loss where it fires: what it fires on
    (most common current tokens) and what its decoder direction promotes and suppresses."""

    feature: int
    frequency: float
    dce_active: float
    fires_on: tuple[str, ...]
    promoted: tuple[str, ...]
    suppressed: tuple[str, ...]


def helpful_removals(
    model, sae: SAE, tokens: Int[Tensor, "batch pos"], study: AttributionStudy, n_top: int = 100,
    k: int = 3, hook: str = DEFAULT_HOOK,
) -> list[HelpfulRemoval]:  # fmt: skip
    """The k features among the study's `n_top` most frequent whose removal helps most."""
    from collections import Counter

    from tutorial_sae.analysis.features import final_ln_scale, logit_effect, token_text

    if not isinstance(study, AttributionStudy):
        raise ValueError(f"study must be an AttributionStudy, got {type(study).__name__}")
    check_sae(sae)
    check_int(n_top, "n_top")
    check_int(k, "k")
    dce = study.dce_active[:n_top]
    order = [int(j) for j in dce.argsort()[:k] if dce[j] < 0]
    f = sae.encode(cache_last_mlp(model, tokens, hook).act).detach()
    ids = tokens.reshape(-1)
    scale = final_ln_scale(model, tokens)
    out = []
    for j in order:
        feature = int(study.features[j])
        common = Counter(ids[f[:, feature] > 0].tolist()).most_common(5)
        effect = logit_effect(model, sae, feature, scale, k=5, hook=hook)
        out.append(
            HelpfulRemoval(
                feature,
                float(study.frequency[j]),
                float(dce[j]),
                tuple(token_text(model.tokenizer, t) for t, _ in common),
                tuple(t for t, _ in effect.promoted),
                tuple(t for t, _ in effect.suppressed),
            )
        )
    return out
