"""The repos the fixture hub serves, generated into a folder at test time (nothing large committed).

gelu-1l as TransformerLens's `from_pretrained("gelu-1l")` reads it (Neel Nanda's config.json and a
`model_final.pth` state dict in HookedTransformer names, seeded random weights of the real shapes),
its digit-splitting tokenizer repo, Nanda's two SAE checkpoints (25 = run1, 47 = run2) and the
c4-code-20k dataset as one parquet file of real human-written text (CPython's standard library).
"""

from __future__ import annotations

import json
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

GELU_1L_REPO = "NeelNanda/GELU_1L512W_C4_Code"
TOKENIZER_REPO = "NeelNanda/gpt-neox-tokenizer-digits"
SAE_REPO = "NeelNanda/sparse_autoencoder"
C4_CODE_REPO = "NeelNanda/c4-code-20k"
BOS = "<|endoftext|>"
PAD = "<|padding|>"

# The fields TransformerLens reads from Neel Nanda's config.json (convert_neel_model_config), with
# gelu-1l's values, plus training fields of his configs that it ignores.
GELU_1L_CONFIG = {
    "n_layers": 1,
    "d_model": 512,
    "d_mlp": 2048,
    "d_head": 64,
    "n_heads": 8,
    "n_ctx": 1024,
    "d_vocab": 48262,
    "act_fn": "gelu",
    "normalization": "LN",
    "attn_only": False,
    "shortformer_pos": False,
    "tokenizer_name": TOKENIZER_REPO,
    "dataset_name": "c4_code",
    "seed": 1036,
    "ln_eps": 1e-5,
}
# Nanda's SAE training config as saved next to each checkpoint (1L-Sparse-Autoencoder utils.py).
SAE_CONFIG = {
    "seed": 49,
    "batch_size": 4096,
    "buffer_mult": 384,
    "lr": 1e-4,
    "num_tokens": 2_000_000_000,
    "l1_coeff": 3e-4,
    "beta1": 0.9,
    "beta2": 0.99,
    "dict_mult": 8,
    "seq_len": 128,
    "d_mlp": 2048,
    "enc_dtype": "fp32",
    "remove_rare_dir": False,
    "model_batch_size": 512,
    "buffer_size": 1_572_864,
    "buffer_batches": 12_288,
}
SAE_VERSIONS = {25: 49, 47: 50}  # checkpoint version -> seed of its config and random weights
DATASET_ROWS = 3000
TOKENIZER_VOCAB = 8192


@dataclass
class Repo:
    """One hub repo: its id, kind ("model" or "dataset"), commit and files (path -> file on disk)."""

    repo_id: str
    kind: str
    sha: str
    files: dict[str, Path] = field(default_factory=dict)


def stdlib_documents(n_docs: int, chars: int = 700) -> list[str]:
    """Deterministic documents of real human-written text: chunks of CPython's standard library."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs: list[str] = []
    for path in sorted(root.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for start in range(0, len(text) - chars, chars):
            docs.append(text[start : start + chars])
            if len(docs) == n_docs:
                return docs
    return docs


def build_tokenizer(texts: list[str]):
    """A GPT-NeoX style byte-level BPE whose pre-tokenizer splits every digit off on its own.

    The merges are learnt without the digit split, so the vocabulary holds multi-digit tokens
    ("12", " 2020") as GPT-NeoX's does: a loader that drops the digit split tokenizes numbers
    differently, and the tests can see it.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        special_tokens=[BOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    return tokenizer


def _write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))
    return path


