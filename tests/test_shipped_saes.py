"""The shipped mini SAEs load by name and meet issue #3's targets on held-out text."""

import pytest

from tutorial_sae import evaluate_sae, load_model, load_sae, load_tokens, sae_names


def test_every_mini_sae_is_listed_and_loads():
    names = [n for n in sae_names() if n.startswith("mini/")]
    assert {"mini/run1", "mini/x2", "mini/x4"} <= set(names)
    sizes = {n: load_sae(n).cfg.d_sae for n in ("mini/x2", "mini/x4", "mini/run1")}
    assert sizes == {"mini/x2": 1024, "mini/x4": 2048, "mini/run1": 4096}


@pytest.mark.corpus
def test_run1_meets_its_targets_on_held_out_text():
    model = load_model("mini")
    sae = load_sae("mini/run1")
    tokens = load_tokens("mini", "eval", 8192, tokenizer=model.tokenizer)
    m = evaluate_sae(model, sae, tokens, progress=False)
    assert m.ce_loss_recovered >= 0.85
    assert 5 <= m.l0 <= 60
    assert m.ce_loss_clean < m.ce_loss_reconstructed < m.ce_loss_zero_ablated
    assert m.explained_variance > 0.7
