"""Token script labels from tokenizer offsets, labelled held-out tokens, the LLR proxy (chapter 5).

A byte-level BPE cuts a Chinese character (3 UTF-8 bytes) or an Arabic letter (2 bytes) into
tokens that are not text on their own. The tokenizer's offsets map every token back to the
characters its bytes came from, so a token is labelled by those characters: a continuation-byte
token inside a Han character is Han.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.data.sources import SCRIPT_RANGES

SCRIPTS = ("none", "latin", "han", "arabic", "other")
# Document languages of the offline corpus; "web" is gelu-1l's mixed C4 + code text.
LANGS = ("en", "code", "zh", "ar", "web")
# CJK punctuation and full-width forms belong to Chinese text although they are not ideographs.
_HAN_EXTRA = ((0x3000, 0x303F), (0xFF00, 0xFFEF))
_LATIN = ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x24F))


def _in(codes: np.ndarray, ranges) -> np.ndarray:
    hit = np.zeros(codes.shape, dtype=bool)
    for lo, hi in ranges:
        hit |= (codes >= lo) & (codes <= hi)
    return hit


def char_scripts(text: str) -> np.ndarray:
    """Index into SCRIPTS of every character of `text` (digits, spaces, punctuation: "none")."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    out = np.zeros(codes.shape, dtype=np.int64)
    other = np.fromiter((chr(c).isalpha() for c in codes), dtype=bool, count=len(codes))
    out[other] = SCRIPTS.index("other")
    out[_in(codes, _LATIN)] = SCRIPTS.index("latin")
    out[_in(codes, SCRIPT_RANGES["ar"])] = SCRIPTS.index("arabic")
    out[_in(codes, (*SCRIPT_RANGES["zh"], *_HAN_EXTRA))] = SCRIPTS.index("han")
    return out


