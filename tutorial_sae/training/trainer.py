"""Training loop for SAEs on a stream of activations, with checkpoints and resume (chapters 2-3)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from tutorial_sae.core.cpu_features import auto_matmul_dtype
from tutorial_sae.core.fast_step import fast_train_step
from tutorial_sae.core.sae import SAE, SAEConfig, train_step
from tutorial_sae.data.activations import DEFAULT_HOOK, ActivationStream, TensorBatches
from tutorial_sae.errors import NonFiniteLossError
from tutorial_sae.training.checkpoint import CHECKPOINT_FILE, checkpoint_path, load_checkpoint
from tutorial_sae.training.resample import resample_dead_features, update_dead_counters

# The run's log, result, counters and checkpoint save/restore moved to run_state; re-exported here.
from tutorial_sae.training.run_state import (  # noqa: F401
    RESUMABLE_CHANGES,
    TrainLog,
    TrainResult,
    _restore,
    _RunState,
    _save,
    fire_counts,
)
from tutorial_sae.utils import (
    check_device,
    check_int,
    check_number,
    get_device,
    set_seed,
)

DeadFeatureMethod = Literal["ghost", "resample", "none"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, data and dead-feature settings.

    Nanda's run1 (gelu-1l): seed 49, batch 4096, lr 1e-4, Adam (0.9, 0.99), l1 3e-4 summed over
    the batch (~1.23 per token here), 8x expansion, buffer of 384 batches, resampling of features
    rarer than 10^-5.5 every 30k steps over 2e9 tokens. The defaults keep his seed, batch, betas
    and expansion and scale the rest to a run of minutes on a CPU: a 10x larger lr for ~100x
    fewer steps, a 16-batch buffer, and windows of a few hundred steps.
    `dead_features`: "ghost" adds ghost grads for features silent for `dead_window` steps;
    "resample" re-initialises features rarer than `resample_density` every `resample_every` steps,
    up to step `resample_stop` (None: to the end), so the last revived features get time to learn.
    `backward`: "manual" (hand-written gradients, ~1.4x faster) or "autograd" (`train_step`).
    `matmul_dtype`: "auto" is bfloat16 on CUDA (autocast) and on CPUs with native bf16
    (AVX-512-BF16 or AMX), float32 elsewhere; the book's presets name theirs explicitly, so
    their results do not depend on the processor.
    `init_b_dec`: "mean" starts a new SAE's b_dec at the first batch's mean (as SAELens offers),
    so the first steps learn features instead of the offset; "zeros" is run1's start.
    """

    sae: SAEConfig = field(default_factory=lambda: SAEConfig(d_in=512, d_sae=4096, seed=49))
    n_steps: int = 2_000
    batch_size: int = 4096
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    dead_features: DeadFeatureMethod = "ghost"
    dead_window: int = 250
    resample_every: int = 500
    resample_density: float = 10**-5.5
    resample_stop: int | None = None
    backward: Literal["manual", "autograd"] = "manual"
    matmul_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    init_b_dec: Literal["mean", "zeros"] = "mean"
    buffer_batches: int = 16
    model_batch_size: int = 32
    hook: str = DEFAULT_HOOK
    log_every: int = 50
    checkpoint_every: int = 250
    seed: int = 49
    device: str | None = None

    def __post_init__(self) -> None:
        for name in (
            "n_steps",
            "batch_size",
            "dead_window",
            "resample_every",
            "buffer_batches",
            "model_batch_size",
            "log_every",
            "checkpoint_every",
        ):
            check_int(getattr(self, name), name)
        check_int(self.seed, "seed", minimum=0)
        if not isinstance(self.sae, SAEConfig):
            raise ValueError(f"sae must be an SAEConfig, got {type(self.sae).__name__}")
        check_number(self.lr, "lr", low=0.0, open_low=True)
        check_number(self.resample_density, "resample_density", low=0.0, high=1.0, open_low=True)
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {self.betas!r}")
        for i, beta in enumerate(self.betas):
            check_number(beta, f"betas[{i}]", low=0.0, high=1.0)
        check_device(self.device)
        if not isinstance(self.hook, str) or not self.hook:
            raise ValueError(
                f"hook must be a hook name such as {DEFAULT_HOOK!r}, got {self.hook!r}"
            )
        choices = {
            "dead_features": ("ghost", "resample", "none"),
            "backward": ("manual", "autograd"),
            "matmul_dtype": ("auto", "float32", "bfloat16"),
            "init_b_dec": ("mean", "zeros"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.resample_stop is not None:
            check_int(self.resample_stop, "resample_stop", minimum=0)
        if self.buffer_batches < 2:
            raise ValueError(f"buffer_batches must be >= 2, got {self.buffer_batches}")


def train_sae_on(
    activations: Tensor | Iterable[Tensor],
    cfg: TrainConfig,
    sae: SAE | None = None,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train an SAE (new from `cfg.sae`, or the one given) on a tensor or stream of batches.

    Stops after `cfg.n_steps` steps or when an iterable runs out. Checkpoints (and `resume`)
    need a tensor or an `ActivationStream`, whose position can be saved.
    """
    if isinstance(activations, Tensor):
        source: Iterator[Tensor] = TensorBatches(activations, cfg.batch_size, cfg.seed)
    else:
        source = iter(activations)
    return _train(source, cfg, sae, progress, checkpoint_dir, resume)


def train_sae(
    model,
    cfg: TrainConfig,
    tokens: Int[Tensor, "n_seq pos"],
    sae: SAE | None = None,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train an SAE on activations at `cfg.hook`, computed from `tokens` while training.

    The model's forward stops at the hook; activations pass through a shuffled buffer of
    `cfg.buffer_batches` batches refilled as it drains (see `ActivationStream`). With
    `checkpoint_dir`, the run is saved every `cfg.checkpoint_every` steps; `resume=True`
    continues from the checkpoint there to the same weights an uninterrupted run reaches.
    """
    stream = ActivationStream(
        model,
        tokens,
        batch_size=cfg.batch_size,
        buffer_tokens=cfg.buffer_batches * cfg.batch_size,
        hook=cfg.hook,
        model_batch_size=cfg.model_batch_size,
        seed=cfg.seed,
    )
    return _train(stream, cfg, sae, progress, checkpoint_dir, resume)


def _matmul_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype:
    if cfg.matmul_dtype == "auto":
        return auto_matmul_dtype(device)
    return getattr(torch, cfg.matmul_dtype)


def _train(source, cfg, sae, progress, checkpoint_dir, resume) -> TrainResult:
    if (checkpoint_dir is not None or resume) and not hasattr(source, "state_dict"):
        raise ValueError(
            "checkpoints need activations as a tensor or an ActivationStream, "
            f"got a {type(source).__name__} whose position cannot be saved"
        )
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir, got None")
    if checkpoint_dir is not None and Path(checkpoint_dir).exists():
        if not Path(checkpoint_dir).is_dir():
            raise ValueError(
                f"checkpoint_dir must be a folder (it holds {CHECKPOINT_FILE}), got the file "
                f"{checkpoint_dir}"
            )
    if sae is not None and (sae.cfg.d_in, sae.cfg.d_sae) != (cfg.sae.d_in, cfg.sae.d_sae):
        raise ValueError(
            f"the SAE given has d_in={sae.cfg.d_in}, d_sae={sae.cfg.d_sae}, the config "
            f"d_in={cfg.sae.d_in}, d_sae={cfg.sae.d_sae}"
        )
    set_seed(cfg.seed)
    device = torch.device(cfg.device) if cfg.device else get_device()
    fresh = sae is None
    sae = (SAE(cfg.sae) if fresh else sae).to(device)
    with torch.no_grad():
        for param in sae.parameters():
            # Fused Adam assumes a parameter, its gradient and its moments share one memory
            # layout; SAE.__init__ makes W_enc a transposed (column-major) copy of W_dec.
            param.data = param.data.contiguous()
    # Fused Adam keeps the update to one pass over memory; it exists for CPU and CUDA.
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=cfg.betas, fused=fused)
    gen = torch.Generator().manual_seed(cfg.seed)
    state = _RunState(
        steps_since_fired=torch.zeros(sae.cfg.d_sae, dtype=torch.long, device=device),
        fire_counts=torch.zeros(sae.cfg.d_sae, dtype=torch.float64, device=device),
    )
    ckpt = (
        load_checkpoint(
            checkpoint_dir,
            expected={f"sae.{k}": tuple(v.shape) for k, v in sae.state_dict().items()},
            meta_keys=("cfg", "step", "seconds", "tokens_since_resample", "log"),
        )
        if resume
        else None
    )
    if ckpt is not None:
        state = _restore(ckpt, cfg, sae, optimizer, source, gen, device)
    dtype = _matmul_dtype(cfg, device)
    autocast = (
        torch.autocast(device.type, dtype=dtype)
        if cfg.backward == "autograd" and dtype != torch.float32
        else contextlib.nullcontext()
    )
    bar = tqdm(total=cfg.n_steps, initial=state.step, desc="training SAE", disable=not progress)
    start = time.perf_counter() - state.seconds
    while state.step < cfg.n_steps:
        # the last step's tensors go first: a buffer refill inside next() then has their memory
        batch = x = out = None
        try:
            batch = next(source)
        except StopIteration:
            break
        state.step += 1
        step = state.step
        x = batch.to(device, torch.float32)
        if step == 1 and fresh and cfg.init_b_dec == "mean":
            with torch.no_grad():
                sae.b_dec.copy_(x.mean(0))
        dead = state.steps_since_fired >= cfg.dead_window
        ghost_mask = dead if cfg.dead_features == "ghost" else None
        if cfg.backward == "manual":
            out = fast_train_step(sae, optimizer, x, ghost_mask, dtype)
        else:
            with autocast:
                out = train_step(sae, optimizer, x, ghost_mask)
        if not torch.isfinite(out.total):
            last = checkpoint_path(checkpoint_dir) if checkpoint_dir is not None else None
            kept = (
                f"the last good checkpoint is kept at {last}"
                if last is not None and last.is_file()
                else "no checkpoint was written"
            )
            raise NonFiniteLossError(
                f"loss became {float(out.total)} at step {step} (mse={float(out.mse)}, "
                f"l1={float(out.l1)}); training stopped and {kept}. Try a lower lr "
                f"(now {cfg.lr}) or check the activations"
            )
        counts = getattr(out, "fire_counts", None)  # a sparse step counts them for free
        if counts is None:
            counts = fire_counts(out.feature_acts)
        state.steps_since_fired = update_dead_counters(state.steps_since_fired, counts)
        state.fire_counts += counts
        state.tokens_since_resample += len(x)
        resampled = 0
        if (
            cfg.dead_features == "resample"
            and step % cfg.resample_every == 0
            and (cfg.resample_stop is None or step <= cfg.resample_stop)
        ):
            rare = state.fire_counts / state.tokens_since_resample < cfg.resample_density
            resampled = resample_dead_features(sae, optimizer, x, rare, gen)
            state.fire_counts.zero_()
            state.tokens_since_resample = 0
        if step % cfg.log_every == 0 or step == cfg.n_steps or resampled:
            state.log.record(step, out, x, float(dead.float().mean()), resampled)
            bar.set_postfix(mse=f"{state.log.mse[-1]:.3g}", l0=f"{state.log.l0[-1]:.1f}")
        bar.update()
        state.seconds = time.perf_counter() - start
        if checkpoint_dir is not None and (step % cfg.checkpoint_every == 0 or step == cfg.n_steps):
            _save(checkpoint_dir, cfg, sae, optimizer, source, gen, state)
    bar.close()
    return TrainResult(sae, state.log, state.seconds, state.step * cfg.batch_size)
