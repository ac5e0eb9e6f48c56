"""Run the model with an SAE spliced in at a hook and its latents edited (chapters 3, 6-8).

The one place in the book that writes hooks. An intervention is a function from the activation
at a hook to a new activation; the SAE splice encodes the activation, applies a `LatentEdit`
to the latents and decodes. With `keep_error=True` the SAE's reconstruction error is added
back, so the model sees x + W_dec^T (f' - f): exactly x when the edit changes nothing, and
exactly the edit's effect otherwise (Marks et al. 2024, *Sparse Feature Circuits*). With
`keep_error=False` the model sees the reconstruction W_dec^T f' + b_dec, as in the CE loss
recovered metric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.analysis.patching import (  # noqa: F401 - re-exported (chapter 8)
    RETURN_TYPES,
    add_activation,
    patch_activation,
    run_with_interventions,
)
from tutorial_sae.core.sae import SAE
from tutorial_sae.data.activations import DEFAULT_HOOK, check_tokens
from tutorial_sae.utils import check_bool, check_hook, check_real, check_sae, check_tensor

EDIT_KINDS = ("zero", "clamp", "add", "replace", "function")
Intervention = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class LatentEdit:
    """A change to SAE latents f [n, d_sae]: zero, clamp to, add to or replace some features.

    `value` is a number (same for every feature and token) or a tensor broadcastable to
    [n, len(features)]; kind "function" applies `fn` to the whole latent tensor instead.
    Build one with `zero_features`, `clamp_features`, `add_to_features`, `replace_features`
    or `edit_latents`.
    """

    kind: str
    features: tuple[int, ...] = ()
    value: float | Tensor | None = None
    fn: Callable[[Tensor], Tensor] | None = None

    def __post_init__(self) -> None:
        if self.kind not in EDIT_KINDS:
            raise ValueError(f"expected an edit kind in {EDIT_KINDS}, got {self.kind!r}")
        if self.kind == "function":
            if not callable(self.fn):
                raise ValueError(f"expected a callable fn for a function edit, got {self.fn!r}")
            return
        if not self.features:
            raise ValueError(f"expected at least one feature index to {self.kind}, got none")
        if self.kind != "zero" and self.value is None:
            raise ValueError(f"expected a value to {self.kind} features with, got None")
        if isinstance(self.value, Tensor):
            check_tensor(self.value, "value", kind="real", nonempty=False)
        elif self.value is not None:
            check_real(self.value, "value")

    def __call__(self, f: Float[Tensor, "n d_sae"]) -> Float[Tensor, "n d_sae"]:
        if self.kind == "function":
            out = self.fn(f)
            if not isinstance(out, Tensor) or out.shape != f.shape:
                got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(
                    f"expected the edit function to return {tuple(f.shape)}, got {got}"
                )
            return out
        d_sae = f.shape[-1]
        bad = [i for i in self.features if not 0 <= i < d_sae]
        if bad:
            raise ValueError(f"expected feature indices in [0, {d_sae}), got {bad}")
        index = torch.tensor(self.features, device=f.device)
        out = f.clone()
        if self.kind == "zero":
            out[:, index] = 0.0
            return out
        value = torch.as_tensor(self.value, dtype=f.dtype, device=f.device)
        try:
            target = value.expand(f.shape[0], len(self.features))
        except RuntimeError as err:
            raise ValueError(
                f"expected a value broadcastable to [{f.shape[0]}, {len(self.features)}] "
                f"(tokens, features), got shape {tuple(value.shape)}"
            ) from err
        out[:, index] = target + f[:, index] if self.kind == "add" else target
        return out


def _indices(features: int | Sequence[int] | Tensor) -> tuple[int, ...]:
    if isinstance(features, Tensor):
        features = features.flatten().tolist()
    elif isinstance(features, int):
        features = [features]
    if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in features):
        raise ValueError(f"expected integer feature indices >= 0, got {list(features)!r}")
    return tuple(features)


def zero_features(features: int | Sequence[int] | Tensor) -> LatentEdit:
    """Ablate: set these features' activations to 0 on every token."""
    return LatentEdit("zero", _indices(features))


