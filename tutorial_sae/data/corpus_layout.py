"""Where the offline corpus lives and how it is laid out: version, languages, splits (data layer).

Shared by the reader (`data.corpus`) and the builder (`data.corpus_build`).
"""

from __future__ import annotations

import hashlib
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
