"""The small maths of chapter 1: GELU, vector norms, soft thresholding, a superposition toy."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor


def gelu_exact(x: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
    """GELU(x) = x * Phi(x), Phi the standard normal CDF (Hendrycks & Gimpel 2016, eq. 1).

    Phi(x) = (1 + erf(x / sqrt 2)) / 2. This is the exact form, not the tanh approximation.
    """
    return x * 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def gelu_tanh(x: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
    """The tanh approximation of GELU (Hendrycks & Gimpel 2016), used by GPT-2 and gelu-1l."""
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def gelu_grad(x: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
    """d GELU / dx = Phi(x) + x * phi(x), phi the standard normal density."""
    cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    pdf = torch.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    return cdf + x * pdf


@dataclass
class Norms:
    """L0, L1 and L2 norms of each row of a batch of vectors."""

    l0: Float[Tensor, " batch"]
    l1: Float[Tensor, " batch"]
    l2: Float[Tensor, " batch"]


def norms(x: Float[Tensor, "batch d"]) -> Norms:
    """||x||_0 = #{i: x_i != 0} (a count, as a float), ||x||_1 = sum |x_i|, ||x||_2 = sqrt(sum x_i^2)."""
    if not isinstance(x, Tensor) or x.ndim != 2:
        raise ValueError(f"x must be a 2-D tensor [batch, d], got {getattr(x, 'shape', type(x))}")
    return Norms(
        l0=(x != 0).to(x.dtype).sum(-1),
        l1=x.abs().sum(-1),
        l2=x.pow(2).sum(-1).sqrt(),
    )


def soft_threshold(x: Float[Tensor, "*shape"], threshold: float) -> Float[Tensor, "*shape"]:
    """sign(x) * max(|x| - threshold, 0): the minimiser of (z - x)^2 / 2 + threshold * |z|.

    This proximal operator of the L1 norm (Donoho 1995; Tibshirani 1996) sets every entry with
    |x| <= threshold to exactly zero and shrinks the others by `threshold`.
    """
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    return torch.sign(x) * torch.relu(x.abs() - threshold)


def ridge_shrink(x: Float[Tensor, "*shape"], weight: float) -> Float[Tensor, "*shape"]:
    """x / (1 + 2 weight): the minimiser of (z - x)^2 / 2 + weight * z^2 (an L2 penalty).

    The L2 penalty's counterpart of `soft_threshold`: it shrinks every entry but never to zero.
    """
    if weight < 0:
        raise ValueError(f"weight must be >= 0, got {weight}")
    return x / (1 + 2 * weight)


@dataclass(frozen=True)
class ToyConfig:
    """The toy model of superposition of Elhage et al. (2022): n features squeezed into d_hidden.

    Feature i is present with probability 1 - sparsity (value U[0, 1]) and has importance
    importance_decay ** i in the loss.
    """

    n_features: int = 5
    d_hidden: int = 2
    sparsity: float = 0.0
    importance_decay: float = 0.9
    n_steps: int = 2_000
    batch_size: int = 1024
    lr: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_features", "d_hidden", "n_steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0 <= self.sparsity < 1:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if not 0 < self.importance_decay <= 1:
            raise ValueError(f"importance_decay must be in (0, 1], got {self.importance_decay}")


@dataclass
class ToyModel:
    """A trained toy: x_hat = ReLU(W^T W x + b), W [d_hidden, n_features]."""

    cfg: ToyConfig
    W: Float[Tensor, "d_hidden n_features"]
    b: Float[Tensor, " n_features"]
    losses: list[float]

    @property
    def feature_norms(self) -> Float[Tensor, " n_features"]:
        """||W_i||: near 1 for a feature the model represents, near 0 for one it drops."""
        return self.W.norm(dim=0)

    @property
    def n_represented(self) -> int:
        """Number of features with ||W_i|| > 0.5: more than d_hidden means superposition."""
        return int((self.feature_norms > 0.5).sum())

    def neuron_loadings(self, threshold: float = 0.3) -> Tensor:
        """How many features each hidden unit reads with |W_ji| > threshold (polysemanticity)."""
        return (self.W.abs() > threshold).sum(dim=1)


def sample_toy_features(
    n: int, n_features: int, sparsity: float, gen: torch.Generator
) -> Float[Tensor, "n n_features"]:
    """Batches of the toy's input: each feature is U[0, 1] with probability 1 - sparsity, else 0."""
    values = torch.rand(n, n_features, generator=gen)
    present = torch.rand(n, n_features, generator=gen) >= sparsity
    return values * present


