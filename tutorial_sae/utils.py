"""Device choice, seeding and input validation shared by every chapter."""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from torch import Tensor


def get_device() -> torch.device:
    """The fastest available device: cuda, then Apple's mps, then cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run repeats exactly."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {type(seed).__name__}: {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# Far above any real activation, far below where float32 squared errors overflow (~1e19).
MAX_ABS = 1e15


def check_activations(x: Tensor, d_in: int, name: str = "x", batch: bool = False) -> None:
    """Raise ValueError unless `x` is a non-empty finite float tensor whose last dimension is `d_in`.

    The one validator in front of the SAE maths (encode, decode, loss, the fast step, ghost
    grads); `batch=True` also requires the 2-D [batch, d_in] shape a training step takes.
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 1 or x.shape[-1] != d_in or (batch and x.ndim != 2):
        shape = f"[batch, {d_in}]" if batch else f"[..., {d_in}]"
        raise ValueError(f"{name} must have shape {shape} (d_in={d_in}), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} must hold at least one row, got an empty tensor {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if not torch.isfinite(x).all():
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} must be finite, got {n_bad} NaN/inf values")
    largest = float(x.detach().abs().max())
    if largest > MAX_ABS:
        raise ValueError(
            f"{name} must hold values of magnitude <= {MAX_ABS:g}, got {largest:g}: squared "
            "errors of such values overflow float32 (is this really an activation?)"
        )


def check_dead_mask(mask: Tensor | None, d_sae: int) -> None:
    """Raise ValueError unless `mask` is None or a bool tensor of shape [d_sae].

    An integer 0/1 mask would index features by number instead of selecting them: refused.
    """
    if mask is None:
        return
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != (d_sae,):
        got = (
            f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
        )
        raise ValueError(
            f"dead_mask must be a bool tensor of shape ({d_sae},), got {got}; "
            "build it with a comparison, e.g. steps_since_fired >= dead_window"
        )


def check_int(value, name: str, minimum: int = 1) -> None:
    """Raise ValueError unless `value` is an int (not a bool) >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"{name} must be an int >= {minimum}, got {type(value).__name__}: {value!r}"
        )


def check_number(
    value, name: str, low: float = float("-inf"), high: float = float("inf"), open_low: bool = False
) -> None:
    """Raise ValueError unless `value` is a finite real number in [low, high] ((low, high] if open_low)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if open_low else value >= low) and value <= high
    if not ok:
        bracket = "(" if open_low else "["
        raise ValueError(
            f"{name} must be a finite number in {bracket}{low}, {high}], got "
            f"{type(value).__name__}: {value!r}"
        )


def check_device(device) -> None:
    """Raise ValueError unless `device` is None or names a torch device ("cpu", "cuda:0", ...)."""
    if device is None or isinstance(device, torch.device):
        return
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device must be None or a torch device name such as 'cpu' or 'cuda', got {device!r}"
        ) from err
