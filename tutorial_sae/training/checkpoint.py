"""Training checkpoints in one safetensors file, written atomically (chapter 3, sae_zoo)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save
from torch import Tensor

from tutorial_sae.paths import atomic_write_bytes

CHECKPOINT_FILE = "checkpoint.safetensors"


@dataclass
class Checkpoint:
    """Everything a run needs to continue: named tensors plus JSON-able metadata."""

    tensors: dict[str, Tensor]
    meta: dict


def checkpoint_path(folder: str | Path) -> Path:
    return Path(folder) / CHECKPOINT_FILE


def save_checkpoint(folder: str | Path, checkpoint: Checkpoint) -> Path:
    """Write the checkpoint so that a crash leaves either the previous one or this one."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in checkpoint.tensors.items()}
    data = save(tensors, metadata={"meta": json.dumps(checkpoint.meta)})
    path = checkpoint_path(folder)
    atomic_write_bytes(path, data)
    return path


def load_checkpoint(folder: str | Path) -> Checkpoint | None:
    """The checkpoint in `folder`, or None when there is none yet (safetensors: no pickle)."""
    path = checkpoint_path(folder)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["meta"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (KeyError, json.JSONDecodeError, OSError) as err:
        raise ValueError(f"{path} is not a training checkpoint: {err}") from err
    return Checkpoint(tensors, meta)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, Tensor]:
    """Adam's per-parameter state (step, moments) as flat named tensors."""
    state = optimizer.state_dict()["state"]
    return {f"optim.{i}.{k}": v for i, s in state.items() for k, v in s.items()}


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor]) -> None:
    """Inverse of `optimizer_tensors` for an optimiser built the same way."""
    full = optimizer.state_dict()
    state: dict[int, dict[str, Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, entry in state.items():
        for key, value in entry.items():
            if value.shape == params[index].shape:
                # Keep each moment in its parameter's memory layout (fused Adam relies on it).
                entry[key] = torch.empty_like(params[index]).copy_(value)
    full["state"] = state
    optimizer.load_state_dict(full)
