"""Named training configurations: the shipped mini SAEs (RUN1, x4, x2) and chapter 3's runs."""

from __future__ import annotations

from dataclasses import replace

from tutorial_sae.core.sae import SAEConfig
from tutorial_sae.training.trainer import TrainConfig

MINI_D_MLP = 512
# run1 mirrors Nanda's run1 (seed 49, batch 4096, Adam (0.9, 0.99), 8x, resampling); lr, step
# count and windows are scaled to a CPU budget of about ten minutes per SAE.
RUN1 = TrainConfig(
    sae=SAEConfig(d_in=MINI_D_MLP, d_sae=8 * MINI_D_MLP, l1_coeff=1.3, seed=49),
    n_steps=1_000,
    batch_size=2048,
    lr=1e-3,
    dead_features="resample",
    dead_window=250,
    resample_every=250,
    resample_stop=750,
    matmul_dtype="bfloat16",
    buffer_batches=16,
    checkpoint_every=200,
    seed=49,
)
MINI_SAES: dict[str, TrainConfig] = {
    "run1": RUN1,
    "x4": replace(RUN1, sae=replace(RUN1.sae, d_sae=4 * MINI_D_MLP)),
    "x2": replace(RUN1, sae=replace(RUN1.sae, d_sae=2 * MINI_D_MLP)),
}

# The value mini/run1 was trained with, highlighted in chapter 3's figures; the l1 sweep spans
# factors 1/4 to 8 around it on a doubling grid.
CHOSEN_L1 = RUN1.sae.l1_coeff
L1_VALUES = tuple(CHOSEN_L1 * 2.0**k for k in range(-2, 4))
DEAD_FEATURE_METHODS = ("none", "ghost", "resample")
# Chapter 3's runs: short, at 4x expansion (2,048 features on the mini model's 512 MLP neurons),
# so a whole sweep takes minutes on a laptop CPU; windows are scaled to the run length so that
# features can be declared dead, and resampled, several times within it.
BASE = TrainConfig(
    sae=SAEConfig(d_in=MINI_D_MLP, d_sae=4 * MINI_D_MLP, l1_coeff=CHOSEN_L1, seed=49),
    n_steps=200,
    batch_size=1024,
    lr=1e-3,
    dead_features="ghost",
    dead_window=50,
    resample_every=100,
    buffer_batches=16,
    log_every=10,
    checkpoint_every=10_000,
    seed=49,
)
# With BASE almost no feature dies within a short run (the encoder starts as the decoder's
# transpose and b_dec at the data mean, the fixes that made ghost grads less needed), so the
# comparison provokes deaths with a 3x larger learning rate and a 25-step window.
DEAD_BASE = replace(BASE, lr=3e-3, dead_window=25, resample_every=50)


def sized_for(
    base: TrainConfig, d_in: int, expansion: int, l1_coeff: float | None = None, **changes
) -> TrainConfig:
    """`base` for a model whose hook has width `d_in`: d_sae = expansion x d_in.

    `changes` are other TrainConfig fields (n_steps, batch_size, dead_window, seed, ...), so
    a chapter states only what it varies.
    """
    if not isinstance(expansion, int) or expansion < 1:
        raise ValueError(f"expected a positive int expansion factor, got {expansion!r}")
    sae = replace(
        base.sae,
        d_in=d_in,
        d_sae=expansion * d_in,
        l1_coeff=base.sae.l1_coeff if l1_coeff is None else l1_coeff,
        seed=changes.get("seed", base.sae.seed),
    )
    return replace(base, sae=sae, **changes)