def train_toy_model(cfg: ToyConfig) -> ToyModel:
    """Fit W, b to minimise sum_i importance_i (x_i - x_hat_i)^2 (Elhage et al. 2022, sec. 2)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    W = torch.nn.Parameter(torch.randn(cfg.d_hidden, cfg.n_features, generator=gen) * 0.5)
    b = torch.nn.Parameter(torch.zeros(cfg.n_features))
    importance = cfg.importance_decay ** torch.arange(cfg.n_features, dtype=torch.float32)
    optimizer = torch.optim.Adam([W, b], lr=cfg.lr)
    losses = []
    # The matrices are tiny: extra threads only add synchronisation, which costs 5-10x on a
    # busy CPU (measured). Restore the caller's setting afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(cfg.n_steps):
            x = sample_toy_features(cfg.batch_size, cfg.n_features, cfg.sparsity, gen)
            x_hat = torch.relu(x @ W.T @ W + b)
            loss = (importance * (x - x_hat).pow(2)).sum(-1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    finally:
        torch.set_num_threads(threads)
    return ToyModel(cfg=cfg, W=W.detach().clone(), b=b.detach().clone(), losses=losses)


@dataclass
class ActivationCurves:
    """ReLU and GELU on a grid of inputs, with their slopes taken by autograd."""

    x: Float[Tensor, " n"]
    relu: Float[Tensor, " n"]
    gelu: Float[Tensor, " n"]
    relu_slope: Float[Tensor, " n"]
    gelu_slope: Float[Tensor, " n"]

    @property
    def gelu_min(self) -> float:
        """GELU's lowest value on the grid (about -0.17, near x = -0.75)."""
        return float(self.gelu.min())

    @property
    def gelu_argmin(self) -> float:
        """The grid input where GELU is lowest."""
        return float(self.x[self.gelu.argmin()])

    def gelu_slope_at(self, x0: float) -> float:
        """GELU's autograd slope at the grid point nearest x0."""
        return float(self.gelu_slope[(self.x - x0).abs().argmin()])

    @property
    def closed_form_gap(self) -> float:
        """Largest |autograd slope - gelu_grad|: how far autograd is from Phi(x) + x phi(x)."""
        return float((self.gelu_slope - gelu_grad(self.x)).abs().max())

    def differ_interval(self, tol: float = 0.05) -> tuple[float, float]:
        """The smallest and largest input where GELU's value or slope is more than tol from ReLU's."""
        differs = ((self.gelu - self.relu).abs() > tol) | (
            (self.gelu_slope - self.relu_slope).abs() > tol
        )
        if not differs.any():
            raise ValueError(f"GELU and ReLU agree within tol={tol} on the whole grid")
        inside = self.x[differs]
        return float(inside.min()), float(inside.max())


def activation_curves(lo: float = -4.0, hi: float = 4.0, n: int = 401) -> ActivationCurves:
    """ReLU(x) = max(0, x) and the exact GELU(x) = x Phi(x) with d/dx by autograd, on [lo, hi]."""
    if not lo < hi or n < 2:
        raise ValueError(f"expected lo < hi and n >= 2, got lo={lo}, hi={hi}, n={n}")
    x = torch.linspace(lo, hi, n, requires_grad=True)
    relu, gelu = torch.relu(x), gelu_exact(x)
    (relu_slope,) = torch.autograd.grad(relu.sum(), x)
    (gelu_slope,) = torch.autograd.grad(gelu.sum(), x)
    return ActivationCurves(x.detach(), relu.detach(), gelu.detach(), relu_slope, gelu_slope)


@dataclass
class Shrinkage:
    """The L1 (soft threshold) and L2 (ridge) minimisers, and the share of exact zeros each makes."""

    lam: float
    y: Float[Tensor, " n"]
    l1_map: Float[Tensor, " n"]
    l2_map: Float[Tensor, " n"]
    strengths: Float[Tensor, " k"]
    l1_zeros: Float[Tensor, " k"]
    l2_zeros: Float[Tensor, " k"]
    n_samples: int
    l1_zeros_at_lam: float
    l2_zeros_at_lam: float


def shrinkage_comparison(
    lam: float = 1.0,
    n_samples: int = 10_000,
    max_strength: float = 2.0,
    n_strengths: int = 41,
    seed: int = 0,
) -> Shrinkage:
    """Apply `soft_threshold` and `ridge_shrink` to N(0, 1) targets and count exact zeros.

    At strength lam the L1 share of zeros estimates P(|y| <= lam) (0.683 for lam = 1); the L2
    share stays 0, since y / (1 + 2 lam) is zero only when y is.
    """
    if lam < 0 or n_samples <= 0 or max_strength < 0 or n_strengths < 2:
        raise ValueError(
            f"expected lam >= 0, n_samples > 0, max_strength >= 0, n_strengths >= 2, got "
            f"{lam}, {n_samples}, {max_strength}, {n_strengths}"
        )
    y = torch.linspace(-3, 3, 301)
    samples = torch.randn(n_samples, generator=torch.Generator().manual_seed(seed))
    strengths = torch.linspace(0, max_strength, n_strengths)

    def zeros(shrink, strength: float) -> float:
        return float((shrink(samples, strength) == 0).float().mean())

    return Shrinkage(
        lam=lam,
        y=y,
        l1_map=soft_threshold(y, lam),
        l2_map=ridge_shrink(y, lam),
        strengths=strengths,
        l1_zeros=torch.tensor([zeros(soft_threshold, float(s)) for s in strengths]),
        l2_zeros=torch.tensor([zeros(ridge_shrink, float(s)) for s in strengths]),
        n_samples=n_samples,
        l1_zeros_at_lam=zeros(soft_threshold, lam),
        l2_zeros_at_lam=zeros(ridge_shrink, lam),
    )
