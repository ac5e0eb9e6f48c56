"""Clamping one SAE feature four ways, the seed paper's figure 9 with the loss (chapter 6).

Split out of `tutorial_sae.analysis.ablation`, which re-exports every name here. Every model run
goes through `tutorial_sae.analysis.interventions`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.analysis.interventions import cache_last_mlp, replace_features, run_with_sae
from tutorial_sae.core.sae import SAE
from tutorial_sae.data.activations import DEFAULT_HOOK
from tutorial_sae.utils import check_index, check_sae

CLAMP_KINDS = ("none", "zero", "mean", "noise", "resample")
CHANGE_TOL = 0.1  # a re-encoded feature "changed" when it moved by > 10% of its activation


def clamp_values(
    kind: str,
    acts: Float[Tensor, " n"],
    chosen: Tensor,
    reference: Float[Tensor, " m"],
    seed: int = 0,
) -> Float[Tensor, " n"]:
    """New values of one feature: `acts` kept except on the `chosen` tokens (bool [n]), which get

    zero; the feature's mean over `reference` (its activations on a whole eval set, zeros
    included: mean-ablation); seeded Gaussian noise of the same RMS as its nonzero reference
    values (the seed paper's noise, at matched scale); or its value on a random reference token
    (resample-ablation). "none" returns `acts` unchanged.
    """
    if kind not in CLAMP_KINDS:
        raise ValueError(f"expected a clamp kind in {CLAMP_KINDS}, got {kind!r}")
    if chosen.shape != acts.shape or chosen.dtype != torch.bool:
        raise ValueError(
            f"expected a bool mask of shape {tuple(acts.shape)}, got {chosen.dtype} "
            f"{tuple(chosen.shape)}"
        )
    gen = torch.Generator().manual_seed(seed)
    n = int(chosen.sum())
    if kind == "none":
        new = acts[chosen]
    elif kind == "zero":
        new = torch.zeros(n)
    elif kind == "mean":
        new = reference.mean().expand(n)
    elif kind == "noise":
        active = reference[reference > 0]
        rms = active.pow(2).mean().sqrt() if len(active) else torch.tensor(0.0)
        new = torch.randn(n, generator=gen) * rms
    else:
        new = reference[torch.randint(len(reference), (n,), generator=gen)]
    out = acts.clone()
    out[chosen] = new.to(acts.dtype)
    return out


@dataclass(frozen=True)
class ClampEffect:
    """What one clamp of one feature does, measured on the tokens where the feature fired.

    `mse` and `cosine` compare the activation the model reads with the clean one; `changed` is
    the mean number of other features that move by more than CHANGE_TOL of their activation
    when that input is re-encoded, `changed_share` that number over the features active there;
    the loss changes are against the clean model.
    """

    kind: str
    keep_error: bool
    mse: float
    cosine: float
    changed: float
    changed_share: float
    dce_active: float
    dce_overall: float


@dataclass(frozen=True)
class ClampStudy:
    """Clamp effects of one feature, for each kind with and without the error term."""

    feature: int
    n_active: int
    n_tokens: int
    effects: tuple[ClampEffect, ...]

    def as_dict(self) -> dict[str, float]:
        """Flat numbers for glue: "<kind>_<err|rec>_<field>", e.g. "zero_err_dce_active"."""
        out: dict[str, float] = {"n_active": self.n_active, "n_tokens": self.n_tokens}
        for e in self.effects:
            prefix = f"{e.kind}_{'err' if e.keep_error else 'rec'}_"
            for name in ("mse", "cosine", "changed", "changed_share", "dce_active", "dce_overall"):
                out[prefix + name] = getattr(e, name)
        return out

    def get(self, kind: str, keep_error: bool) -> ClampEffect:
        """The effect of one clamp kind, with or without the error term."""
        for effect in self.effects:
            if effect.kind == kind and effect.keep_error == keep_error:
                return effect
        raise ValueError(f"expected a kind in {CLAMP_KINDS} with keep_error bool, got {kind!r}")


def _model_input(sae: SAE, x: Tensor, f: Tensor, f_new: Tensor, keep_error: bool) -> Tensor:
    # What SAESplice hands the model (see interventions.SAESplice).
    return x + (f_new - f) @ sae.W_dec if keep_error else sae.decode(f_new)


def clamp_effects(
    model,
    sae: SAE,
    tokens: Int[Tensor, "batch pos"],
    feature: int,
    reference_tokens: Int[Tensor, "m pos"] | None = None,
    seed: int = 0,
    hook: str = DEFAULT_HOOK,
) -> ClampStudy:
    """Clamp `feature` on the tokens where it fires (zero, mean, noise, resample; see
    `clamp_values`) and measure the seed paper's figure 9 effects: the reconstruction (MSE,
    cosine), the other features (re-encoded input) and the next-token loss, each with the
    error term kept (the model sees x + the edit) and without it (the model sees x_hat).
    Mean, noise and resample values come from the feature on `reference_tokens` (default:
    `tokens`)."""
    check_sae(sae)
    check_index(feature, "feature", sae.cfg.d_sae)
    x = cache_last_mlp(model, tokens, hook).act.to(sae.W_enc.dtype)
    with torch.no_grad():
        f = sae.encode(x)
        if reference_tokens is None:
            reference = f[:, feature]
        else:
            ref_x = cache_last_mlp(model, reference_tokens, hook).act.to(sae.W_enc.dtype)
            reference = sae.encode(ref_x)[:, feature]
    chosen = f[:, feature] > 0
    if not chosen.any():
        raise ValueError(f"expected feature {feature} to fire on some of the tokens, it never does")
    scored = chosen.reshape(tokens.shape)[:, :-1]  # the last position predicts nothing
    clean = run_with_sae(model, tokens, sae, return_type="token_losses")
    effects = []
    for keep_error in (True, False):
        for kind in CLAMP_KINDS:
            values = clamp_values(kind, f[:, feature], chosen, reference, seed)
            edit = replace_features(feature, values[:, None])
            with torch.no_grad():
                f_new = edit(f)
                before = _model_input(sae, x, f, f, keep_error)[chosen]
                after = _model_input(sae, x, f, f_new, keep_error)[chosen]
                f_before, f_after = sae.encode(before), sae.encode(after)
                scale = torch.maximum(f_before, f_after)
                moved = (f_after - f_before).abs() > CHANGE_TOL * scale
                active = scale > 0
                moved[:, feature] = active[:, feature] = False
            losses = run_with_sae(model, tokens, sae, edit, keep_error, hook, "token_losses")
            delta = losses - clean
            effects.append(
                ClampEffect(
                    kind,
                    keep_error,
                    mse=float((after - x[chosen]).pow(2).sum(-1).mean()),
                    cosine=float(torch.cosine_similarity(after, x[chosen], dim=-1).mean()),
                    changed=float(moved.sum(-1).float().mean()),
                    changed_share=float(moved.sum() / active.sum().clamp(min=1)),
                    dce_active=float(delta[scored].mean()),
                    dce_overall=float(delta.mean()),
                )
            )
    return ClampStudy(feature, int(chosen.sum()), chosen.numel(), tuple(effects))
