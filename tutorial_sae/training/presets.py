"""Named training configurations: the mini SAEs, chapter 3's runs, per-model presets (chapters 3-7)."""

from __future__ import annotations

from dataclasses import dataclass, replace

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
    # float32 on every CPU (what "auto" gave when the sweeps were built): the chapter's runs
    # must not change with the processor's bf16 support.
    matmul_dtype="float32",
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


# Per-model settings the chapters read from the loaded model instead of typing mini's numbers.
PRESET_KEYWORD = "preset"  # a chapter parameter left at this value takes the model's preset
GELU_1L_D_MLP = 2048
# Neel Nanda's run1 on gelu-1l (his 25_cfg.json, DESIGN.md): l1_coeff 3e-4 on an L1 term summed
# over a batch of 4096 tokens; ours is the batch mean, so 3e-4 * 4096 = 1.2288 (the conversion of
# `models.loading.sae_from_nanda`). His dict_mult is 8; chapter 3's short runs use half of run1's
# expansion on both models (4x: 8,192 features on gelu-1l), as BASE does on mini.
NANDA_RUN1_L1_COEFF = 3e-4
NANDA_RUN1_BATCH_SIZE = 4096


@dataclass(frozen=True)
class ModelPreset:
    """The settings chapters 3-7 use for one model: its hook width and chapter 3's tuned run."""

    model: str  # the book's name: "mini" or "gelu-1l"
    d_mlp: int  # width of blocks.0.mlp.hook_post
    expansion: int  # chapter 3's runs: d_sae = expansion x d_mlp
    l1_coeff: float  # chapter 3's runs, in this package's units (L1 term averaged over the batch)
    pretrained_sae: str  # the book's pretrained SAE for this model (load_sae name)
    source: str  # where expansion and l1_coeff come from
    # FAST runs on this model use this share of a chapter's FAST sizes (token counts, steps,
    # batches): gelu-1l's 48,262-wide unembedding, 2,048-wide MLP and 16,384-feature SAEs make
    # each token many times dearer than on mini (chapter 3's SAE step: 16x the multiply-adds),
    # and its FAST run only checks that the chapter works (on the tests' stand-in hub its
    # weights are random). Tested under MODEL="auto": tests/test_chapters_online.py.
    fast_share: float = 1.0

    def fast_size(self, n: int, fast: bool, minimum: int = 1) -> int:
        """`n` (a chapter's count), or in FAST mode this model's share of it: at least `minimum`
        and never more than `n`. On mini (share 1) it is `n` either way, so mini's FAST results
        do not change."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"expected a positive int count, got {n!r}")
        if not isinstance(fast, bool):
            raise TypeError(f"expected fast to be a bool (the chapter's FAST), got {fast!r}")
        if not fast:
            return n
        return min(n, max(minimum, int(n * self.fast_share)))

    def fast_sizes(self, fast: bool, *counts: int) -> tuple[int, ...]:
        """`fast_size(n, fast)` of every count, in order (a chapter's steps, batch, tokens)."""
        return tuple(self.fast_size(n, fast) for n in counts)

    def train_config(
        self,
        base: TrainConfig,
        expansion: int | str = PRESET_KEYWORD,
        l1_coeff: float | str = PRESET_KEYWORD,
        **changes,
    ) -> TrainConfig:
        """`base` sized for this model (`sized_for` with d_in = d_mlp), with `expansion` and
        `l1_coeff` resolved by `value` ("preset" takes this preset's).

        `changes` are other TrainConfig fields; when they set `n_steps` but not `log_every`, the
        run logs about 40 times: log_every = max(1, n_steps // 40).
        """
        if "n_steps" in changes and "log_every" not in changes:
            n_steps = changes["n_steps"]
            if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
                raise ValueError(f"expected a positive int n_steps, got {n_steps!r}")
            changes["log_every"] = max(1, n_steps // 40)
        return sized_for(
            base,
            self.d_mlp,
            self.value("expansion", expansion),
            self.value("l1_coeff", l1_coeff),
            **changes,
        )

    def value(self, name: str, chosen):
        """`chosen` (a chapter parameter), or this preset's `name` when it is "preset"."""
        if name not in ("expansion", "l1_coeff"):
            raise ValueError(f"expected a preset setting 'expansion' or 'l1_coeff', got {name!r}")
        if isinstance(chosen, str):
            if chosen != PRESET_KEYWORD:
                raise ValueError(
                    f"expected a number or {PRESET_KEYWORD!r} for {name}, got {chosen!r}"
                )
            return getattr(self, name)
        kind = int if name == "expansion" else (int, float)
        if isinstance(chosen, bool) or not isinstance(chosen, kind) or not chosen > 0:
            raise ValueError(f"expected a positive {name} or {PRESET_KEYWORD!r}, got {chosen!r}")
        return chosen


PRESETS: dict[str, ModelPreset] = {
    "mini": ModelPreset(
        model="mini",
        d_mlp=MINI_D_MLP,
        expansion=BASE.sae.d_sae // BASE.sae.d_in,
        l1_coeff=BASE.sae.l1_coeff,
        pretrained_sae="mini/run1",
        source="mini/run1's l1_coeff (RUN1, tuned by the l1 sweep); half its 8x expansion",
    ),
    "gelu-1l": ModelPreset(
        model="gelu-1l",
        d_mlp=GELU_1L_D_MLP,
        expansion=4,
        l1_coeff=NANDA_RUN1_L1_COEFF * NANDA_RUN1_BATCH_SIZE,
        pretrained_sae="gelu-1l/run1",
        source="Nanda's run1 l1_coeff 3e-4 x batch 4096 (his units -> ours); half his dict_mult 8",
        fast_share=1 / 8,
    ),
}
# TransformerLens names a loaded model after its official repo: cfg.model_name is
# "GELU_1L512W_C4_Code" for gelu-1l; the mini model's config says "mini".
MODEL_ALIASES = {
    "mini": "mini",
    "gelu-1l": "gelu-1l",
    "GELU_1L512W_C4_Code": "gelu-1l",
    "NeelNanda/GELU_1L512W_C4_Code": "gelu-1l",
}


def model_name_of(model_or_name) -> str:
    """The book's name ("mini" or "gelu-1l") of a loaded model, a model name or an SAE name.

    A model is named by its `cfg.model_name`; "auto" is resolved as `load_model` resolves it;
    "mini/run1" or "gelu-1l/run2" name the model the SAE belongs to.
    """
    if isinstance(model_or_name, str):
        name = model_or_name
        if name == "auto":
            from tutorial_sae.models.loading import resolve_auto

            name = resolve_auto().model
        name = name.split("/")[0] if name.split("/")[0] in PRESETS else name
    else:
        cfg = getattr(model_or_name, "cfg", None)
        name = getattr(cfg, "model_name", None)
        if not isinstance(name, str):
            raise TypeError(
                "expected a model name or a loaded model with cfg.model_name, "
                f"got {type(model_or_name).__name__}"
            )
    if name not in MODEL_ALIASES:
        raise ValueError(f"expected a model named one of {sorted(MODEL_ALIASES)}, got {name!r}")
    return MODEL_ALIASES[name]


def preset_for(model_or_name) -> ModelPreset:
    """The settings chapters use for a loaded model (or a model / SAE name, or "auto").

    A loaded model must have the hook width its preset expects: a mismatch raises, so a chapter
    never trains or labels with another model's numbers.
    """
    preset = PRESETS[model_name_of(model_or_name)]
    if not isinstance(model_or_name, str):
        d_mlp = getattr(model_or_name.cfg, "d_mlp", None)
        if d_mlp != preset.d_mlp:
            raise ValueError(
                f"expected {preset.model} with d_mlp {preset.d_mlp} (its preset), got d_mlp {d_mlp}"
            )
    return preset
