"""A training run's log, result, counters and their checkpoint save and restore (chapters 2-3)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
from torch import Tensor

from tutorial_sae.core.metrics import explained_variance, l0
from tutorial_sae.core.sae import SAE, SAELoss
from tutorial_sae.training.checkpoint import (
    Checkpoint,
    load_optimizer_tensors,
    optimizer_tensors,
    save_checkpoint,
)

# Settings that may change between a run and its resumption without changing the result.
RESUMABLE_CHANGES = ("n_steps", "log_every", "checkpoint_every", "device")


@dataclass
class TrainLog:
    """Metrics recorded every `log_every` steps, one list entry per record."""

    step: list[int] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)
    l1: list[float] = field(default_factory=list)
    ghost: list[float] = field(default_factory=list)
    l0: list[float] = field(default_factory=list)
    dead_fraction: list[float] = field(default_factory=list)
    explained_variance: list[float] = field(default_factory=list)
    resampled: list[int] = field(default_factory=list)

    def record(
        self, step: int, out: SAELoss, x: Tensor, dead_fraction: float, resampled: int = 0
    ) -> None:
        self.step.append(step)
        for name in ("total", "mse", "l1", "ghost"):
            getattr(self, name).append(float(getattr(out, name).detach()))
        self.l0.append(l0(out.feature_acts))
        self.dead_fraction.append(dead_fraction)
        self.explained_variance.append(explained_variance(x, out.x_hat.detach().float()))
        self.resampled.append(resampled)


@dataclass
class TrainResult:
    """The trained SAE, its log, and the wall-clock seconds spent training (over all resumes)."""

    sae: SAE
    log: TrainLog
    seconds: float = 0.0
    n_tokens: int = 0

    @property
    def tokens_per_second(self) -> float:
        return self.n_tokens / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class _RunState:
    """What changes during a run besides the SAE and the optimiser."""

    step: int = 0
    seconds: float = 0.0
    steps_since_fired: Tensor | None = None
    fire_counts: Tensor | None = None
    tokens_since_resample: int = 0
    log: TrainLog = field(default_factory=TrainLog)


@torch.no_grad()
def fire_counts(f: Tensor, rows: int = 64) -> Tensor:
    """Tokens each feature fired on: `torch.count_nonzero(f, dim=0)` for a ReLU code f >= 0.

    Counted in blocks of `rows` tokens whose temporaries stay in the CPU's cache: 5-9x faster
    than one count over the batch (measured at 4096 x 4096 and 4096 x 16384), where that count
    cost ~15% of a 512/4096 training step. Exact (each block's float sum is at most `rows`).
    """
    if f.device.type != "cpu":
        return torch.count_nonzero(f, dim=0)
    total = torch.zeros(f.shape[1], dtype=torch.float64)
    for start in range(0, f.shape[0], rows):
        total += f[start : start + rows].sign().sum(0, dtype=torch.float32)
    return total.long()


def _save(folder, cfg, sae, optimizer, source, gen, state: _RunState) -> None:
    tensors = {f"sae.{k}": v for k, v in sae.state_dict().items()}
    tensors |= optimizer_tensors(optimizer)
    tensors |= {f"source.{k}": v for k, v in source.state_dict().items()}
    tensors |= {
        "rng.torch": torch.get_rng_state(),
        "rng.trainer": gen.get_state(),
        "run.steps_since_fired": state.steps_since_fired,
        "run.fire_counts": state.fire_counts,
    }
    meta = {
        "cfg": _cfg_dict(cfg),
        "step": state.step,
        "seconds": state.seconds,
        "tokens_since_resample": state.tokens_since_resample,
        "log": asdict(state.log),
    }
    save_checkpoint(folder, Checkpoint(tensors, meta))


def _cfg_dict(cfg) -> dict:
    d = asdict(cfg)
    d["betas"] = list(d["betas"])
    return d


# What a checkpoint holds besides the SAE and the optimiser: the random states and dead counters.
_RUN_TENSORS = ("rng.torch", "rng.trainer", "run.steps_since_fired", "run.fire_counts")


def _restore(ckpt: Checkpoint, cfg, sae, optimizer, source, gen, device) -> _RunState:
    saved = ckpt.meta["cfg"]
    mine = _cfg_dict(cfg)
    changed = sorted(k for k in mine if k not in RESUMABLE_CHANGES and saved.get(k) != mine[k])
    if changed:
        raise ValueError(
            f"cannot resume: the checkpoint was written with different {changed} "
            f"(checkpoint {[saved.get(k) for k in changed]}, now {[mine[k] for k in changed]})"
        )
    t = ckpt.tensors
    missing = [k for k in _RUN_TENSORS if k not in t]
    if missing:
        raise ValueError(f"cannot resume: the checkpoint lacks the trainer's tensors {missing}")
    sae.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("sae.")})
    load_optimizer_tensors(optimizer, {k: v.to(device) for k, v in t.items()})
    source.load_state_dict({k[7:]: v for k, v in t.items() if k.startswith("source.")})
    torch.set_rng_state(t["rng.torch"])
    gen.set_state(t["rng.trainer"])
    log = TrainLog(**{f.name: ckpt.meta["log"][f.name] for f in fields(TrainLog)})
    return _RunState(
        step=ckpt.meta["step"],
        seconds=ckpt.meta["seconds"],
        steps_since_fired=t["run.steps_since_fired"].to(device),
        fire_counts=t["run.fire_counts"].to(device),
        tokens_since_resample=ckpt.meta["tokens_since_resample"],
        log=log,
    )
