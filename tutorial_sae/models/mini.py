"""The embedded `mini` model: tokenizer, 1-layer GELU transformer, save and load (chapters 3-8)."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from tokenizers import Tokenizer
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformers import PreTrainedTokenizerFast

from tutorial_sae.paths import assets_dir, atomic_write_bytes, atomic_write_json
from tutorial_sae.utils import get_device

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|eos|>"
PAD_TOKEN = "<|pad|>"
SPECIAL_TOKENS = (BOS_TOKEN, EOS_TOKEN, PAD_TOKEN)
TOKENIZER_NAME = "tutorial_sae/mini"
ASSET_FILES = ("tokenizer.json", "model.safetensors", "config.json")


@dataclass(frozen=True)
class MiniModelConfig:
    """Shape of the mini model: gelu-1l's architecture (attention + 4x MLP, LN), made small."""

    d_vocab: int = 4096
    d_model: int = 128
    n_heads: int = 4
    n_ctx: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("d_vocab", "d_model", "n_heads", "n_ctx"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be divisible by n_heads, got d_model={self.d_model}, "
                f"n_heads={self.n_heads}"
            )

    @property
    def d_mlp(self) -> int:
        return 4 * self.d_model

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MiniModelConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) != fields:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"expected a dict with keys {sorted(fields)}, got {got}")
        return cls(**data)


def make_tokenizer(tokenizer: str | os.PathLike | Tokenizer) -> PreTrainedTokenizerFast:
    """Wrap a byte-level BPE (tokenizer.json path or `tokenizers.Tokenizer`) for TransformerLens.

    TransformerLens re-creates the tokenizer from `name_or_path` unless `add_bos_token=True` is
    already set, so both are required for a tokenizer that exists only in memory.
    """
    if isinstance(tokenizer, Tokenizer):
        # A copy: the wrapper installs a BOS post-processor, the caller's object stays raw.
        raw = Tokenizer.from_str(tokenizer.to_str())
    elif isinstance(tokenizer, (str, os.PathLike)):
        path = Path(tokenizer)
        if not path.is_file():
            raise FileNotFoundError(f"expected a tokenizer.json file, got missing path {path}")
        try:
            raw = Tokenizer.from_file(str(path))
        except Exception as err:
            raise ValueError(f"expected a valid tokenizer.json at {path}, got: {err}") from err
    else:
        raise ValueError(
            "expected a tokenizer.json path or tokenizers.Tokenizer, "
            f"got {type(tokenizer).__name__}"
        )
    missing = [tok for tok in SPECIAL_TOKENS if raw.token_to_id(tok) is None]
    if missing:
        raise ValueError(
            f"expected special tokens {SPECIAL_TOKENS} in the vocab, missing {missing}"
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        add_bos_token=True,
        name_or_path=TOKENIZER_NAME,
    )


def build_model(
    cfg: MiniModelConfig, tokenizer: PreTrainedTokenizerFast | None
) -> HookedTransformer:
    """A freshly initialised (seeded by `cfg.seed`) 1-layer GELU HookedTransformer on the CPU."""
    if tokenizer is not None and len(tokenizer) != cfg.d_vocab:
        raise ValueError(
            f"expected a tokenizer with d_vocab={cfg.d_vocab} tokens, got {len(tokenizer)}"
        )
    tl_cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=cfg.d_model,
        d_head=cfg.d_head,
        n_heads=cfg.n_heads,
        d_mlp=cfg.d_mlp,
        d_vocab=cfg.d_vocab,
        n_ctx=cfg.n_ctx,
        act_fn="gelu",
        normalization_type="LN",
        positional_embedding_type="standard",
        attn_only=False,
        seed=cfg.seed,
        device="cpu",
        model_name="mini",
        default_prepend_bos=True,
    )
    with warnings.catch_warnings():
        # TL 3.x announces its own 4.0 deprecation on every HookedTransformer build.
        warnings.simplefilter("ignore", DeprecationWarning)
        # TL logs a warning when a padding side comes without a tokenizer.
        side = None if tokenizer is None else "right"
        return HookedTransformer(tl_cfg, tokenizer=tokenizer, default_padding_side=side)


def _fail(folder: Path, problem: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"mini model assets in {folder} are unusable ({problem}); rebuild them with "
        "`python -m tutorial_sae.build.mini_model all`"
    )


def load_mini_model(
    device: str | torch.device | None = None, folder: str | os.PathLike | None = None
) -> HookedTransformer:
    """The shipped mini model (fp16 on disk, fp32 in memory) with its tokenizer attached."""
    folder = assets_dir() if folder is None else Path(folder)
    missing = [name for name in ASSET_FILES if not (folder / name).is_file()]
    if missing:
        raise _fail(folder, f"missing {', '.join(missing)}")
    try:
        meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        cfg = MiniModelConfig.from_dict(meta["model"])
        tokenizer = make_tokenizer(folder / "tokenizer.json")
        weights = load_file(str(folder / "model.safetensors"))
    except (ValueError, KeyError, TypeError, SafetensorError) as err:
        raise _fail(folder, f"{type(err).__name__}: {err}") from err
    model = build_model(cfg, tokenizer)
    expected = dict(model.named_parameters())
    if set(weights) != set(expected):
        raise _fail(folder, f"weights {sorted(set(weights) ^ set(expected))} do not match")
    for name, param in expected.items():
        if weights[name].shape != param.shape:
            raise _fail(folder, f"{name} has shape {tuple(weights[name].shape)}")
    with torch.no_grad():
        for name, param in expected.items():
            param.copy_(weights[name].float())
    model.eval()
    return model.to(get_device() if device is None else device, print_details=False)


def save_model(
    model: HookedTransformer,
    cfg: MiniModelConfig,
    folder: str | os.PathLike,
    extra: dict | None = None,
) -> None:
    """Write tokenizer.json, model.safetensors (fp16) and config.json; each file atomically.

    `extra` (training metadata) goes into config.json next to the model config.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if model.tokenizer is None:
        raise ValueError("expected a model with a tokenizer attached, got tokenizer=None")
    # The backend tokenizer carries the BOS post-processor; make_tokenizer adds it again.
    raw = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())
    raw.post_processor = None
    atomic_write_bytes(folder / "tokenizer.json", raw.to_str().encode("utf-8"), mode=0o644)
    # fp16 halves the shipped size; the loss change is far below the eval noise (tests check).
    weights = {
        name: p.detach().to("cpu", torch.float16).contiguous()
        for name, p in model.named_parameters()
    }
    atomic_write_bytes(
        folder / "model.safetensors", save(weights, metadata={"format": "pt"}), mode=0o644
    )
    meta = {"model": cfg.to_dict(), **(extra or {})}
    atomic_write_json(folder / "config.json", meta, mode=0o644)
