"""Fonts for Chinese and Arabic text in matplotlib figures (chapters 4-5).

matplotlib's bundled DejaVu Sans has Arabic letters but no Han characters, so CJK text needs a
font: a system font when one is installed, else WenQuanYi Micro Hei (Debian's
`fonts-wqy-microhei`, 1.6 MB, Apache-2.0 or GPLv3 with the font exception), which
`python -m tutorial_sae.plots.fonts fetch` downloads with `apt-get download` and unpacks into
the user cache (no root, nothing installed system-wide). Arabic must also be shaped (letters
joined) and laid out right to left: matplotlib 3.11 does both itself (measured: text passed
through arabic-reshaper and python-bidi first comes out garbled there); older versions do
neither, so `shape_text` applies those two packages only for them.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from tutorial_sae.paths import cache_root

CJK_PACKAGE = "fonts-wqy-microhei"
CJK_FILE = "wqy-microhei.ttc"
FETCH_COMMAND = "python -m tutorial_sae.plots.fonts fetch"
_PROBE = "中文"
_ARABIC = re.compile(r"[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF]")


def fonts_dir() -> Path:
    """Where fetched fonts are unpacked: <user cache>/fonts."""
    return cache_root() / "fonts"


def fetch_cjk_font(timeout: float = 120.0) -> Path:
    """Download and unpack the CJK font into fonts_dir() once; return the font file's path."""
    target = fonts_dir() / CJK_FILE
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(
                ["apt-get", "download", CJK_PACKAGE],
                cwd=tmp,
                check=True,
                capture_output=True,
                timeout=timeout,
            )
            deb = next(Path(tmp).glob(f"{CJK_PACKAGE}_*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), f"{tmp}/x"], check=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError, StopIteration) as err:
            raise RuntimeError(
                f"could not fetch {CJK_PACKAGE} with apt-get download ({err}); Chinese text in "
                "figures will show as boxes"
            ) from err
        found = next(Path(tmp, "x").rglob(CJK_FILE), None)
        if found is None:
            raise RuntimeError(f"expected {CJK_FILE} in {deb.name}, found none")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_target = target.with_suffix(".tmp")
        tmp_target.write_bytes(found.read_bytes())
        tmp_target.replace(target)
    return target


def _cjk_family() -> str | None:
    from matplotlib import font_manager

    for entry in font_manager.fontManager.ttflist:
        if any(key in entry.name for key in ("CJK", "Micro Hei", "Zen Hei", "Heiti", "Source Han")):
            return entry.name
    return None


def use_book_fonts(fetch: bool = True) -> list[str]:
    """Make matplotlib draw Chinese and Arabic: DejaVu Sans first, a CJK font as fallback.

    Registers the cached CJK font (fetching it first when `fetch` and none is available) and
    returns the font family list it set. Prints one line when no CJK font could be had.
    """
    import matplotlib as mpl
    from matplotlib import font_manager

    cached = fonts_dir() / CJK_FILE
    if cached.is_file():
        font_manager.fontManager.addfont(str(cached))
    family = _cjk_family()
    if family is None and fetch:
        try:
            font_manager.fontManager.addfont(str(fetch_cjk_font()))
            family = _cjk_family()
        except RuntimeError as err:
            print(err)
    # An explicit list: matplotlib falls back glyph by glyph along font.family, not along the
    # generic "sans-serif" list (measured: with the generic name, Han characters were boxes).
    families = ["DejaVu Sans"] + ([family] if family else [])
    mpl.rcParams["font.family"] = families
    return families


def matplotlib_shapes_text() -> bool:
    """True when this matplotlib joins and orders Arabic itself (3.11 and later)."""
    import matplotlib

    major, minor = (int(x) for x in matplotlib.__version__.split(".")[:2])
    return (major, minor) >= (3, 11)


def shape_text(text: str) -> str:
    """`text` ready for a matplotlib label: Arabic shaped and reordered where matplotlib won't."""
    if not _ARABIC.search(text) or matplotlib_shapes_text():
        return text
    import arabic_reshaper
    from bidi import get_display

    return get_display(arabic_reshaper.reshape(text))


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="fetch the CJK font for the book's figures")
    parser.add_argument("command", choices=["fetch"])
    parser.parse_args(argv)
    print(f"CJK font: {fetch_cjk_font()}")


if __name__ == "__main__":
    main()
