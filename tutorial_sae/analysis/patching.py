"""Patching or adding activations at several hooks in one forward (chapter 8: tracing, ROME).

Split out of `tutorial_sae.analysis.interventions`, which re-exports every public name here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.data.activations import check_tokens
from tutorial_sae.utils import check_hook as _check_hook

RETURN_TYPES = ("logits", "loss", "token_losses")


def _pairs(act: Tensor, batch_index: Tensor | None, positions: Tensor | None):
    if (batch_index is None) != (positions is None):
        raise ValueError("expected both batch_index and positions, or neither")
    if batch_index is not None and batch_index.shape != positions.shape:
        raise ValueError(
            f"expected batch_index and positions of one shape, got {tuple(batch_index.shape)} "
            f"and {tuple(positions.shape)}"
        )
    return act.clone()


def patch_activation(
    stored: Float[Tensor, "batch pos d"],
    batch_index: Int[Tensor, " n"] | None = None,
    positions: Int[Tensor, " n"] | None = None,
) -> Callable[[Tensor], Tensor]:
    """Write a stored activation (e.g. from a clean run) into a hook (chapter 8: causal tracing).

    With `batch_index` and `positions`, only act[batch_index[i], positions[i]] is overwritten;
    `stored` broadcasts over the batch (shape [1, pos, d] serves every row).
    """

    def patch(act: Tensor) -> Tensor:
        out = _pairs(act, batch_index, positions)
        source = stored.to(act.device, act.dtype)
        if source.shape[1:] != act.shape[1:]:
            raise ValueError(
                f"expected a stored activation of shape [*, {', '.join(map(str, act.shape[1:]))}]"
                f", got {tuple(stored.shape)}"
            )
        source = source.expand_as(act)
        if batch_index is None:
            return source.clone()
        out[batch_index, positions] = source[batch_index, positions]
        return out

    return patch


def add_activation(
    delta: Float[Tensor, "... d"],
    batch_index: Int[Tensor, " n"] | None = None,
    positions: Int[Tensor, " n"] | None = None,
) -> Callable[[Tensor], Tensor]:
    """Add `delta` to a hook's activation (noise on embeddings, a steering or ROME vector).

    With `batch_index` and `positions`, `delta` ([n, d] or [d]) is added at those pairs only;
    without, it broadcasts over the whole activation. Gradients flow to `delta`.
    """

    def add(act: Tensor) -> Tensor:
        out = _pairs(act, batch_index, positions)
        if batch_index is None:
            return out + delta.to(act.dtype)
        out[batch_index, positions] = out[batch_index, positions] + delta.to(act.dtype)
        return out

    return add


def run_with_interventions(
    model,
    tokens: Int[Tensor, "batch pos"],
    interventions: dict[str, Callable[[Tensor], Tensor]],
    return_type: Literal["logits", "loss", "token_losses"] = "logits",
    grad: bool = False,
) -> Tensor:
    """One forward with several hooks replaced at once ({hook name: intervention}).

    `grad=True` keeps the autograd graph (to optimise a vector added at a hook, as ROME does).
    """
    check_tokens(tokens, model)
    for hook in interventions:
        _check_hook(model, hook)
    if return_type not in RETURN_TYPES:
        raise ValueError(f"expected return_type in {RETURN_TYPES}, got {return_type!r}")
    hooks = [(h, lambda act, hook, fn=fn: fn(act)) for h, fn in interventions.items()]
    tokens = tokens.to(model.cfg.device)
    with torch.set_grad_enabled(grad):
        logits = model.run_with_hooks(tokens, return_type="logits", fwd_hooks=hooks)
        if return_type == "logits":
            return logits
        losses = -logits[:, :-1].float().log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
        return losses if return_type == "token_losses" else losses.mean()
