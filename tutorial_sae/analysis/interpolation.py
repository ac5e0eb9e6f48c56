"""Interpolating between two SAE codes and reading the model's prediction along a path (chapter 7).

Split out of `tutorial_sae.analysis.walks`, which re-exports every name here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.analysis.interventions import run_with_intervention
from tutorial_sae.core.sae import SAE
from tutorial_sae.utils import (
    check_index,
    check_int,
    check_sae,
    check_same_shape,
    check_tensor,
    check_width,
)


def _check_pair(a: Tensor, b: Tensor, alphas: Tensor) -> None:
    check_tensor(a, "a", 1)
    check_tensor(b, "b", 1)
    check_same_shape(a, b, "a and b")
    check_tensor(alphas, "alphas", 1)


def lerp(a: Tensor, b: Tensor, alphas: Float[Tensor, " n"]) -> Float[Tensor, "n d"]:
    """(1 - alpha) a + alpha b for each alpha."""
    _check_pair(a, b, alphas)
    alphas = alphas.to(a)[:, None]
    return (1 - alphas) * a + alphas * b


def slerp(a: Tensor, b: Tensor, alphas: Float[Tensor, " n"]) -> Float[Tensor, "n d"]:
    """Spherical interpolation (Shoemake 1985): along the great circle, norms interpolated linearly.

    sin((1 - alpha) theta) / sin(theta) a^ + sin(alpha theta) / sin(theta) b^, scaled to
    (1 - alpha)|a| + alpha|b|; lerp of the unit vectors when a and b are (anti)parallel.
    """
    _check_pair(a, b, alphas)
    alphas = alphas.to(a)[:, None]
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0:
        raise ValueError("expected two non-zero vectors to slerp between, got a zero vector")
    ua, ub = a / na, b / nb
    theta = torch.arccos(torch.clamp(ua @ ub, -1.0, 1.0))
    if float(torch.sin(theta)) < 1e-6:
        direction = lerp(ua, ub, alphas[:, 0])
    else:
        direction = (torch.sin((1 - alphas) * theta) * ua + torch.sin(alphas * theta) * ub) / (
            torch.sin(theta)
        )
    return direction * ((1 - alphas) * na + alphas * nb)


@dataclass
class Predictions:
    """What the model predicts with each point spliced in: top tokens [n, k], probs [n, k], KL [n]."""

    top_tokens: Tensor
    top_probs: Tensor
    kl: Tensor
    probs: Tensor  # [n, d_vocab]


def predict_along(
    model,
    tokens: Int[Tensor, " pos"],
    position: int,
    points: Float[Tensor, "n d_in"],
    start: Tensor | None = None,
    top_k: int = 5,
) -> Predictions:
    """Next-token prediction at `position` of `tokens` with each point spliced in at the hook.

    With `start` None the model reads each point in place of its activation (the splice of a
    reconstruction); with `start` given it reads its own activation plus (point - start).
    KL is KL(p_0 || p_i) from the first point's prediction.
    """
    check_tensor(tokens, "tokens", 1, "int")
    check_index(position, "position", len(tokens))
    check_tensor(points, "points", 2)
    check_width(points, model.cfg.d_mlp, "points", "the model's d_mlp at the hook")
    if start is not None:
        check_tensor(start, "start", 1)
        check_width(start, model.cfg.d_mlp, "start", "the model's d_mlp at the hook")
    check_int(top_k, "top_k")
    if top_k > model.cfg.d_vocab:
        raise ValueError(f"top_k must be <= d_vocab={model.cfg.d_vocab}, got {top_k}")
    batch = tokens[: position + 1].expand(len(points), -1)

    def splice(act: Tensor) -> Tensor:
        act = act.clone()
        p = points.to(act)
        act[:, position] = p if start is None else act[:, position] + p - start.to(act)
        return act

    logits = run_with_intervention(model, batch, splice)[:, position].float()
    logp = logits.log_softmax(-1)
    kl = (logp[0].exp() * (logp[0] - logp)).sum(-1).clamp_min(0)
    top = logp.exp().topk(top_k, dim=-1)
    return Predictions(top.indices.cpu(), top.values.cpu(), kl.cpu(), logp.exp().cpu())


@dataclass
class Interpolation:
    """Decoded points [n_alpha, d_in] of each method (lerp, slerp, reencoded) between two codes."""

    alphas: Tensor
    points: dict[str, Tensor]
    codes: dict[str, Tensor]


def interpolate(sae: SAE, x_a: Tensor, x_b: Tensor, n: int = 21) -> Interpolation:
    """lerp and slerp of the two codes, and the codes of the lerp of the activations (re-encoded).

    The decoder is affine, so decode(lerp(z_a, z_b)) = lerp(decode(z_a), decode(z_b)).
    """
    check_int(n, "n")
    check_sae(sae)
    for name, x in (("x_a", x_a), ("x_b", x_b)):
        check_tensor(x, name, 1)
        check_width(x, sae.cfg.d_in, name, "the SAE's d_in")
    alphas = torch.linspace(0, 1, n)
    with torch.no_grad():
        z_a, z_b = sae.encode(x_a), sae.encode(x_b)
        codes = {
            "lerp": lerp(z_a, z_b, alphas),
            "slerp": slerp(z_a, z_b, alphas),
            "reencoded": sae.encode(lerp(x_a, x_b, alphas)),
        }
        points = {k: sae.decode(c) for k, c in codes.items()}
    return Interpolation(alphas, points, codes)


def flip_alpha(alphas: Tensor, top_tokens: Tensor, to: int | None = None) -> float:
    """First alpha whose top-1 token is `to` (with `to` None: differs from alpha 0's top-1);
    nan when that never happens."""
    check_tensor(alphas, "alphas", 1)
    check_tensor(top_tokens, "top_tokens", 2, "int")
    if len(alphas) != len(top_tokens):
        raise ValueError(f"alphas and top_tokens need one row per alpha, got {len(alphas)} and "
                         f"{len(top_tokens)}")  # fmt: skip
    top = top_tokens[:, 0]
    hit = top != top[0] if to is None else top == to
    return float(alphas[hit.nonzero()[0, 0]]) if hit.any() else math.nan
