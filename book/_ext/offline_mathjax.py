"""Sphinx extension of the book: serve MathJax from the built site when a vendored copy exists.

Jupyter Book 1 loads MathJax from a CDN, so an offline copy of the book shows raw TeX. After
`python scripts/vendor_mathjax.py` (which runs `npm pack mathjax@3` into .cache/mathjax), the
build copies MathJax's single-file component and its fonts into _static/mathjax and points the
pages there. Without the vendored copy, nothing changes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config

VENDOR_DIR = Path(".cache") / "mathjax" / "package"
ENTRY = Path("es5") / "tex-mml-chtml.js"
FONTS = Path("es5") / "output" / "chtml" / "fonts" / "woff-v2"


def _vendored(app: Sphinx) -> Path | None:
    root = Path(app.srcdir) / VENDOR_DIR
    return (
        root
        if (root / ENTRY).is_file() and (root / FONTS).is_dir()
        else None
    )


def _use_local_copy(app: Sphinx, config: Config) -> None:
    if _vendored(app) is not None:
        # A relative mathjax_path is resolved against the site's _static folder.
        config.mathjax_path = f"mathjax/{ENTRY.as_posix()}"


def _copy_files(app: Sphinx, exception: Exception | None) -> None:
    root = _vendored(app)
    if (
        exception is not None
        or root is None
        or app.builder.format != "html"
    ):
        return
    dest = Path(app.outdir) / "_static" / "mathjax"
    (dest / ENTRY).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / ENTRY, dest / ENTRY)
    shutil.copytree(root / FONTS, dest / FONTS, dirs_exist_ok=True)


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("config-inited", _use_local_copy)
    app.connect("build-finished", _copy_files)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
