"""Check that SAELens 6 reads our exported SAEs and computes what we compute.

    pip install -e '.[bench]'   # SAELens, in its own environment
    python benchmarks/check_saelens_interop.py

Exports mini/run1, loads it with `sae_lens.SAE.load_from_disk`, and compares features and
reconstructions on real activations; then saves SAELens's SAE and imports it back.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch


def main() -> int:
    try:
        from sae_lens import SAE as LensSAE
    except ImportError:
        print("sae_lens is not installed here: pip install -e '.[bench]' first")
        return 2
    import tutorial_sae as ts
    from tutorial_sae.models.saelens import export_saelens, import_saelens

    model = ts.load_model("mini")
    ours = ts.load_sae("mini/run1")
    tokens = ts.load_tokens("mini", "eval", 4096, tokenizer=model.tokenizer)
    acts = ts.collect_activations(model, tokens, progress=False).reshape(-1, ours.cfg.d_in)
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_saelens(ours, Path(tmp) / "run1", "mini", context_size=128)
        lens = LensSAE.load_from_disk(str(folder))
        with torch.no_grad():
            f_ours, f_lens = ours.encode(acts), lens.encode(acts)
            x_ours, x_lens = ours.decode(f_ours), lens.decode(f_lens)
        print(f"features: max |ours - SAELens| = {(f_ours - f_lens).abs().max():.3g}")
        print(f"reconstructions: max |ours - SAELens| = {(x_ours - x_lens).abs().max():.3g}")
        lens.save_model(Path(tmp) / "back")
        back = import_saelens(Path(tmp) / "back").sae
        same = all(torch.equal(getattr(back, k), getattr(ours, k)) for k in ("W_enc", "W_dec"))
        print(f"SAELens-saved folder imported back with identical weights: {same}")
        return 0 if same and torch.equal(f_ours, f_lens) else 1


if __name__ == "__main__":
    sys.exit(main())
