"""Precompute chapter 5's assets: `python -m tutorial_sae.build.specificity` (chapter 5).

Writes `assets/mini/specificity.json`: the mini model's training-text token counts per concept
(the LLR proxy's statistics; tokenizing the corpus takes longer than a chapter may) and, for
each shipped SAE, the best script feature, the matched neuron and the feature family, measured
on the chapter's held-out tokens (so the per-size comparison needs no live scan).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

import numpy as np
import torch

from tutorial_sae.analysis.scripts import (
    CONCEPT_LANGS,
    COUNTS_FILE,
    count_tokens,
    heldout_texts,
    label_tokens,
    vocab_fingerprint,
)
from tutorial_sae.analysis.specificity import scan_scripts, summarize
from tutorial_sae.data.corpus import built_stamp, load_texts
from tutorial_sae.data.tokens import stream_of
from tutorial_sae.models.loading import load_model, load_sae
from tutorial_sae.paths import assets_dir, atomic_write_json

BUILD_COMMAND = "python -m tutorial_sae.build.specificity"
# The chapter's held-out set: up to this many tokens per language (Arabic has fewer: all of it).
HELDOUT_TOKENS = 50_000
SAES = ("mini/x2", "mini/x4", "mini/run1")


def _summary_json(summaries) -> dict:
    return {
        s.concept: {
            "feature": asdict(s.feature),
            "neuron": asdict(s.neuron),
            "family_size": len(s.family.features),
            "family_coverage": s.family.coverage,
        }
        for s in summaries
    }


def build(seed: int = 0) -> dict:
    """Compute and write the asset; returns what it wrote."""
    start = time.perf_counter()
    model = load_model("mini", device="cpu")
    tokenizer = model.tokenizer
    mixture = json.loads((assets_dir() / "config.json").read_text())["train"]["mixture"]
    weights = {lang: share for lang, share in mixture}
    streams = {
        c: stream_of(tokenizer, load_texts("train", lang)) for c, lang in CONCEPT_LANGS.items()
    }
    counts = count_tokens(
        {c: np.asarray(s) for c, s in streams.items()},
        model.cfg.d_vocab,
        {c: weights[lang] for c, lang in CONCEPT_LANGS.items()},
    )
    data = label_tokens(tokenizer, heldout_texts("mini"), HELDOUT_TOKENS, seed=seed)
    sizes = {}
    for name in SAES:
        sae = load_sae(name, device="cpu")
        scan = scan_scripts(model, sae, data)
        sizes[name] = {"d_sae": sae.cfg.d_sae, "concepts": _summary_json(summarize(scan))}
        print(f"{name}: {sizes[name]['concepts']}")
    out = {
        "build": BUILD_COMMAND,
        "tokenizer": vocab_fingerprint(tokenizer),
        "corpus": built_stamp(),
        "heldout": {"tokens_per_language": HELDOUT_TOKENS, "seed": seed, "n_tokens": data.n_tokens},
        "counts": counts.counts,
        "weights": counts.weights,
        "sizes": sizes,
    }
    atomic_write_json(assets_dir() / COUNTS_FILE, out, mode=0o644)
    print(f"wrote {assets_dir() / COUNTS_FILE} in {time.perf_counter() - start:.0f} s")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    build()


if __name__ == "__main__":
    main()