def clamp_features(features: int | Sequence[int] | Tensor, value: float | Tensor) -> LatentEdit:
    """Set these features to `value` on every token, whether they fired or not."""
    return LatentEdit("clamp", _indices(features), value)


def add_to_features(features: int | Sequence[int] | Tensor, amount: float | Tensor) -> LatentEdit:
    """Add `amount` to these features' activations (steering by a multiple of a direction)."""
    return LatentEdit("add", _indices(features), amount)


def replace_features(features: int | Sequence[int] | Tensor, values: Tensor) -> LatentEdit:
    """Replace these features' activations with `values` [n, len(features)] (e.g. noise)."""
    return LatentEdit("replace", _indices(features), values)


def edit_latents(fn: Callable[[Tensor], Tensor]) -> LatentEdit:
    """Any edit: `fn` maps the latents [n, d_sae] to new latents of the same shape."""
    return LatentEdit("function", fn=fn)


@dataclass
class SAESplice:
    """The intervention that routes a hook's activation through `sae`, editing its latents.

    After a run, `latents` holds the unedited latents [n_tokens, d_sae] of the last batch
    (and `edited` the edited ones) when `record=True`.
    """

    sae: SAE
    edit: LatentEdit | None = None
    keep_error: bool = True
    record: bool = False
    latents: Tensor | None = None
    edited: Tensor | None = None

    def __call__(self, act: Tensor) -> Tensor:
        if act.shape[-1] != self.sae.cfg.d_in:
            raise ValueError(
                f"the sae reads activations of width d_in={self.sae.cfg.d_in}, got {act.shape[-1]} "
                "at the hook: was it trained on another hook or model?"
            )
        x = act.reshape(-1, act.shape[-1]).to(self.sae.W_enc.device, self.sae.W_enc.dtype)
        f = self.sae.encode(x)
        f_new = f if self.edit is None else self.edit(f)
        if self.record:
            self.latents, self.edited = f.detach(), f_new.detach()
        if self.keep_error:
            out = x if f_new is f else x + (f_new - f) @ self.sae.W_dec
        else:
            out = self.sae.decode(f_new)
        return out.reshape(act.shape).to(act.device, act.dtype)


def zero_ablation(act: Tensor) -> Tensor:
    """Replace the activation by zeros (the CE loss recovered baseline of Nanda's run1)."""
    return torch.zeros_like(act)


def mean_ablation(mean: Float[Tensor, " d"]) -> Intervention:
    """Replace the activation at every position by `mean` (Bricken et al. 2023's baseline)."""
    check_tensor(mean, "mean", 1)

    def replace(act: Tensor) -> Tensor:
        if mean.shape != act.shape[-1:]:
            raise ValueError(
                f"expected a mean of shape {tuple(act.shape[-1:])}, got {tuple(mean.shape)}"
            )
        return mean.to(act.device, act.dtype).expand_as(act)

    return replace


_check_hook = check_hook


def _checked(intervention: Intervention) -> Callable:
    # A TransformerLens hook that refuses an intervention's output of another shape or type
    # (else the model fails deep inside the next matmul).
    if not callable(intervention):
        raise ValueError(
            f"intervention must be callable (act -> act) or None, got {intervention!r}"
        )

    def hook_fn(act: Tensor, hook) -> Tensor:
        out = intervention(act)
        if not isinstance(out, Tensor) or out.shape != act.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"intervention must return the activation's shape {tuple(act.shape)}, got {got}"
            )
        return out

    return hook_fn


