"""Training checkpoints in one safetensors file, written atomically (chapter 3, sae_zoo)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save
from torch import Tensor

from tutorial_sae.paths import atomic_write_bytes
from tutorial_sae.utils import read_safetensors

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


def load_checkpoint(
    folder: str | Path,
    expected: dict[str, tuple[int, ...]] | None = None,
    meta_keys: tuple[str, ...] = (),
) -> Checkpoint | None:
    """The checkpoint in `folder`, or None when there is none yet (safetensors: no pickle).

    Refused with a ValueError naming the file and the problem: `folder` a file, the checkpoint
    a folder, an empty, truncated or non-safetensors file (a pickle), metadata that is not a
    JSON object or lacks `meta_keys`, tensors missing from `expected` (name -> shape) or of
    another shape, NaN or inf in any float tensor.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"checkpoint folder must be a folder, got the file {folder}")
    path = checkpoint_path(folder)
    if not path.exists():
        return None
    tensors, metadata = read_safetensors(path, expected, extra_ok=True, name="checkpoint")
    try:
        meta = json.loads(metadata["meta"])
    except (KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a training checkpoint: no JSON 'meta' ({err!r})") from err
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: 'meta' must be a JSON object, got a {type(meta).__name__}")
    missing = [k for k in meta_keys if k not in meta]
    if missing:
        raise ValueError(
            f"{path} is not a training checkpoint of this trainer: meta lacks {missing}"
        )
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
        if index >= len(params):
            raise ValueError(f"checkpoint holds optimiser state for parameter {index}, the "
                             f"optimiser has {len(params)} parameters")  # fmt: skip
        for key, value in entry.items():
            if value.ndim and value.shape != params[index].shape:
                raise ValueError(f"checkpoint optimiser state optim.{index}.{key} has shape "
                                 f"{tuple(value.shape)}, parameter {index} {tuple(params[index].shape)}")  # fmt: skip
            if value.shape == params[index].shape:
                # Keep each moment in its parameter's memory layout (fused Adam relies on it).
                entry[key] = torch.empty_like(params[index]).copy_(value)
    full["state"] = state
    optimizer.load_state_dict(full)
