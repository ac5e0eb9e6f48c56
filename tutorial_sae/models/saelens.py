"""Our SAEs in SAELens 6's folder format and back: `cfg.json` + `sae_weights.safetensors` (chapter 3).

SAELens's "standard" architecture is this book's SAE: f = ReLU(W_enc (x - b_dec) + b_enc),
x_hat = W_dec f + b_dec, with `apply_b_dec_to_input` true and no activation normalisation, and
the same tensor names and shapes (W_enc [d_in, d_sae], W_dec [d_sae, d_in]). So an export is a
renaming of files plus the metadata SAELens keeps (model and hook name), and SAELens's forward
pass on the exported folder gives the same features and reconstructions
(`benchmarks/check_saelens_interop.py` checks it where SAELens is installed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save

from tutorial_sae.core.sae import SAE, SAEConfig
from tutorial_sae.data.activations import DEFAULT_HOOK
from tutorial_sae.paths import atomic_write_bytes, atomic_write_json
from tutorial_sae.utils import (
    check_device,
    check_int,
    check_tensor,
    read_json_object,
    read_safetensors,
)

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
KEYS = ("W_enc", "b_enc", "W_dec", "b_dec")
# Where our l1_coeff and seed travel in SAELens's free-form metadata (it has no field for them).
L1_KEY = "tutorial_sae_l1_coeff"
SEED_KEY = "tutorial_sae_seed"


@dataclass(frozen=True)
class SAELensSAE:
    """An SAE read from a SAELens folder and the metadata that came with it."""

    sae: SAE
    model_name: str | None
    hook_name: str | None
    metadata: dict


def export_saelens(
    sae: SAE,
    folder: str | Path,
    model_name: str,
    hook_name: str = DEFAULT_HOOK,
    context_size: int | None = None,
) -> Path:
    """Write `sae` as a SAELens 6 "standard" SAE folder that `SAE.load_from_disk` reads."""
    if not isinstance(sae, SAE):
        raise ValueError(f"expected a tutorial_sae SAE, got {type(sae).__name__}")
    for name, value in (("model_name", model_name), ("hook_name", hook_name)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"expected a non-empty string {name}, got {value!r}")
    if context_size is not None:
        check_int(context_size, "context_size")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"folder must be a folder (it will hold {CFG_FILE}), got the file {folder}"
        )
    tensors = {k: getattr(sae, k).detach().cpu().contiguous() for k in KEYS}
    for key, value in tensors.items():
        check_tensor(value, f"sae.{key}")
    dtype = str(tensors["W_enc"].dtype).removeprefix("torch.")
    metadata = {
        "model_name": model_name,
        "hook_name": hook_name,
        "hook_head_index": None,
        "prepend_bos": True,
        "context_size": context_size,
        L1_KEY: sae.cfg.l1_coeff,
        SEED_KEY: sae.cfg.seed,
    }
    cfg = {
        "architecture": "standard",
        "d_in": sae.cfg.d_in,
        "d_sae": sae.cfg.d_sae,
        "dtype": dtype,
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": metadata,
    }
    atomic_write_bytes(folder / WEIGHTS_FILE, save(tensors))
    atomic_write_json(folder / CFG_FILE, cfg)
    return folder


def _fail(path: Path, problem: str) -> ValueError:
    return ValueError(f"{path} is not a SAELens standard SAE this book can read: {problem}")


def import_saelens(folder: str | Path, device: str | torch.device = "cpu") -> SAELensSAE:
    """Read a SAELens 6 "standard" SAE folder (ours or SAELens's) into this book's SAE.

    Refused with a ValueError naming the file and field: other architectures, b_dec not
    applied to the input, activation normalisation or reshaping (this SAE has neither),
    missing or ill-shaped tensors, non-finite weights.
    """
    check_device(device)
    folder = Path(folder)
    cfg_path, weights_path = folder / CFG_FILE, folder / WEIGHTS_FILE
    if not cfg_path.exists() or not weights_path.exists():
        raise FileNotFoundError(f"expected {CFG_FILE} and {WEIGHTS_FILE} in the folder {folder}")
    try:
        cfg = read_json_object(cfg_path, CFG_FILE)
    except ValueError as err:
        raise _fail(cfg_path, str(err)) from err
    expected = {
        "architecture": "standard",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
    }
    for key, want in expected.items():
        got = cfg.get(key, want if key == "reshape_activations" else None)
        if got != want:
            raise _fail(cfg_path, f"expected {key} = {want!r}, got {got!r}")
    metadata = cfg.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise _fail(cfg_path, f"expected metadata to be an object, got {type(metadata).__name__}")
    for key in ("model_name", "hook_name"):
        if not isinstance(metadata.get(key), (str, type(None))):
            raise _fail(cfg_path, f"expected metadata.{key} to be a string, got {metadata[key]!r}")
    l1 = metadata.get(L1_KEY, 0.0)
    try:
        sae_cfg = SAEConfig(
            d_in=cfg.get("d_in"),
            d_sae=cfg.get("d_sae"),
            l1_coeff=l1,
            seed=metadata.get(SEED_KEY, 0),
        )
    except ValueError as err:
        raise _fail(cfg_path, str(err)) from err
    sae = SAE(sae_cfg)
    shapes = {k: tuple(getattr(sae, k).shape) for k in KEYS}
    try:
        # Extra tensors (e.g. SAELens's own buffers) are ignored; ours must be there, float, finite.
        state, _ = read_safetensors(weights_path, shapes, extra_ok=True, name=WEIGHTS_FILE)
    except ValueError as err:
        raise _fail(weights_path, str(err)) from err
    with torch.no_grad():
        for key in KEYS:
            getattr(sae, key).copy_(state[key].float())
    return SAELensSAE(
        sae.to(device), metadata.get("model_name"), metadata.get("hook_name"), metadata
    )