def span_scripts(per_char: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Index into SCRIPTS per (start, end) span: the most common script among its characters.

    Characters with no script (spaces, digits, punctuation) do not vote; a span with none of the
    others is "none"; ties go to the script listed first in SCRIPTS.
    """
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    if offsets.size and (offsets.min() < 0 or offsets.max() > len(per_char)):
        raise ValueError(f"expected offsets within 0..{len(per_char)}, got {offsets.tolist()[:3]}")
    # Prefix sums of one-hot scripts: the votes inside any span are one subtraction.
    onehot = np.eye(len(SCRIPTS), dtype=np.int64)[per_char]
    prefix = np.concatenate([np.zeros((1, len(SCRIPTS)), np.int64), onehot.cumsum(0)])
    votes = (prefix[offsets[:, 1]] - prefix[offsets[:, 0]])[:, 1:]
    return np.where(votes.any(1), 1 + votes.argmax(1), 0)


def token_scripts(text: str, offsets: Sequence[tuple[int, int]]) -> list[str]:
    """The script of each token of `text`, from the characters its (start, end) offsets cover."""
    return [SCRIPTS[i] for i in span_scripts(char_scripts(text), np.asarray(offsets))]


@dataclass(frozen=True)
class LabelledTokens:
    """Rows of BOS + (seq_len - 1) tokens with each token's script and document language.

    `script` and `lang` index SCRIPTS and LANGS; the BOS column is "none" and is never counted.
    """

    tokens: Int[Tensor, "n_seq seq_len"]
    script: Int[Tensor, "n_seq seq_len"]
    lang: Int[Tensor, "n_seq seq_len"]

    @property
    def n_tokens(self) -> int:
        """Tokens that count: every position but the BOS column."""
        return self.tokens[:, 1:].numel()


def _labelled_stream(tokenizer, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    sep = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id
    ids, scripts = [], []
    for text in texts:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids.append(np.asarray(enc["input_ids"] + [sep], dtype=np.int64))
        spans = span_scripts(char_scripts(text), np.asarray(enc["offset_mapping"]))
        scripts.append(np.append(spans, 0))
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(ids), np.concatenate(scripts)


def label_tokens(
    tokenizer,
    texts: Mapping[str, Sequence[str]],
    n_tokens: int | Mapping[str, int],
    seq_len: int = 128,
    seed: int = 0,
) -> LabelledTokens:
    """Windows of each language's documents (EOS between them, BOS in front), labelled.

    `texts` maps a language in LANGS to its documents; `n_tokens` (per language, or one number
    for all) is rounded up to whole rows and capped by the text available. Rows are drawn at
    random with `seed` from all the windows of a language, the layout of `load_tokens`.
    """
    bad = [lang for lang in texts if lang not in LANGS]
    if bad:
        raise ValueError(f"expected languages in {LANGS}, got {bad}")
    if seq_len < 2:
        raise ValueError(f"expected seq_len >= 2, got {seq_len}")
    gen = torch.Generator().manual_seed(seed)
    rows, scripts, langs = [], [], []
    for lang, docs in texts.items():
        want = n_tokens[lang] if isinstance(n_tokens, Mapping) else n_tokens
        ids, script = _labelled_stream(tokenizer, docs)
        n = len(ids) // (seq_len - 1)
        if n == 0:
            raise ValueError(f"expected at least {seq_len - 1} tokens of {lang!r}, got {len(ids)}")
        take = torch.randperm(n, generator=gen)[: math.ceil(want / (seq_len - 1))]
        body = torch.from_numpy(ids[: n * (seq_len - 1)]).reshape(n, -1)[take]
        label = torch.from_numpy(script[: n * (seq_len - 1)]).reshape(n, -1)[take]
        rows.append(torch.cat([torch.full((len(take), 1), tokenizer.bos_token_id), body], 1))
        scripts.append(torch.cat([torch.zeros(len(take), 1, dtype=torch.int64), label], 1))
        langs.append(torch.full_like(rows[-1], LANGS.index(lang)))
    return LabelledTokens(torch.cat(rows), torch.cat(scripts), torch.cat(langs))


def heldout_texts(model_name: str, max_docs: int | None = None) -> dict[str, list[str]]:
    """Held-out documents by language: the offline corpus' eval split for mini, the eval rows
    of NeelNanda/c4-code-20k (one mixed "web" stream) for gelu-1l."""
    if model_name == "mini":
        from tutorial_sae.data.corpus import LANGUAGES, load_texts

        return {lang: load_texts("eval", lang)[:max_docs] for lang in LANGUAGES}
    if model_name != "gelu-1l":
        raise ValueError(f"expected model_name 'mini' or 'gelu-1l', got {model_name!r}")
    import datasets

    from tutorial_sae.data.tokens import C4_CODE, c4_code_rows

    data = datasets.load_dataset(C4_CODE, split="train")
    rows = list(c4_code_rows("eval", len(data)))[:max_docs]
    return {"web": data.select(rows)["text"]}


@dataclass(frozen=True)
class TokenCounts:
    """How often each token id occurs in each language's training text (the proxy's statistics)."""

    counts: dict[str, list[int]]
    weights: dict[str, float]

    def __post_init__(self) -> None:
        if set(self.weights) != set(self.counts):
            raise ValueError(
                f"expected weights for languages {sorted(self.counts)}, got {sorted(self.weights)}"
            )
        sizes = {len(c) for c in self.counts.values()}
        if len(sizes) != 1:
            raise ValueError(f"expected one vocabulary size for all languages, got {sizes}")


def count_tokens(token_ids: Mapping[str, np.ndarray], d_vocab: int, weights: Mapping[str, float]):
    """TokenCounts from each language's stream of token ids (ids must be < d_vocab)."""
    counts = {}
    for lang, ids in token_ids.items():
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= d_vocab):
            raise ValueError(f"expected token ids in [0, {d_vocab}), got {ids.min()}..{ids.max()}")
        counts[lang] = np.bincount(ids, minlength=d_vocab).tolist()
    return TokenCounts(counts, dict(weights))


def llr_proxy(
    counts: TokenCounts, concept: str, alpha: float = 1.0
) -> Float[Tensor, " d_vocab"]:
    """Per token t, log P(t | concept) / P(t), Bricken et al. 2023's proxy for a concept.

    P(t | concept) comes from the concept language's counts, P(t) from the mixture of all
    languages with `counts.weights` (the model's training distribution); both add `alpha` to
    every count (Laplace smoothing), so a token never seen in one language stays finite.
    """
    if concept not in counts.counts:
        raise ValueError(f"expected a concept language in {sorted(counts.counts)}, got {concept!r}")
    if alpha <= 0:
        raise ValueError(f"expected alpha > 0 (smoothing), got {alpha}")

    def probs(lang: str) -> Tensor:
        c = torch.tensor(counts.counts[lang], dtype=torch.float64) + alpha
        return c / c.sum()

    total = sum(counts.weights.values())
    mixture = sum(w / total * probs(lang) for lang, w in counts.weights.items())
    return (probs(concept).log() - mixture.log()).float()
