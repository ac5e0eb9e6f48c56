"""Read Nanda's gelu-1l SAEs (run1, run2): his cfg JSON and .pt weights as our SAE (chapters 3-8)."""

from __future__ import annotations

import json
import math
import pickle
import zipfile
from pathlib import Path

import torch
from torch import Tensor

from tutorial_sae.core.sae import SAE, SAEConfig
from tutorial_sae.data.hub import discard_bad_downloads, download_hub_file, hub_cache_dir

HUB_SAE_REPO = "NeelNanda/sparse_autoencoder"
# run1 and run2 are the final checkpoints (versions 25 and 47) of Nanda's two training runs.
HUB_SAE_VERSIONS = {"gelu-1l/run1": 25, "gelu-1l/run2": 47}
HUB_SAE_KEYS = ("W_enc", "W_dec", "b_enc", "b_dec")


def _read_hub_cfg(path: Path) -> dict:
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"expected a JSON config in {path}, got: {err}") from err
    if not isinstance(cfg, dict):
        raise ValueError(f"expected a JSON object in {path}, got {type(cfg).__name__}")
    return cfg


def _read_hub_weights(path: Path) -> dict[str, Tensor]:
    """A `torch.save`d dict of tensors, read with weights_only=True: no pickled code ever runs."""
    with open(path, "rb") as handle:
        head = handle.read(2)
    # torch.save writes a zip archive; files from before torch 1.6 are a bare pickle (0x80).
    if not zipfile.is_zipfile(path) and not head.startswith(b"\x80"):
        raise ValueError(f"expected a torch weights file at {path}, got bytes starting {head!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = str(err).split("WeightsUnpickler error:")[-1].strip() or str(err)
        raise ValueError(
            f"{path} is corrupt or holds more than tensors; torch.load(weights_only=True) "
            f"refused it: {detail.splitlines()[0]}"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise ValueError(f"expected a torch weights file at {path}, got: {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"expected a dict of tensors in {path}, got {type(state).__name__}")
    return state


def _cfg_field(cfg: dict, key: str, default, kind: type):
    """`cfg[key]` as `kind` (default when absent); a null or ill-typed value names the key."""
    if key not in cfg:
        return default
    value = cfg[key]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok or (kind is float and not math.isfinite(value)):
        raise ValueError(
            f"expected the SAE config's {key!r} to be a finite {kind.__name__} (in Nanda's units: "
            f"l1_coeff per batch element, batch_size in tokens), got {value!r}"
        )
    return kind(value)


def sae_from_nanda(state: dict[str, Tensor], cfg: dict) -> SAE:
    """Our SAE holding Nanda's run weights unchanged (W_enc [d_mlp, d_sae], W_dec [d_sae, d_mlp]).

    His L1 term is l1_coeff * sum over batch and features of |f| (batch 4096); ours is the mean
    over the batch, so the equivalent coefficient is l1_coeff * batch_size (3e-4 -> 1.23). run1
    skipped the decoder renormalisation (DESIGN.md), so its W_dec rows are close to, not exactly,
    unit norm: they are kept as trained.
    """
    missing = [k for k in HUB_SAE_KEYS if k not in state]
    extra = sorted(set(state) - set(HUB_SAE_KEYS))
    if missing or extra:
        raise ValueError(f"expected tensors {list(HUB_SAE_KEYS)}, missing {missing}, extra {extra}")
    if state["W_enc"].ndim != 2:
        raise ValueError(
            f"expected W_enc of shape [d_mlp, d_sae], got {tuple(state['W_enc'].shape)}"
        )
    d_in, d_sae = state["W_enc"].shape
    # Older configs omit some fields; those present must agree with the weights.
    if "d_mlp" in cfg and cfg["d_mlp"] != d_in:
        raise ValueError(f"cfg d_mlp={cfg['d_mlp']} but W_enc has shape {(d_in, d_sae)}")
    if "dict_mult" in cfg and cfg["dict_mult"] * d_in != d_sae:
        raise ValueError(f"cfg dict_mult={cfg['dict_mult']} but W_enc has shape {(d_in, d_sae)}")
    expected = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,)}
    got = {k: tuple(state[k].shape) for k in HUB_SAE_KEYS}
    if got != expected:
        raise ValueError(f"expected shapes {expected}, got {got}")
    if not all(torch.isfinite(state[k]).all() for k in HUB_SAE_KEYS):
        raise ValueError("expected finite weights, got NaN or inf")
    l1 = _cfg_field(cfg, "l1_coeff", 0.0, float) * _cfg_field(cfg, "batch_size", 1, int)
    sae = SAE(SAEConfig(d_in=d_in, d_sae=d_sae, l1_coeff=l1, seed=_cfg_field(cfg, "seed", 0, int)))
    sae.load_state_dict({k: state[k].float() for k in HUB_SAE_KEYS})
    return sae


def _load_hub_sae(name: str, device: torch.device) -> SAE:
    """Nanda's run (`HUB_SAE_VERSIONS`); a file that cannot be read is removed from the cache."""
    version = HUB_SAE_VERSIONS[name]
    try:
        cfg_path = download_hub_file(HUB_SAE_REPO, f"{version}_cfg.json")
        cfg = _read_hub_cfg(cfg_path)
        state = _read_hub_weights(download_hub_file(HUB_SAE_REPO, f"{version}.pt"))
    except ValueError:
        discard_bad_downloads(HUB_SAE_REPO, cache_dir=hub_cache_dir())
        raise
    try:
        return sae_from_nanda(state, cfg).to(device)
    except ValueError as err:
        raise ValueError(f"{HUB_SAE_REPO} {version}.pt / {cfg_path.name}: {err}") from err
