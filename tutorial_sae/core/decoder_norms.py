"""What the decoder-norm safeguards of the SAE buy: ablated variants and their traces (chapter 2)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from tutorial_sae.core.sae import SAE, SAEConfig, SAELoss, train_step
from tutorial_sae.core.synthetic import RECOVERY_THRESHOLD, feature_recovery, recovered_fraction


@dataclass(frozen=True)
class SafeguardConfig:
    """Which of the three safeguards of the decoder norms an SAE uses (all three by default).

    weighted_l1: penalise f_i * ||W_dec,i|| rather than f_i; project_grad: remove the gradient
    component parallel to each decoder row; renormalise: rescale rows to unit norm after a step.
    """

    weighted_l1: bool = True
    project_grad: bool = True
    renormalise: bool = True


class VariantSAE(SAE):
    """An SAE whose decoder-norm safeguards can be switched off one by one, to see why they exist."""

    def __init__(self, cfg: SAEConfig, safeguards: SafeguardConfig) -> None:
        super().__init__(cfg)
        self.safeguards = safeguards

    def loss(
        self, x: Float[Tensor, "batch d_in"], dead_mask: Bool[Tensor, " d_sae"] | None = None
    ) -> SAELoss:
        out = super().loss(x, dead_mask)
        if self.safeguards.weighted_l1:
            return out
        l1 = self.cfg.l1_coeff * out.feature_acts.sum(-1).mean()
        return SAELoss(
            out.mse + l1 + out.ghost, out.mse, l1, out.ghost, out.feature_acts, out.x_hat
        )

    def remove_parallel_decoder_grad(self) -> None:
        if self.safeguards.project_grad:
            super().remove_parallel_decoder_grad()

    def normalize_decoder(self) -> None:
        if self.safeguards.renormalise:
            super().normalize_decoder()


@dataclass
class NormTrace:
    """Per recorded step: decoder-row norms, the size of active codes, and the loss parts."""

    step: list[int] = field(default_factory=list)
    mean_decoder_norm: list[float] = field(default_factory=list)
    max_norm_error: list[float] = field(default_factory=list)
    mean_active_code: list[float] = field(default_factory=list)
    l0: list[float] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)
    l1: list[float] = field(default_factory=list)


def train_tracing_norms(
    sae: SAE,
    x: Float[Tensor, "n d_in"],
    n_steps: int,
    batch_size: int = 256,
    lr: float = 3e-3,
    record_every: int = 25,
    seed: int = 0,
) -> NormTrace:
    """Train with the package's `train_step` (Adam) and record how the decoder norms move.

    `mean_active_code` is the mean of f_i over the features that fire: with the safeguards off,
    an unweighted L1 can be lowered by growing ||W_dec,i|| and shrinking f_i by the same factor
    without changing the reconstruction (Bricken et al. 2023, "Towards Monosemanticity").
    """
    if x.ndim != 2 or x.shape[0] < batch_size:
        raise ValueError(
            f"x must have shape [n >= batch_size={batch_size}, d_in], got {tuple(x.shape)}"
        )
    # Chapter 2's SAEs are tiny: extra threads only add synchronisation, which costs several
    # times the compute on a busy CPU (measured). Restore the caller's setting afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _trace(sae, x, n_steps, batch_size, lr, record_every, seed)
    finally:
        torch.set_num_threads(threads)


def _trace(
    sae: SAE, x: Tensor, n_steps: int, batch_size: int, lr: float, record_every: int, seed: int
) -> NormTrace:
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr, betas=(0.9, 0.99))
    trace = NormTrace()
    for step in range(1, n_steps + 1):
        batch = x[torch.randint(0, x.shape[0], (batch_size,), generator=gen)]
        out = train_step(sae, optimizer, batch, None)
        if step % record_every == 0 or step == n_steps:
            with torch.no_grad():
                row_norms = sae.W_dec.norm(dim=-1)
                f = out.feature_acts
                trace.step.append(step)
                trace.mean_decoder_norm.append(float(row_norms.mean()))
                trace.max_norm_error.append(float((row_norms - 1).abs().max()))
                trace.mean_active_code.append(float(f[f > 0].mean()) if (f > 0).any() else 0.0)
                trace.l0.append(float((f > 0).float().sum(-1).mean()))
                trace.mse.append(float(out.mse))
                trace.l1.append(float(out.l1))
    return trace


# Chapter 2's three SAEs: ours, run1's (projection without renormalisation), and the naive one.
SAFEGUARD_VARIANTS = {
    "all safeguards": SafeguardConfig(),
    "projection only": SafeguardConfig(renormalise=False),
    "none": SafeguardConfig(weighted_l1=False, project_grad=False, renormalise=False),
}


@dataclass
class SafeguardComparison:
    """Norm traces and feature recovery of SAEs that differ only in their decoder safeguards."""

    traces: dict[str, NormTrace]
    recovered: dict[str, float]
    saes: dict[str, VariantSAE]


def compare_safeguards(
    x: Float[Tensor, "n d_in"],
    dictionary: Float[Tensor, "n_features d_in"],
    sae_cfg: SAEConfig,
    n_steps: int,
    batch_size: int = 256,
    lr: float = 3e-3,
    seed: int = 0,
    variants: dict[str, SafeguardConfig] | None = None,
    threshold: float = RECOVERY_THRESHOLD,
) -> SafeguardComparison:
    """Train one `VariantSAE` per safeguard setting on the same data and seed, tracing norms.

    `recovered` is each variant's share of true features with a decoder direction at cosine
    >= threshold (as in `feature_recovery`).
    """
    variants = SAFEGUARD_VARIANTS if variants is None else variants
    traces, recovered, saes = {}, {}, {}
    for name, safeguards in variants.items():
        sae = saes[name] = VariantSAE(sae_cfg, safeguards)
        traces[name] = train_tracing_norms(sae, x, n_steps, batch_size, lr, seed=seed)
        recovered[name] = recovered_fraction(feature_recovery(sae, dictionary), threshold)
    return SafeguardComparison(traces, recovered, saes)