def run_with_intervention(
    model,
    tokens: Int[Tensor, "batch pos"],
    intervention: Intervention | None = None,
    hook: str = DEFAULT_HOOK,
    return_type: Literal["logits", "loss", "token_losses"] = "logits",
) -> Tensor:
    """One forward of `tokens` with `intervention` replacing the activation at `hook`.

    return_type "logits" gives [batch, pos, d_vocab]; "loss" the mean next-token loss (nats);
    "token_losses" the loss of each prediction, [batch, pos - 1]. No intervention: clean run.
    """
    check_tokens(tokens, model)
    _check_hook(model, hook)
    if return_type not in RETURN_TYPES:
        raise ValueError(f"expected return_type in {RETURN_TYPES}, got {return_type!r}")
    if return_type != "logits" and tokens.shape[1] < 2:
        raise ValueError(f"a loss needs sequences of >= 2 tokens, got {tuple(tokens.shape)}")
    if tokens.numel() == 0:
        raise ValueError(f"tokens must hold at least one token, got shape {tuple(tokens.shape)}")
    hooks = [] if intervention is None else [(hook, _checked(intervention))]
    tokens = tokens.to(model.cfg.device)
    with torch.no_grad():
        if return_type == "token_losses":
            logits = model.run_with_hooks(tokens, return_type="logits", fwd_hooks=hooks)
            logp = logits[:, :-1].float().log_softmax(-1)
            return -logp.gather(-1, tokens[:, 1:, None])[..., 0]
        return model.run_with_hooks(tokens, return_type=return_type, fwd_hooks=hooks)


def run_with_sae(
    model,
    tokens: Int[Tensor, "batch pos"],
    sae: SAE,
    edit: LatentEdit | None = None,
    keep_error: bool = True,
    hook: str = DEFAULT_HOOK,
    return_type: Literal["logits", "loss", "token_losses"] = "logits",
) -> Tensor:
    """One forward with `sae` spliced in at `hook` and `edit` applied to its latents.

    keep_error=True adds the SAE's error term back (the edit's exact effect; no edit gives
    the clean run); keep_error=False feeds the model the (edited) reconstruction.
    """
    check_sae(sae)
    check_bool(keep_error, "keep_error")
    if edit is not None and not isinstance(edit, LatentEdit):
        raise ValueError(f"edit must be a LatentEdit (zero_features, ...) or None, got {edit!r}")
    splice = SAESplice(sae, edit, keep_error)
    return run_with_intervention(model, tokens, splice, hook, return_type)


@dataclass(frozen=True)
class LatentGradients:
    """SAE latents at every position and the gradient of the summed next-token loss w.r.t. them.

    `latents` and `grads` are [batch * pos, d_sae] (positions flattened row-major);
    `token_losses` is [batch, pos - 1], from the same forward.
    """

    latents: Float[Tensor, "n d_sae"]
    grads: Float[Tensor, "n d_sae"]
    token_losses: Float[Tensor, "batch pos_minus_1"]


class _GradSplice:
    # Like SAESplice(keep_error=True) with an empty edit, but the latents are a leaf that
    # requires grad: the output is x + (f - f.detach()) @ W_dec, equal to x in value.
    def __init__(self, sae: SAE):
        self.sae, self.latents = sae, None

    def __call__(self, act: Tensor) -> Tensor:
        if act.shape[-1] != self.sae.cfg.d_in:
            raise ValueError(
                f"the sae reads activations of width d_in={self.sae.cfg.d_in}, got {act.shape[-1]} "
                "at the hook: was it trained on another hook or model?"
            )
        x = act.reshape(-1, act.shape[-1]).to(self.sae.W_enc.device, self.sae.W_enc.dtype)
        with torch.no_grad():
            f = self.sae.encode(x)
        self.latents = f.requires_grad_(True)
        out = x.detach() + (self.latents - f.detach()) @ self.sae.W_dec.detach()
        return out.reshape(act.shape).to(act.device, act.dtype)


