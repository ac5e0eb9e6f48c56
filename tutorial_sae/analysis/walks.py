"""Random walks and interpolation in an SAE's latent space, and what the model says along them (chapter 7).

The seed paper's experiment (its figure 10): start from a token's SAE code, take steps of a
fixed size in random directions, and watch the reconstruction drift from the start. Five
kinds of walk: `latent` (the paper's: raw steps in R^d_sae), `relu` (clipped back to codes
>= 0), `active` (steps only along the start's active features, clipped), `decoder` (steps in
activation space from the start's reconstruction) and `reprojected` (each step decoded and
re-encoded, so the walk stays on codes the SAE itself produces).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from tutorial_sae.analysis.interpolation import (  # noqa: F401 - re-exported for chapter 7
    Interpolation,
    Predictions,
    flip_alpha,
    interpolate,
    lerp,
    predict_along,
    prompt_point,
    slerp,
)
from tutorial_sae.analysis.walk_setup import WalkData, walk_data  # noqa: F401 - re-exported
from tutorial_sae.core.sae import SAE
from tutorial_sae.utils import (
    check_choice,
    check_int,
    check_numbers,
    check_real,
    check_sae,
    check_tensor,
    check_width,
)

MAX_ELEMENTS = 2**31  # a walk's directions beyond this would not fit in memory: refused

WALK_KINDS = ("latent", "relu", "active", "decoder", "reprojected")
METRICS = ("mse", "cosine", "distance", "l0", "consistency", "nearest")


def walk_directions(
    n_steps: int, n_seeds: int, dim: int, seed: int = 0, support: Tensor | None = None
) -> Float[Tensor, "n_steps n_seeds dim"]:
    """Unit directions drawn uniformly on the sphere (Gaussian / norm), one per step and walk.

    `support`, a bool [dim] mask, restricts the directions to those coordinates.
    """
    for name, value in (("n_steps", n_steps), ("n_seeds", n_seeds), ("dim", dim), ("seed", seed)):
        check_int(value, name, 0 if name == "seed" else 1)
    if n_steps * n_seeds * dim > MAX_ELEMENTS:
        raise ValueError(f"n_steps * n_seeds * dim = {n_steps * n_seeds * dim:,} floats would not "
                         f"fit in memory (at most {MAX_ELEMENTS:,})")  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(n_steps, n_seeds, dim, generator=gen)
    if support is not None:
        check_tensor(support, "support", 1, "bool")
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
    check_tensor(start, "start", (0, 1, 2, 3))
    if start.ndim != 1:
        raise ValueError(f"expected one start vector [dim], got shape {tuple(start.shape)}")
    check_real(step_size, "step_size")
    if step_size <= 0:
        raise ValueError(f"expected a step size (step_size) > 0, got {step_size}")
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
    check_choice(kind, "walk kind", WALK_KINDS)
    check_sae(sae)
    check_tensor(x0, "x0", 1)
    check_width(x0, sae.cfg.d_in, "x0", "the SAE's d_in")
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
    check_real(start_norm, "start_norm")
    if start_norm <= 0:
        raise ValueError(f"expected a start norm (start_norm) > 0, got {start_norm}")
    check_real(step_size, "step_size", 0.0)
    check_int(n_steps, "n_steps", 0)
    t = torch.arange(n_steps + 1, dtype=torch.float32)
    return 1 / torch.sqrt(1 + t * step_size**2 / start_norm**2)


def nearest_distance(
    points: Float[Tensor, "*batch d"], bank: Float[Tensor, "n d"], chunk: int = 4096
) -> Float[Tensor, "*batch"]:
    """Euclidean distance from each point to its nearest row of `bank` (real activations);
    the bank is cast to the points' float dtype."""
    check_tensor(points, "points", tuple(range(1, 8)))
    check_tensor(bank, "bank", 2, finite=False)  # a scan of a large bank per walk: see below
    check_int(chunk, "chunk")
    check_width(points, bank.shape[-1], "points", "the bank's width")
    flat = points.reshape(-1, points.shape[-1])
    bank = bank.to(points.dtype)
    out = torch.cat([torch.cdist(c, bank).min(-1).values for c in flat.split(chunk)])
    if not torch.isfinite(out).all():  # the points are finite, so the bank holds NaN/inf
        raise ValueError("bank must be finite: some nearest distances came out NaN/inf")
    return out.reshape(points.shape[:-1])


def data_radius(bank: Tensor, held_out: Tensor, quantile: float = 0.99) -> float:
    """The `quantile` of held-out real activations' nearest-bank distances: 'on the data' below."""
    check_real(quantile, "quantile", 0.0, 1.0)
    return float(nearest_distance(held_out, bank).quantile(quantile))


def steps_on_data(nearest: Float[Tensor, "*batch T"], radius: float) -> Float[Tensor, "*batch"]:
    """Steps taken before the walk first lies farther than `radius` from any real activation.

    A walk that never leaves counts its full length (T - 1 steps).
    """
    check_tensor(nearest, "nearest", tuple(range(1, 8)))
    check_real(radius, "radius", 0.0)
    outside = nearest > radius
    first = torch.where(outside.any(-1), outside.float().argmax(-1), outside.shape[-1] - 1)
    return first.float()


def walk_metrics(
    sae: SAE, x0: Tensor, w: Walk, bank: Tensor | None = None, names: Sequence[str] = METRICS
) -> dict[str, Tensor]:
    """The METRICS in `names` as [n_seeds, T+1]: squared error to x0, cosine and distance to the
    start (distance in the walk's own space), L0, |E(D(z)) - z| and nearest real activation."""
    check_sae(sae)
    check_tensor(x0, "x0", 1)
    check_width(x0, sae.cfg.d_in, "x0", "the SAE's d_in")
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
    check_sae(sae)
    check_tensor(starts, "starts", 2)
    for name, acts in (("starts", starts), ("bank", bank), ("held_out", held_out)):
        check_width(acts, sae.cfg.d_in, name, "the SAE's d_in")
    if isinstance(kinds, str) or not kinds:
        raise ValueError(f"kinds must be a non-empty list of {WALK_KINDS}, got {kinds!r}")
    for kind in kinds:
        check_choice(kind, "kinds[i]", WALK_KINDS)
    check_numbers(step_sizes, "step_sizes", 0.0)
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


def pca_2d(bank: Float[Tensor, "n d"]) -> tuple[Tensor, Tensor]:
    """Mean [d] and top two principal directions [2, d] of the real activations."""
    check_tensor(bank, "bank", 2, min_rows=2)
    if bank.shape[1] < 2:
        raise ValueError(f"bank needs >= 2 dimensions for two directions, got {tuple(bank.shape)}")
    mean = bank.mean(0)
    centred = bank - mean
    # The d x d covariance's eigenvectors: far cheaper than an SVD of the n x d bank.
    _, vectors = torch.linalg.eigh(centred.T @ centred)
    return mean, vectors[:, [-1, -2]].T
