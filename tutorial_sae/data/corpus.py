"""The offline corpus, read side: documents by split and language, provenance (chapters 3-7, appendix).

English prose, Python code, Chinese and Arabic from pinned packages, built once by
`python -m tutorial_sae.build.corpus build` into the user cache, never the repository.
Each split and language is a JSON-lines file of {"text", "source"} documents: JSON keeps
any Unicode and newline intact, one line per document streams without loading the whole
file, and the source tag lets chapters slice by origin.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tutorial_sae.data.corpus_layout import (
    BUILD_COMMAND,
    CORPUS_VERSION,
    EVAL_FRACTION,
    LANGUAGES,
    SPLITS,
    built_stamp,
    corpus_dir,
    is_built,
    split_of,
)
from tutorial_sae.paths import cache_root

# Set to 1 to get an error instead of a first-use build (e.g. to test a missing corpus).
NO_AUTO_BUILD_ENV = "TUTORIAL_SAE_NO_AUTO_BUILD"


def _require_built() -> Path:
    """The corpus folder, built on first use (about 1-2 minutes, once per machine)."""
    if not is_built():
        if os.environ.get(NO_AUTO_BUILD_ENV, "").strip() not in ("", "0"):
            raise FileNotFoundError(
                f"the offline corpus is not built (looked in {corpus_dir()}); run `{BUILD_COMMAND}`"
            )
        from tutorial_sae.data.corpus_build import build_corpus

        print(f"building the offline corpus once, into {corpus_dir()} (about 1-2 minutes)")
        build_corpus()
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
