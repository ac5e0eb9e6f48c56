"""Token batches from a model's own training distribution, cached on disk (chapters 3-8).

Documents are tokenized once per (tokenizer, data) into one stream per language, EOS between
documents, and cut into consecutive windows of seq_len - 1 tokens behind a BOS: the layout the
mini model was trained on (`tutorial_sae.build.mini_model`) and the one Nanda's c4-code data used.
"""

from __future__ import annotations

import hashlib
import io
import json
import math

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from tutorial_sae.data import corpus
from tutorial_sae.data.hub import (
    HubUnavailableError,
    bounded_hub,
    discard_bad_downloads,
    download_hub_file,
    hub_cache_dir,
    one_line,
    use_network,
)
from tutorial_sae.paths import atomic_write_bytes, cache_root

C4_CODE = "NeelNanda/c4-code-20k"
GELU_1L_TOKENIZER_REPO = "NeelNanda/gpt-neox-tokenizer-digits"
# The dataset ships one split; its last rows are held out as "eval" (no overlap with "train").
C4_CODE_EVAL_ROWS = 1000
SPLITS = ("train", "eval")
# Share of each language in a mini training batch (and in `load_tokens("mini", ...)`). English
# and code dominate gelu-1l's data too; zh and ar get enough to be recognised (chapter 5), ar
# less because its corpus is small.
MIXTURE = (("en", 0.3), ("code", 0.3), ("zh", 0.25), ("ar", 0.15))


def _special_token(value):
    return value.get("content") if isinstance(value, dict) else value


def gelu_1l_tokenizer():
    """gelu-1l's tokenizer, built from its repo's tokenizer.json exactly as saved.

    transformers 5 rebuilds a `GPTNeoXTokenizer` from vocabulary and merges with a plain
    byte-level pre-tokenizer, dropping tokenizer.json's digit split ("12345" becomes "12", "34",
    "5" instead of five digits), which is not how gelu-1l was trained; the tokenizers library
    reads the whole pipeline. Special tokens come from tokenizer_config.json.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    repo = GELU_1L_TOKENIZER_REPO
    try:
        path = download_hub_file(repo, "tokenizer.json")
        try:
            raw = Tokenizer.from_file(str(path))
            config = json.loads(download_hub_file(repo, "tokenizer_config.json").read_text())
        except Exception as err:  # tokenizers raises a bare Exception on a bad file
            raise ValueError(f"expected a valid tokenizer.json and config, got: {err}") from err
    except ValueError as err:  # a corrupt download: removed, so the next try fetches it again
        discard_bad_downloads(repo, cache_dir=hub_cache_dir())
        error = HubUnavailableError(f"{repo} could not be loaded from the hub: {one_line(err)}")
        error.why = f"{repo}: {one_line(err)}"
        raise error from err
    special = {
        key: _special_token(config.get(key)) or "<|endoftext|>"
        for key in ("bos_token", "eos_token", "unk_token")
    }
    if config.get("pad_token"):
        special["pad_token"] = _special_token(config["pad_token"])
    missing = [tok for tok in special.values() if raw.token_to_id(tok) is None]
    if missing:
        raise ValueError(f"expected special tokens {missing} in {repo}'s vocabulary")
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        name_or_path=repo,
        add_bos_token=True,
        model_max_length=int(config.get("model_max_length") or 1024),
        **special,
    )


def tokenizer_fingerprint(tokenizer) -> str:
    """A short hash of what decides the ids (vocabulary, merges, pre- and post-processing).

    Padding and truncation settings are left out: TransformerLens changes them on the first
    `to_tokens` call, and they do not change how a document is tokenized.
    """
    definition = json.loads(tokenizer.backend_tokenizer.to_str())
    for setting in ("padding", "truncation"):
        definition.pop(setting, None)
    text = json.dumps(definition, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def stream_of(tokenizer, texts: list[str]) -> np.ndarray:
    """All documents' token ids in one int32 stream, EOS after each document (no BOS)."""
    sep = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id
    if sep is None:
        raise ValueError("expected a tokenizer with an EOS or BOS token, got neither")
    pieces = []
    batch = 512
    for i in range(0, len(texts), batch):
        for ids in tokenizer(texts[i : i + batch], add_special_tokens=False)["input_ids"]:
            pieces.append(np.asarray(ids, dtype=np.int32))
            pieces.append(np.asarray([sep], dtype=np.int32))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)


def windows_of(stream: np.ndarray, seq_len: int, bos: int) -> Int[Tensor, "n seq_len"]:
    """Consecutive non-overlapping windows of seq_len - 1 stream tokens, each behind a BOS."""
    if seq_len < 2:
        raise ValueError(f"expected seq_len >= 2 (BOS plus at least one token), got {seq_len}")
    n = len(stream) // (seq_len - 1)
    body = torch.from_numpy(stream[: n * (seq_len - 1)].astype(np.int64)).reshape(n, seq_len - 1)
    return torch.cat([torch.full((n, 1), bos, dtype=torch.int64), body], dim=1)