def latent_gradients(
    model, tokens: Int[Tensor, "batch pos"], sae: SAE, hook: str = DEFAULT_HOOK
) -> LatentGradients:
    """d(sum of next-token losses)/d(latents) with the SAE spliced in, its error term kept.

    The model's output is the clean one; the gradient flows to the latents through their
    decoder directions only (W_dec f). Activation x gradient is the first-order (attribution)
    estimate of what zero-ablating a feature does to the loss (Templeton et al. 2024;
    Marks et al. 2024).
    """
    check_tokens(tokens, model)
    _check_hook(model, hook)
    if tokens.shape[1] < 2:
        raise ValueError(f"a loss needs sequences of >= 2 tokens, got {tuple(tokens.shape)}")
    splice = _GradSplice(sae)
    tokens = tokens.to(model.cfg.device)
    with torch.enable_grad():
        logits = model.run_with_hooks(
            tokens, return_type="logits", fwd_hooks=[(hook, lambda act, hook: splice(act))]
        )
        logp = logits[:, :-1].float().log_softmax(-1)
        losses = -logp.gather(-1, tokens[:, 1:, None])[..., 0]
        (grads,) = torch.autograd.grad(losses.sum(), [splice.latents])
    return LatentGradients(splice.latents.detach(), grads.detach(), losses.detach())


@dataclass(frozen=True)
class LastMLPCache:
    """Per position (flattened [batch * pos]): the residual stream before the last MLP adds its
    output, the activation at its hook_post, and the next token (-1 at each row's last position).
    """

    resid_mid: Float[Tensor, "n d_model"]
    act: Float[Tensor, "n d_mlp"]
    next_tokens: Int[Tensor, " n"]


def _last_mlp_block(model, hook: str) -> int:
    last = model.cfg.n_layers - 1
    if hook != f"blocks.{last}.mlp.hook_post" or getattr(model.cfg, "parallel_attn_mlp", False):
        raise ValueError(
            f"expected the last block's MLP output hook 'blocks.{last}.mlp.hook_post' in a "
            f"sequential block (only there does an edit stay at its own position), got {hook!r}"
        )
    return last


def cache_last_mlp(
    model, tokens: Int[Tensor, "batch pos"], hook: str = DEFAULT_HOOK
) -> LastMLPCache:
    """One clean forward, keeping what `logits_from_last_mlp` needs to re-run any position.

    After the last MLP, a position's logits depend on that position alone (the MLP output, the
    residual add, the final LayerNorm and the unembedding are per token), so an edit at the
    hook can be re-run on just the positions it touches.
    """
    check_tokens(tokens, model)
    _check_hook(model, hook)
    block = _last_mlp_block(model, hook)
    tokens = tokens.to(model.cfg.device)
    names = (f"blocks.{block}.hook_resid_mid", hook)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    next_tokens = torch.cat([tokens[:, 1:], torch.full_like(tokens[:, :1], -1)], 1)
    return LastMLPCache(
        cache[names[0]].reshape(-1, model.cfg.d_model),
        cache[hook].reshape(-1, cache[hook].shape[-1]),
        next_tokens.reshape(-1),
    )


def logits_from_last_mlp(
    model,
    resid_mid: Float[Tensor, "n d_model"],
    act: Float[Tensor, "n d_mlp"],
    hook: str = DEFAULT_HOOK,
) -> Float[Tensor, "n d_vocab"]:
    """The logits of positions whose last-MLP activation is `act` (rows of a `LastMLPCache`,
    edited or not): the rest of the forward pass, for those rows only."""
    block = model.blocks[_last_mlp_block(model, hook)]
    if resid_mid.shape[0] != act.shape[0]:
        raise ValueError(
            f"expected as many residual rows as activation rows, got {resid_mid.shape[0]} "
            f"and {act.shape[0]}"
        )
    with torch.no_grad():
        mlp_out = act @ block.mlp.W_out + block.mlp.b_out
        return model.unembed(model.ln_final((resid_mid + mlp_out)[:, None]))[:, 0]
