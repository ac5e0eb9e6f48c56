"""The offline corpus, read side: documents by split and language, provenance (chapters 3-7, appendix).

English prose, Python code, Chinese and Arabic from pinned packages, built once by
`python -m tutorial_sae.build.corpus build` into the user cache, never the repository.
Each split and language is a JSON-lines file of {"text", "source"} documents: JSON keeps
any Unicode and newline intact, one line per document streams without loading the whole
file, and the source tag lets chapters slice by origin.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tutorial_sae.paths import CORPUS_COMPLETE_MARKER, cache_root

CORPUS_VERSION = 1
LANGUAGES = ("en", "code", "zh", "ar")
SPLITS = ("train", "eval")
EVAL_FRACTION = 0.05
BUILD_COMMAND = "python -m tutorial_sae.build.corpus build"


def corpus_dir() -> Path:
    """Folder of the built corpus; the version in its name changes whenever its content does."""
    return cache_root() / f"corpus-v{CORPUS_VERSION}"


def is_built() -> bool:
    """True when a build finished: the marker is the last thing a build writes."""
    return (corpus_dir() / CORPUS_COMPLETE_MARKER).is_file()


def split_of(source: str, doc_id: str) -> str:
    """Return "eval" for about EVAL_FRACTION of documents, else "train"; fixed by the ids alone.

    Hashing the id (not shuffling) keeps a document on the same side across rebuilds,
    machines and added sources, so eval text never leaks into training.
    """
    digest = hashlib.sha256(f"{source}\0{doc_id}".encode()).digest()
    return "eval" if int.from_bytes(digest[:8], "big") < EVAL_FRACTION * 2**64 else "train"


def built_stamp() -> str:
    """The finished build's timestamp (the marker's content); "" when no build finished."""
    marker = corpus_dir() / CORPUS_COMPLETE_MARKER
    return marker.read_text().strip() if marker.is_file() else ""


def _require_built() -> Path:
    if not is_built():
        raise FileNotFoundError(
            f"the offline corpus is not built (looked in {corpus_dir()}); run `{BUILD_COMMAND}`"
        )
    return corpus_dir()


def load_texts(split: str, lang: str | None = None) -> list[str]:
    """The documents of `split` ("train" or "eval") in `lang`, or in all LANGUAGES if None."""
    if split not in SPLITS:
        raise ValueError(f"expected split in {SPLITS}, got {split!r}")
    if lang is not None and lang not in LANGUAGES:
        raise ValueError(f"expected lang in {LANGUAGES} or None, got {lang!r}")
    folder = _require_built() / split
    texts = []
    for name in LANGUAGES if lang is None else (lang,):
        with open(folder / f"{name}.jsonl", encoding="utf-8") as handle:
            texts.extend(json.loads(line)["text"] for line in handle)
    return texts


def provenance() -> list[dict]:
    """One row per source: source, package, version, language, mb, licence, documents."""
    return json.loads((_require_built() / "provenance.json").read_text())["sources"]


__all__ = [
    "BUILD_COMMAND",
    "CORPUS_VERSION",
    "EVAL_FRACTION",
    "LANGUAGES",
    "SPLITS",
    "built_stamp",
    "cache_root",
    "corpus_dir",
    "is_built",
    "load_texts",
    "provenance",
    "split_of",
]
