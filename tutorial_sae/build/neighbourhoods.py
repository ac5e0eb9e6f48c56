"""Precompute chapter 4's UMAP projections of mini/run1's decoder directions (assets only).

UMAP compiles with numba on first use (over a minute on a 2-core CPU), beyond the chapter's time
budget, so its 2D and 3D coordinates ship in `assets/mini/neighbourhoods.json` (about 110 kB),
tagged with a fingerprint of the SAE's W_dec: the chapter uses them only for that SAE.

    python -m tutorial_sae.build.neighbourhoods
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from tutorial_sae.analysis.neighbourhoods import (
    decoder_directions,
    project,
    sae_fingerprint,
    trustworthiness,
)
from tutorial_sae.models.loading import load_sae
from tutorial_sae.paths import assets_dir, atomic_write_bytes

SAE_NAME = "mini/run1"
SEED = 0


def build(sae_name: str = SAE_NAME, seed: int = SEED) -> dict:
    """UMAP (cosine, seed `seed`) in 2D and 3D, rounded to 3 decimals, with 2D trustworthiness."""
    torch.set_num_threads(1)
    sae = load_sae(sae_name, device="cpu")
    directions = decoder_directions(sae)
    start = time.perf_counter()
    two = project(directions, "umap", 2, seed).coords
    three = project(directions, "umap", 3, seed).coords
    return {
        "sae": sae_name,
        "fingerprint": sae_fingerprint(sae),
        "method": f"umap-learn, metric cosine, n_neighbors 15, random_state {seed}",
        "trustworthiness_2d_k10": round(trustworthiness(directions, two, 10), 4),
        "seconds": round(time.perf_counter() - start, 1),
        "build": "python -m tutorial_sae.build.neighbourhoods",
        "umap_2d": [[round(v, 3) for v in row] for row in two.tolist()],
        "umap_3d": [[round(v, 3) for v in row] for row in three.tolist()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sae", default=SAE_NAME)
    args = parser.parse_args(argv)
    result = build(args.sae)
    # Compact: 20,480 coordinates, one per line, would triple the file.
    text = json.dumps(result, separators=(",", ":"), ensure_ascii=False) + "\n"
    path = atomic_write_bytes(assets_dir() / "neighbourhoods.json", text.encode(), mode=0o644)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB) in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
