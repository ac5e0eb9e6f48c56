"""Device choice, seeding and input validation shared by every chapter."""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

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


def check_real(
    value, name: str, low: float = float("-inf"), high: float = float("inf"), open_low: bool = False
) -> None:
    """`check_number` that also takes a numpy scalar or a 0-d real tensor (what `.max()` gives)."""
    if isinstance(value, (np.generic, Tensor)) and np.ndim(value) == 0:
        is_bool = (
            value.dtype == torch.bool if isinstance(value, Tensor) else isinstance(value, np.bool_)
        )
        if not is_bool and not (isinstance(value, Tensor) and value.is_complex()):
            value = value.item()
    check_number(value, name, low, high, open_low)


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


# --- Shared validators for the analysis and plotting entry points (issue 14) ---------------------
# Each raises a ValueError (FileNotFoundError for a missing file) whose message names the
# argument, what was expected and what came, before any work is done.

_KINDS = {
    "float": (lambda t: t.is_floating_point(), "floating-point"),
    "int": (
        lambda t: not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool,
        "integer",
    ),  # fmt: skip
    "bool": (lambda t: t.dtype == torch.bool, "bool"),
    "real": (lambda t: not t.is_complex() and t.dtype != torch.bool, "real (int or float)"),
}


def _describe(x) -> str:
    if isinstance(x, Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    return f"{type(x).__name__}: {x!r}"[:120]


def check_tensor(
    x,
    name: str,
    ndim: int | tuple[int, ...] | None = None,
    kind: str | None = "float",
    finite: bool = True,
    nonempty: bool = True,
    min_rows: int = 0,
) -> None:
    """Raise ValueError unless `x` is a tensor of `ndim` dimensions (one of, for a tuple) and
    `kind` ("float", "int", "bool", "real" or None for any) that is non-empty and finite.

    `min_rows` also requires len(x) >= min_rows (e.g. 2 for a correlation).
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {_describe(x)}")
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if dims is not None and x.ndim not in dims:
        want = " or ".join(str(d) for d in dims)
        raise ValueError(f"{name} must have {want} dimension(s), got shape {tuple(x.shape)}")
    if kind is not None and not _KINDS[kind][0](x):
        raise ValueError(f"{name} must be a {_KINDS[kind][1]} tensor, got dtype {x.dtype}")
    if nonempty and x.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    if min_rows and (x.ndim == 0 or len(x) < min_rows):
        raise ValueError(f"{name} must hold at least {min_rows} rows, got shape {tuple(x.shape)}")
    if finite and x.is_floating_point() and not torch.isfinite(x).all():
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} must be finite, got {n_bad} NaN/inf values")


def check_same_shape(a: Tensor, b: Tensor, names: str) -> None:
    """Raise ValueError unless the two tensors (named e.g. "a and b") have one shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"{names} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_width(x: Tensor, width: int, name: str, what: str) -> None:
    """Raise ValueError unless the last dimension of `x` is `width` (`what` says whose width)."""
    if x.ndim == 0 or x.shape[-1] != width:
        raise ValueError(
            f"{name} must have last dimension {width} ({what}), got shape {tuple(x.shape)}"
        )


def check_index(value, name: str, size: int) -> None:
    """Raise ValueError unless `value` is an int (not a bool) in [0, size) (negative indices are
    refused: they would silently wrap)."""
    if isinstance(value, Tensor) and value.ndim == 0 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int index, got {_describe(value)}")
    if not 0 <= value < size:
        raise ValueError(f"{name} must be in [0, {size}), got {value}")


def check_choice(value, name: str, choices) -> None:
    """Raise ValueError unless `value` is one of `choices`."""
    if not isinstance(value, (str, int, float, type(None))) or value not in tuple(choices):
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {_describe(value)}")


def check_bool(value, name: str) -> None:
    """Raise ValueError unless `value` is True or False (not a string or a number)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {_describe(value)}")


def check_str(value, name: str, allow_empty: bool = True) -> None:
    """Raise ValueError unless `value` is a str (non-empty unless `allow_empty`)."""
    if not isinstance(value, str) or (not allow_empty and not value):
        raise ValueError(f"{name} must be a{'' if allow_empty else ' non-empty'} str, got "
                         f"{_describe(value)}")  # fmt: skip


def check_strings(values, name: str) -> None:
    """Raise ValueError unless `values` is a non-empty list/tuple of str (a lone str is refused:
    iterating it would give characters)."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{name} must be a non-empty list of str, got {_describe(values)}")
    for i, v in enumerate(values):
        check_str(v, f"{name}[{i}]")


