"""Token script labels from tokenizer offsets, labelled held-out tokens, their assets (chapter 5).

A byte-level BPE cuts a Chinese character (3 UTF-8 bytes) or an Arabic letter (2 bytes) into
tokens that are not text on their own. The tokenizer's offsets map every token back to the
characters its bytes came from, so a token is labelled by those characters: a continuation-byte
token inside a Han character is Han.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from tutorial_sae.analysis.token_counts import (  # noqa: F401 - re-exported (build, exercises)
    TokenCounts,
    count_tokens,
    llr_proxy,
    log_ratio_of_counts,
)
from tutorial_sae.data.sources import SCRIPT_RANGES
from tutorial_sae.utils import check_choice, check_int, check_str, check_strings

SCRIPTS = ("none", "latin", "han", "arabic", "other")
# Document languages of the offline corpus; "web" is gelu-1l's mixed C4 + code text.
LANGS = ("en", "code", "zh", "ar", "web")
# Disjoint token concepts, as (scripts, languages) allowed; None allows any.
CONCEPTS = {
    "han": (("han",), tuple(x for x in LANGS if x != "code")),
    "arabic": (("arabic",), tuple(x for x in LANGS if x != "code")),
    "latin": (("latin",), tuple(x for x in LANGS if x != "code")),
    "code": (None, ("code",)),
}
N_GROUPS = len(LANGS) * len(SCRIPTS)
# CJK punctuation and full-width forms belong to Chinese text although they are not ideographs.
_HAN_EXTRA = ((0x3000, 0x303F), (0xFF00, 0xFFEF))
_LATIN = ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x24F))


def _in(codes: np.ndarray, ranges) -> np.ndarray:
    hit = np.zeros(codes.shape, dtype=bool)
    for lo, hi in ranges:
        hit |= (codes >= lo) & (codes <= hi)
    return hit


def check_concepts(concepts) -> None:
    """Raise ValueError unless `concepts` is a list/tuple of names in CONCEPTS."""
    if isinstance(concepts, str) or not isinstance(concepts, (list, tuple)):
        raise ValueError(
            f"concepts must be a tuple of names in {sorted(CONCEPTS)}, got {concepts!r}"
        )
    for c in concepts:
        check_choice(c, "concepts[i]", sorted(CONCEPTS))


def concept_groups(concept: str) -> Tensor:
    """Bool [N_GROUPS]: which (language, script) groups of tokens make up `concept`."""
    if concept not in CONCEPTS:
        raise ValueError(f"expected a concept in {sorted(CONCEPTS)}, got {concept!r}")
    scripts, langs = CONCEPTS[concept]
    mask = torch.zeros(len(LANGS), len(SCRIPTS), dtype=torch.bool)
    for i, lang in enumerate(LANGS):
        for j, script in enumerate(SCRIPTS):
            mask[i, j] = (scripts is None or script in scripts) and (langs is None or lang in langs)
    return mask.flatten()


def char_scripts(text: str) -> np.ndarray:
    """Index into SCRIPTS of every character of `text` (digits, spaces, punctuation: "none")."""
    check_str(text, "text")
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
    offsets = np.asarray(offsets)
    if offsets.size and (
        offsets.ndim != 2 or offsets.shape[1] != 2 or offsets.dtype.kind not in "iu"
    ):
        raise ValueError(
            f"expected offsets as integer (start, end) pairs, got {offsets.tolist()[:3]}"
        )
    offsets = offsets.astype(np.int64).reshape(-1, 2)
    if offsets.size and (
        offsets.min() < 0 or offsets.max() > len(per_char) or (offsets[:, 1] < offsets[:, 0]).any()
    ):
        raise ValueError(f"expected offsets within 0..{len(per_char)} with start <= end, got "
                         f"{offsets.tolist()[:3]}")  # fmt: skip
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
    for all) is rounded up to whole rows and capped by the text available. Documents are taken
    in an order shuffled with `seed` and cut into consecutive windows, the layout of
    `load_tokens`.
    """
    if not isinstance(texts, Mapping) or not texts:
        raise ValueError(f"texts must map languages to lists of documents, got {texts!r}"[:200])
    bad = [lang for lang in texts if lang not in LANGS]
    if bad:
        raise ValueError(f"expected languages in {LANGS}, got {bad}")
    for lang, docs in texts.items():
        check_strings(docs, f"texts[{lang!r}]")
        check_int(n_tokens[lang] if isinstance(n_tokens, Mapping) else n_tokens, "n_tokens")
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 2:
        raise ValueError(f"expected seq_len >= 2, got {seq_len!r}")
    rows, scripts, langs = [], [], []
    for lang, docs in texts.items():
        want = math.ceil(
            (n_tokens[lang] if isinstance(n_tokens, Mapping) else n_tokens) / (seq_len - 1)
        )
        # Documents in a seeded random order, tokenized only until there are enough rows.
        order = np.random.default_rng(seed).permutation(len(docs))
        ids, script, have = [], [], 0
        for start in range(0, len(order), 16):
            i, s = _labelled_stream(tokenizer, [docs[j] for j in order[start : start + 16]])
            ids.append(i)
            script.append(s)
            have += len(i)
            if have >= want * (seq_len - 1):
                break
        ids, script = np.concatenate(ids), np.concatenate(script)
        n = min(want, len(ids) // (seq_len - 1))
        if n == 0:
            raise ValueError(f"expected at least {seq_len - 1} tokens of {lang!r}, got {len(ids)}")
        body = torch.from_numpy(ids[: n * (seq_len - 1)]).reshape(n, -1)
        label = torch.from_numpy(script[: n * (seq_len - 1)]).reshape(n, -1)
        rows.append(torch.cat([torch.full((n, 1), tokenizer.bos_token_id), body], 1))
        scripts.append(torch.cat([torch.zeros(n, 1, dtype=torch.int64), label], 1))
        langs.append(torch.full_like(rows[-1], LANGS.index(lang)))
    return LabelledTokens(torch.cat(rows), torch.cat(scripts), torch.cat(langs))


def heldout_texts(model_name: str, max_docs: int | None = None) -> dict[str, list[str]]:
    """Held-out documents by language: the offline corpus' eval split for mini, the eval rows
    of NeelNanda/c4-code-20k (one mixed "web" stream) for gelu-1l."""
    if max_docs is not None:
        check_int(max_docs, "max_docs")
    if model_name == "mini":
        from tutorial_sae.data.corpus import LANGUAGES, load_texts

        return {lang: load_texts("eval", lang)[:max_docs] for lang in LANGUAGES}
    if model_name != "gelu-1l":
        raise ValueError(f"expected model_name 'mini' or 'gelu-1l', got {model_name!r}")
    import datasets

    from tutorial_sae.data.tokens import C4_CODE, c4_code_rows

    data = datasets.load_dataset(C4_CODE, split="train")
    rows = list(c4_code_rows("eval", len(data)))[:max_docs]
    return {"web": list(data.select(rows)["text"])}  # datasets 4 returns a Column, not a list


# The corpus language whose documents give P(t | concept) for the shipped mini model.
CONCEPT_LANGS = {"han": "zh", "arabic": "ar", "latin": "en", "code": "code"}
COUNTS_FILE = "specificity.json"


def vocab_fingerprint(tokenizer) -> str:
    """A short hash of the tokenizer's vocabulary and merges only. (The full definition also
    holds truncation and padding settings, which `model.to_tokens` changes as it runs.)"""
    import hashlib

    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    return hashlib.sha256(json.dumps(model, sort_keys=True).encode()).hexdigest()[:16]


def _read_asset() -> tuple[Path, dict]:
    from tutorial_sae.paths import assets_dir

    path = assets_dir() / COUNTS_FILE
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(
            f"expected chapter 5's asset at {path} (built by `python -m "
            f"tutorial_sae.build.specificity`), got: {err}"
        ) from err


def load_token_counts(tokenizer) -> TokenCounts:
    """The mini model's training-text token counts per concept, precomputed by
    `python -m tutorial_sae.build.specificity` (the corpus takes minutes to tokenize)."""
    if not hasattr(tokenizer, "backend_tokenizer"):
        raise ValueError(f"tokenizer must be a fast Hugging Face tokenizer (model.tokenizer), got "
                         f"{type(tokenizer).__name__}")  # fmt: skip
    path, data = _read_asset()
    if data["tokenizer"] != vocab_fingerprint(tokenizer):
        raise ValueError(
            f"expected the tokenizer the counts in {path} were made with ({data['tokenizer']}), "
            f"got {vocab_fingerprint(tokenizer)}; rebuild them or use counts_from_labels"
        )
    return TokenCounts(data["counts"], data["weights"])


def counts_from_labels(data: LabelledTokens, d_vocab: int) -> TokenCounts:
    """TokenCounts of each concept's tokens in `data` itself, weighted by their share: the
    proxy for text with no language labels (gelu-1l's mixed web text)."""
    check_int(d_vocab, "d_vocab")
    ids = data.tokens[:, 1:].flatten()
    group = (data.lang * len(SCRIPTS) + data.script)[:, 1:].flatten()
    streams = {c: ids[concept_groups(c)[group]].numpy() for c in CONCEPTS}
    streams = {c: s for c, s in streams.items() if len(s)}
    return count_tokens(streams, d_vocab, {c: len(s) / len(ids) for c, s in streams.items()})


def load_size_comparison() -> dict[str, dict]:
    """Per shipped mini SAE (x2, x4, run1): its d_sae and, per concept, the best feature, the
    matched neuron and the family, measured by the build script on the chapter's held-out set."""
    return _read_asset()[1]["sizes"]