def mixture_counts(mixture: tuple[tuple[str, float], ...], n_seq: int) -> dict[str, int]:
    """Rows per language: the mixture's shares of n_seq, rounded by largest remainder."""
    exact = {lang: share * n_seq for lang, share in mixture}
    counts = {lang: int(x) for lang, x in exact.items()}
    for lang in sorted(exact, key=lambda k: counts[k] - exact[k])[: n_seq - sum(counts.values())]:
        counts[lang] += 1
    return counts


def _cached_stream(key: str, make) -> np.ndarray:
    path = cache_root() / "tokens" / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    stream = make()
    buffer = io.BytesIO()
    np.save(buffer, stream)
    atomic_write_bytes(path, buffer.getvalue())  # a concurrent reader sees no file or a whole one
    return stream


def _corpus_stream(tokenizer, split: str, lang: str) -> np.ndarray:
    built = corpus.built_stamp()
    stamp = hashlib.sha256(built.encode()).hexdigest()[:8]
    key = (
        f"corpus-v{corpus.CORPUS_VERSION}-{stamp}-{split}-{lang}-{tokenizer_fingerprint(tokenizer)}"
    )
    return _cached_stream(key, lambda: stream_of(tokenizer, corpus.load_texts(split, lang)))


def c4_code_rows(split: str, n_rows: int) -> range:
    """Row indices of `split` in the single-split c4-code-20k dataset."""
    cut = n_rows - C4_CODE_EVAL_ROWS
    return range(cut, n_rows) if split == "eval" else range(0, cut)


def _c4_code_stream(tokenizer, split: str) -> np.ndarray:
    def make() -> np.ndarray:
        import datasets
        from datasets.exceptions import DatasetsError
        from huggingface_hub.utils import httpx

        _, why = use_network()
        try:
            with bounded_hub(C4_CODE):
                data = datasets.load_dataset(C4_CODE, split="train")
        except (OSError, ValueError, RuntimeError, httpx.HTTPError, DatasetsError) as err:
            discard_bad_downloads(C4_CODE, "dataset", hub_cache_dir())
            error = HubUnavailableError(
                f"could not load {C4_CODE} ({why}; {one_line(err)}); it needs the network "
                "once, then lives in the datasets cache; offline, use the mini model"
            )
            error.why = f"{C4_CODE}: {one_line(err)}"
            raise error from err
        rows = c4_code_rows(split, len(data))
        return stream_of(tokenizer, data.select(rows)["text"])

    return _cached_stream(f"c4-code-20k-{split}-{tokenizer_fingerprint(tokenizer)}", make)


def _take(windows: Tensor, count: int, gen: torch.Generator, what: str) -> Tensor:
    if count > len(windows):
        raise ValueError(f"expected at most {len(windows)} sequences of {what}, got {count}")
    return windows[torch.randperm(len(windows), generator=gen)[:count]]


def tokens_for(
    model_name: str,
    tokenizer,
    split: str,
    n_tokens: int,
    seq_len: int = 128,
    lang: str | None = None,
    seed: int = 0,
) -> Int[Tensor, "n_seq seq_len"]:
    """The rows behind `loading.load_tokens` once the tokenizer is known (see its docstring)."""
    if split not in SPLITS:
        raise ValueError(f"expected split in {SPLITS}, got {split!r}")
    if not isinstance(n_tokens, int) or n_tokens < 1:
        raise ValueError(f"expected n_tokens to be a positive int, got {n_tokens!r}")
    n_seq = math.ceil(n_tokens / seq_len)
    bos = tokenizer.bos_token_id
    gen = torch.Generator().manual_seed(seed)
    if model_name == "gelu-1l":
        if lang is not None:
            raise ValueError(f"expected lang=None for gelu-1l (one C4+code stream), got {lang!r}")
        windows = windows_of(_c4_code_stream(tokenizer, split), seq_len, bos)
        return _take(windows, n_seq, gen, f"{seq_len} tokens in the {split} split of {C4_CODE}")
    if model_name != "mini":
        raise ValueError(f"expected model_name 'mini' or 'gelu-1l', got {model_name!r}")
    if lang is not None and lang not in corpus.LANGUAGES:
        raise ValueError(f"expected lang in {corpus.LANGUAGES} or None, got {lang!r}")
    mixture = MIXTURE if lang is None else ((lang, 1.0),)
    parts = [
        _take(
            windows_of(_corpus_stream(tokenizer, split, name), seq_len, bos),
            count,
            gen,
            f"{seq_len} tokens in the {split} split of {name}",
        )
        for name, count in mixture_counts(mixture, n_seq).items()
        if count
    ]
    rows = torch.cat(parts)
    # Interleave the languages so any slice of rows (a batch) follows the mixture too.
    return rows[torch.randperm(len(rows), generator=gen)]
