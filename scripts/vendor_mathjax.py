"""Fetch MathJax 3 with npm into .cache/mathjax so the built book renders maths offline.

    python scripts/vendor_mathjax.py

Uses `npm pack` (npm's own client; nothing is installed). The book's extension
book/_ext/offline_mathjax.py picks the copy up at the next build; without it the pages load
MathJax from its CDN as usual.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / ".cache" / "mathjax"
SPEC = "mathjax@3"


def main() -> int:
    npm = shutil.which("npm")
    if npm is None:
        print("npm not found: the book will load MathJax from its CDN")
        return 1
    DEST.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [npm, "pack", SPEC, "--pack-destination", str(DEST)],
        check=True,
        capture_output=True,
        text=True,
    )
    tarball = DEST / out.stdout.strip().splitlines()[-1]
    shutil.rmtree(DEST / "package", ignore_errors=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(DEST, filter="data")
    print(f"MathJax unpacked in {(DEST / 'package').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
