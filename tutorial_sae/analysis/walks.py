"""Random walks and interpolation in an SAE's latent space, and what the model says along them (chapter 7).

The seed paper's experiment (its figure 10): start from a token's SAE code, take steps of a
fixed size in random directions, and watch the reconstruction drift from the start. Five
kinds of walk: `latent` (the paper's: raw steps in R^d_sae), `relu` (clipped back to codes
>= 0), `active` (steps only along the start's active features, clipped), `decoder` (steps in
activation space from the start's reconstruction) and `reprojected` (each step decoded and
re-encoded, so the walk stays on codes the SAE itself produces).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.analysis.interventions import run_with_intervention
from tutorial_sae.core.sae import SAE

WALK_KINDS = ("latent", "relu", "active", "decoder", "reprojected")
METRICS = ("mse", "cosine", "distance", "l0", "consistency", "nearest")


def walk_directions(
    n_steps: int, n_seeds: int, dim: int, seed: int = 0, support: Tensor | None = None
) -> Float[Tensor, "n_steps n_seeds dim"]:
    """Unit directions drawn uniformly on the sphere (Gaussian / norm), one per step and walk.

    `support`, a bool [dim] mask, restricts the directions to those coordinates.
    """
    if n_steps < 1 or n_seeds < 1 or dim < 1:
        raise ValueError(f"expected n_steps, n_seeds, dim >= 1, got {n_steps}, {n_seeds}, {dim}")
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(n_steps, n_seeds, dim, generator=gen)
    if support is not None:
        if support.shape != (dim,) or not support.any():
            raise ValueError(f"expected a non-empty bool support of shape ({dim},), got {support}")
        g = g * support.to(g.dtype)
    return g / g.norm(dim=-1, keepdim=True)


def random_walk(
    start: Float[Tensor, " dim"],
    n_steps: int,
    step_size: float,
    n_seeds: int = 32,
    seed: int = 0,
    project: Callable[[Tensor], Tensor] | None = None,
    support: Tensor | None = None,
) -> Float[Tensor, "n_seeds n_steps_plus_1 dim"]:
    """z_{t+1} = project(z_t + step_size * u_t), u_t uniform on the unit sphere; z_0 = start.

    Every step has norm `step_size` before `project` (e.g. a ReLU clip); same seed, same walk.
    """
    if start.ndim != 1:
        raise ValueError(f"expected one start vector [dim], got shape {tuple(start.shape)}")
    if not step_size > 0:
        raise ValueError(f"expected a step size > 0, got {step_size}")
    dirs = walk_directions(n_steps, n_seeds, start.shape[0], seed, support).to(start)
    z = start.expand(n_seeds, -1).clone()
    states = [z]
    for u in dirs:
        z = z + step_size * u
        if project is not None:
            z = project(z)
        states.append(z)
    return torch.stack(states, dim=1)


@dataclass
class Walk:
    """n_seeds walks of one kind from one start: codes [n_seeds, T+1, d_sae], points [.., d_in]."""

    kind: str
    step_size: float
    codes: Tensor
    points: Tensor


def walk(
    sae: SAE,
    x0: Float[Tensor, " d_in"],
    kind: str,
    step_size: float,
    n_steps: int = 40,
    n_seeds: int = 32,
    seed: int = 0,
) -> Walk:
    """One kind of walk (WALK_KINDS) from the token activation x0; points are what decodes."""
    if kind not in WALK_KINDS:
        raise ValueError(f"expected a walk kind in {WALK_KINDS}, got {kind!r}")
    with torch.no_grad():
        z0 = sae.encode(x0)
        args = dict(n_steps=n_steps, step_size=step_size, n_seeds=n_seeds, seed=seed)
        if kind == "decoder":
            points = random_walk(sae.decode(z0), **args)
            return Walk(kind, step_size, sae.encode(points), points)
        project = {
            "latent": None,
            "relu": torch.relu,
            "active": torch.relu,
            "reprojected": lambda z: sae.encode(sae.decode(z)),
        }[kind]
        support = (z0 > 0) if kind == "active" else None
        codes = random_walk(z0, project=project, support=support, **args)
        return Walk(kind, step_size, codes, sae.decode(codes))


def isotropic_cosine(start_norm: float, step_size: float, n_steps: int) -> Float[Tensor, " T"]:
    """Cosine between x_0 and x_t = x_0 + s (u_1 + ... + u_t) for isotropic unit steps u_i.

    In high dimension the u_i are nearly orthogonal to x_0 and to each other, so
    |x_t|^2 ~ |x_0|^2 + t s^2 and x_0 . x_t ~ |x_0|^2: cos ~ 1 / sqrt(1 + t s^2 / |x_0|^2).
    """
    if not start_norm > 0:
        raise ValueError(f"expected a start norm > 0, got {start_norm}")
    t = torch.arange(n_steps + 1, dtype=torch.float32)
    return 1 / torch.sqrt(1 + t * step_size**2 / start_norm**2)


def nearest_distance(
    points: Float[Tensor, "*batch d"], bank: Float[Tensor, "n d"], chunk: int = 4096
) -> Float[Tensor, "*batch"]:
    """Euclidean distance from each point to its nearest row of `bank` (real activations)."""
    if points.shape[-1] != bank.shape[-1]:
        raise ValueError(f"expected points of width {bank.shape[-1]}, got {points.shape[-1]}")
    flat = points.reshape(-1, points.shape[-1])
    out = torch.cat([torch.cdist(c, bank).min(-1).values for c in flat.split(chunk)])
    return out.reshape(points.shape[:-1])


def data_radius(bank: Tensor, held_out: Tensor, quantile: float = 0.99) -> float:
    """The `quantile` of held-out real activations' nearest-bank distances: 'on the data' below."""
    return float(nearest_distance(held_out, bank).quantile(quantile))