def _gelu_1l_state(seed: int = 0) -> dict:
    """A HookedTransformer state dict of gelu-1l's real shapes (unfolded LN, as Nanda saved it)."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=512,
        d_mlp=2048,
        d_head=64,
        n_heads=8,
        n_ctx=1024,
        d_vocab=48262,
        act_fn="gelu",
        normalization_type="LN",
        device="cpu",
        seed=seed,
    )
    model = HookedTransformer(cfg)
    return {k: v for k, v in model.state_dict().items() if "IGNORE" not in k and "mask" not in k}


def _nanda_sae_state(seed: int) -> dict:
    import torch

    gen = torch.Generator().manual_seed(seed)
    d_mlp, d_sae = SAE_CONFIG["d_mlp"], SAE_CONFIG["d_mlp"] * SAE_CONFIG["dict_mult"]
    w_dec = torch.randn(d_sae, d_mlp, generator=gen)
    return {
        "W_enc": torch.randn(d_mlp, d_sae, generator=gen) / d_mlp**0.5,
        "W_dec": w_dec / w_dec.norm(dim=-1, keepdim=True),
        "b_enc": torch.zeros(d_sae),
        "b_dec": torch.zeros(d_mlp),
    }


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()


def build_repos(root: Path) -> dict[str, Repo]:
    """Write every fixture repo under `root` (about 750 MB, 10-20 s) and describe them."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    root.mkdir(parents=True, exist_ok=True)
    texts = stdlib_documents(DATASET_ROWS)
    digits = [f"{n} + {n * 7} = {n * 8}; version {n}.{n % 10}.{n * 3}" for n in range(0, 5000, 7)]
    repos = {}

    folder = root / "tokenizer"
    folder.mkdir(exist_ok=True)
    build_tokenizer(texts + digits).save(str(folder / "tokenizer.json"))
    special = {"bos_token": BOS, "eos_token": BOS, "unk_token": BOS, "pad_token": PAD}
    repos[TOKENIZER_REPO] = Repo(
        TOKENIZER_REPO,
        "model",
        _sha(TOKENIZER_REPO),
        {
            "tokenizer.json": folder / "tokenizer.json",
            "tokenizer_config.json": _write_json(
                folder / "tokenizer_config.json",
                {
                    **special,
                    "add_prefix_space": False,
                    "model_max_length": 1024,
                    "name_or_path": TOKENIZER_REPO,
                    "tokenizer_class": "GPTNeoXTokenizer",
                },
            ),
            "special_tokens_map.json": _write_json(folder / "special_tokens_map.json", special),
        },
    )

    folder = root / "gelu-1l"
    folder.mkdir(exist_ok=True)
    torch.save(_gelu_1l_state(), folder / "model_final.pth")
    repos[GELU_1L_REPO] = Repo(
        GELU_1L_REPO,
        "model",
        _sha(GELU_1L_REPO),
        {
            "config.json": _write_json(folder / "config.json", GELU_1L_CONFIG),
            "model_final.pth": folder / "model_final.pth",
        },
    )

    folder = root / "sae"
    folder.mkdir(exist_ok=True)
    files = {}
    for version, seed in SAE_VERSIONS.items():
        torch.save(_nanda_sae_state(seed), folder / f"{version}.pt")
        files[f"{version}.pt"] = folder / f"{version}.pt"
        cfg = {**SAE_CONFIG, "seed": seed}
        files[f"{version}_cfg.json"] = _write_json(folder / f"{version}_cfg.json", cfg)
    repos[SAE_REPO] = Repo(SAE_REPO, "model", _sha(SAE_REPO), files)

    folder = root / "c4-code-20k"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    data = folder / "data" / "train-00000-of-00001.parquet"
    meta = [json.dumps({"source": "cpython-stdlib", "row": i}) for i in range(len(texts))]
    pq.write_table(pa.table({"text": texts, "meta": meta}), data)
    readme = folder / "README.md"
    n_bytes = sum(len(t.encode()) + len(m) for t, m in zip(texts, meta, strict=True))
    readme.write_text(
        "---\ndataset_info:\n  features:\n  - name: text\n    dtype: string\n"
        "  - name: meta\n    dtype: string\n  splits:\n  - name: train\n"
        f"    num_bytes: {n_bytes}\n    num_examples: {len(texts)}\n"
        "configs:\n- config_name: default\n  data_files:\n"
        "  - split: train\n    path: data/train-*\n---\n# c4-code-20k (fixture)\n"
    )
    repos[C4_CODE_REPO] = Repo(
        C4_CODE_REPO,
        "dataset",
        _sha(C4_CODE_REPO),
        {"README.md": readme, "data/train-00000-of-00001.parquet": data},
    )
    return repos
