"""Where things live (shipped assets, the user cache) and the one atomic file writer (all chapters)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

CACHE_ENV = "TUTORIAL_SAE_CACHE"
# The last file a corpus build writes; its presence means the build finished.
CORPUS_COMPLETE_MARKER = "COMPLETE"


def package_dir() -> Path:
    """The installed `tutorial_sae` package folder."""
    return Path(__file__).parent


def assets_dir() -> Path:
    """The shipped mini model's folder: tokenizer, weights, config and precomputed results."""
    return package_dir() / "assets" / "mini"


def mini_sae_dir() -> Path:
    """The folder of the shipped mini SAEs, one sub-folder per name (run1, x4, x2)."""
    return assets_dir() / "saes"


def cache_root() -> Path:
    """`$TUTORIAL_SAE_CACHE` if set, else the platform's user cache folder for tutorial_sae."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    import platformdirs

    return Path(platformdirs.user_cache_dir("tutorial_sae"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int | None = None) -> Path:
    """Write `data` to `path` so that a crash leaves either the old file or the new one.

    `mode` (e.g. 0o644 for shipped assets) is set before the rename: temporary files are
    created owner-only.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj, mode: int | None = None) -> Path:
    """`obj` as indented UTF-8 JSON with a final newline, written atomically."""
    text = json.dumps(obj, indent=1, ensure_ascii=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"), mode)