def steps_on_data(nearest: Float[Tensor, "*batch T"], radius: float) -> Float[Tensor, "*batch"]:
    """Steps taken before the walk first lies farther than `radius` from any real activation.

    A walk that never leaves counts its full length (T - 1 steps).
    """
    outside = nearest > radius
    first = torch.where(outside.any(-1), outside.float().argmax(-1), outside.shape[-1] - 1)
    return first.float()


def walk_metrics(
    sae: SAE, x0: Tensor, w: Walk, bank: Tensor | None = None, names: Sequence[str] = METRICS
) -> dict[str, Tensor]:
    """The METRICS in `names` as [n_seeds, T+1]: squared error to x0, cosine and distance to the
    start (distance in the walk's own space), L0, |E(D(z)) - z| and nearest real activation."""
    unknown = set(names) - set(METRICS)
    if unknown or ("nearest" in names and bank is None):
        raise ValueError(f"expected metric names in {METRICS} (nearest needs a bank), got {names}")
    own = w.points if w.kind == "decoder" else w.codes
    compute = {
        "mse": lambda: (w.points - x0).pow(2).sum(-1),
        "cosine": lambda: torch.cosine_similarity(w.points, w.points[:, :1], dim=-1),
        "distance": lambda: (own - own[:, :1]).norm(dim=-1),
        "l0": lambda: (w.codes > 0).float().sum(-1),
        "consistency": lambda: (sae.encode(sae.decode(w.codes)) - w.codes).norm(dim=-1),
        "nearest": lambda: nearest_distance(w.points, bank),
    }
    with torch.no_grad():
        return {name: compute[name]() for name in names}


@dataclass
class WalkStudy:
    """Metrics of every (kind, step size): metrics[kind][s][name] is [n_starts, n_seeds, T+1]."""

    kinds: tuple[str, ...]
    step_sizes: tuple[float, ...]
    n_steps: int
    n_seeds: int
    start_norms: Tensor  # |x_hat_0| of each start (decoder-space walks start there)
    radius: float
    metrics: dict[str, dict[float, dict[str, Tensor]]]
    paths: dict[str, dict[float, Tensor]] = field(default_factory=dict)  # first start's points

    def curve(self, kind: str, step_size: float, name: str) -> Tensor:
        """[n_starts * n_seeds, T+1]: one row per walk."""
        return self.metrics[kind][step_size][name].flatten(0, 1)

    def steps_on_data(self, kind: str, step_size: float) -> float:
        """Mean over walks of the steps before leaving the data's 99th-percentile radius."""
        return float(steps_on_data(self.curve(kind, step_size, "nearest"), self.radius).mean())