def check_numbers(
    values, name: str, low: float = float("-inf"), high: float = float("inf")
) -> None:
    """Raise ValueError unless `values` is a non-empty sequence of finite numbers in [low, high]."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of numbers, got {_describe(values)}")
    for i, v in enumerate(values):
        check_number(float(v) if isinstance(v, np.floating) else v, f"{name}[{i}]", low, high)


def check_sae(sae, name: str = "sae", d_in: int | None = None, what: str = "") -> None:
    """Raise ValueError unless `sae` looks like this package's SAE (cfg.d_in, cfg.d_sae, W_enc,
    W_dec) and, with `d_in`, reads vectors of that width (`what` names where they come from)."""
    cfg = getattr(sae, "cfg", None)
    if cfg is None or not all(hasattr(sae, k) for k in ("W_enc", "W_dec", "encode", "decode")):
        raise ValueError(f"{name} must be a tutorial_sae SAE, got {_describe(sae)}")
    if d_in is not None and cfg.d_in != d_in:
        raise ValueError(
            f"{name} reads vectors of width d_in={cfg.d_in}, but {what or 'the input'} has width "
            f"{d_in}: was it trained on another hook or model?"
        )


def check_hook(model, hook) -> None:
    """Raise ValueError unless `hook` names one of the model's hook points."""
    if not isinstance(hook, str) or hook not in model.hook_dict:
        near = sorted(h for h in model.hook_dict if h.endswith(".hook_post"))[:4]
        raise ValueError(f"hook must be one of the model's hook points (e.g. {near}), got "
                         f"{_describe(hook)}")  # fmt: skip


def check_file(path, name: str = "path") -> Path:
    """The path as a Path; raise FileNotFoundError when missing, ValueError for a folder or a
    non-path argument."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{name} must be a file path (str or Path), got {_describe(path)}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name} must be a file, got the folder {path}")
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no file at {path}")
    return path


def read_json_object(path, name: str = "path") -> dict:
    """The JSON object in the file at `path`; errors name the file and the problem."""
    import json

    path = check_file(path, name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a UTF-8 JSON file: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got a {type(data).__name__}")
    return data


def read_safetensors(
    path,
    expected: dict[str, tuple[int, ...]] | None = None,
    extra_ok: bool = False,
    name: str = "path",
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, metadata) of the safetensors file at `path`, checked: a readable safetensors file
    (no pickle is ever run), with `expected` names and shapes (others refused unless `extra_ok`),
    float tensors finite. Every error names the file and the problem."""
    from safetensors import SafetensorError, safe_open

    path = check_file(path, name)
    size = path.stat().st_size
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError, RuntimeError) as err:
        with open(path, "rb") as f:
            head = f.read(8)
        kind = "empty" if size == 0 else (
            "a pickle (torch.save), which this book never unpickles" if head[:1] == b"\x80"
            or head[:2] == b"PK" else "truncated or not a safetensors file"
        )  # fmt: skip
        raise ValueError(f"{path} ({size} bytes) is not a readable safetensors file: {kind} "
                         f"({err})") from err  # fmt: skip
    if expected is not None:
        missing = sorted(set(expected) - set(tensors))
        extra = [] if extra_ok else sorted(set(tensors) - set(expected))
        if missing or extra:
            raise ValueError(f"{path}: expected tensors {sorted(expected)}, missing {missing}, "
                             f"unexpected {extra}")  # fmt: skip
        bad = {
            k: tuple(tensors[k].shape)
            for k in expected
            if tuple(tensors[k].shape) != tuple(expected[k])
        }
        if bad:
            want = {k: tuple(expected[k]) for k in bad}
            raise ValueError(f"{path}: expected tensors of shapes {want}, got {bad}")
        wrong = {k: str(tensors[k].dtype) for k in expected if not tensors[k].is_floating_point()}
        if wrong:
            raise ValueError(f"{path}: expected floating-point weights, got dtypes {wrong}")
    for key, value in tensors.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(f"{path}: {key} holds NaN or inf values")
    return tensors, metadata
