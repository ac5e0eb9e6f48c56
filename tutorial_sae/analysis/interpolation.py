"""Interpolating between two SAE codes and reading the model's prediction along a path (chapter 7).

Split out of `tutorial_sae.analysis.walks`, which re-exports every name here but the one-call
experiment of section 7.5 (`interpolate_prompts`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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
    check_str,
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


def prompt_point(model, text: str) -> tuple[Int[Tensor, " pos"], Float[Tensor, " d_mlp"]]:
    """A prompt's tokens (BOS first) and the activation at its last token."""
    from tutorial_sae.data.activations import run_to_hook

    check_str(text, "text")
    tokens = model.to_tokens(text, truncate=False)[0].cpu()  # too long: run_to_hook refuses it
    return tokens, run_to_hook(model, tokens[None])[0, -1].cpu()


@dataclass(frozen=True)
class PromptInterpolation:
    """Chapter 7.5's experiment: the paths between two prompts' codes and the model along them.

    `predictions[method]` is the model at prompt A's last token with each point of that path
    spliced in; `top_a`/`top_b` are the top tokens at alpha 0 and 1 of the linear path, `flips`
    the first alpha of each path whose top token is `top_b` (nan: never), and `affine_gap` the
    largest |decode(lerp(z_a, z_b)) - lerp(decode(z_a), decode(z_b))| (float rounding only).
    """

    path: Interpolation
    predictions: dict[str, Predictions] = field(repr=False)
    top_a: int
    top_b: int
    flips: dict[str, float]
    affine_gap: float

    @property
    def alphas(self) -> Float[Tensor, " n"]:
        return self.path.alphas


def interpolate_prompts(
    model, sae: SAE, prompt_a: str, prompt_b: str, n: int = 21
) -> PromptInterpolation:
    """Interpolate (`interpolate`: lerp, slerp, re-encoded) between the SAE codes of the last
    tokens of two prompts, splice every decoded point into prompt A's last position
    (`predict_along`) and find where each path's top prediction becomes B's (`flip_alpha`)."""
    check_sae(sae)
    check_str(prompt_a, "prompt_a", allow_empty=False)
    check_str(prompt_b, "prompt_b", allow_empty=False)
    tokens_a, x_a = prompt_point(model, prompt_a)
    _, x_b = prompt_point(model, prompt_b)
    path = interpolate(sae, x_a, x_b, n=n)
    with torch.no_grad():
        ends = sae.decode(sae.encode(torch.stack([x_a, x_b])))
    affine_gap = float((path.points["lerp"] - lerp(ends[0], ends[1], path.alphas)).abs().max())
    preds = {
        m: predict_along(model, tokens_a, len(tokens_a) - 1, p) for m, p in path.points.items()
    }
    top_a, top_b = int(preds["lerp"].top_tokens[0, 0]), int(preds["lerp"].top_tokens[-1, 0])
    flips = {m: flip_alpha(path.alphas, p.top_tokens, to=top_b) for m, p in preds.items()}
    return PromptInterpolation(path, preds, top_a, top_b, flips, affine_gap)