def run_walks(
    sae: SAE,
    starts: Float[Tensor, "n_starts d_in"],
    bank: Tensor,
    held_out: Tensor,
    kinds: Sequence[str] = WALK_KINDS,
    step_sizes: Sequence[float] = (0.5, 1.0, 2.0),
    n_steps: int = 40,
    n_seeds: int = 32,
    seed: int = 0,
    n_paths: int = 4,
    metrics: Sequence[str] = METRICS,
) -> WalkStudy:
    """Every kind of walk at every step size from every start (start i uses seed + 1000 i);
    `metrics` names the walk_metrics to keep."""
    if starts.ndim != 2 or len(starts) == 0:
        raise ValueError(f"expected starts [n_starts, d_in], got shape {tuple(starts.shape)}")
    results: dict = {k: {} for k in kinds}
    paths: dict = {k: {} for k in kinds}
    for kind in kinds:
        for s in step_sizes:
            per_start = []
            for i, x0 in enumerate(starts):
                w = walk(sae, x0, kind, s, n_steps, n_seeds, seed + 1000 * i)
                per_start.append(walk_metrics(sae, x0, w, bank, metrics))
                if i == 0:
                    paths[kind][s] = w.points[:n_paths].clone()
            results[kind][s] = {m: torch.stack([p[m] for p in per_start]) for m in per_start[0]}
    with torch.no_grad():
        norms = sae.decode(sae.encode(starts)).norm(dim=-1)
    return WalkStudy(
        tuple(kinds),
        tuple(step_sizes),
        n_steps,
        n_seeds,
        norms,
        data_radius(bank, held_out),
        results,
        paths,
    )


def lerp(a: Tensor, b: Tensor, alphas: Float[Tensor, " n"]) -> Float[Tensor, "n d"]:
    """(1 - alpha) a + alpha b for each alpha."""
    alphas = alphas.to(a)[:, None]
    return (1 - alphas) * a + alphas * b


def slerp(a: Tensor, b: Tensor, alphas: Float[Tensor, " n"]) -> Float[Tensor, "n d"]:
    """Spherical interpolation (Shoemake 1985): along the great circle, norms interpolated linearly.

    sin((1 - alpha) theta) / sin(theta) a^ + sin(alpha theta) / sin(theta) b^, scaled to
    (1 - alpha)|a| + alpha|b|; lerp of the unit vectors when a and b are (anti)parallel.
    """
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
    if tokens.ndim != 1 or not 0 <= position < len(tokens):
        raise ValueError(f"expected 1-D tokens and 0 <= position < {len(tokens)}, got {position}")
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
    top = top_tokens[:, 0]
    hit = top != top[0] if to is None else top == to
    return float(alphas[hit.nonzero()[0, 0]]) if hit.any() else math.nan


@dataclass
class WalkData:
    """Real activations: a bank to measure distances to, held-out ones, and the walks' starts."""

    bank: Tensor
    held_out: Tensor
    starts: Tensor
    start_tokens: Tensor  # [n_starts, pos]: each start's sequence
    start_positions: Tensor  # [n_starts]: the start token's position in it


def walk_data(
    model, train_tokens: Tensor, eval_tokens: Tensor, n_starts: int = 4, seed: int = 0
) -> WalkData:
    """Activations of every non-BOS token: train ones as the bank, eval ones held out, starts drawn
    from eval positions >= 8 (some context before them)."""
    from tutorial_sae.data.activations import collect_activations

    bank = collect_activations(model, train_tokens, progress=False)[:, 1:].flatten(0, 1)
    acts = collect_activations(model, eval_tokens, progress=False)
    gen = torch.Generator().manual_seed(seed)
    seqs = torch.randperm(len(eval_tokens), generator=gen)[:n_starts]
    pos = torch.randint(8, eval_tokens.shape[1], (len(seqs),), generator=gen)
    return WalkData(bank, acts[:, 1:].flatten(0, 1), acts[seqs, pos], eval_tokens[seqs], pos)


def pca_2d(bank: Float[Tensor, "n d"]) -> tuple[Tensor, Tensor]:
    """Mean [d] and top two principal directions [2, d] of the real activations."""
    mean = bank.mean(0)
    centred = bank - mean
    # The d x d covariance's eigenvectors: far cheaper than an SVD of the n x d bank.
    _, vectors = torch.linalg.eigh(centred.T @ centred)
    return mean, vectors[:, [-1, -2]].T


def prompt_point(model, text: str) -> tuple[Int[Tensor, " pos"], Float[Tensor, " d_mlp"]]:
    """A prompt's tokens (BOS first) and the activation at its last token."""
    from tutorial_sae.data.activations import run_to_hook

    tokens = model.to_tokens(text)[0].cpu()
    return tokens, run_to_hook(model, tokens[None])[0, -1].cpu()
