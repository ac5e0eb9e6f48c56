"""Feature statistics, token pieces, cards and logit effects (tutorial_sae.analysis.features)."""

import pytest
import torch

from tutorial_sae.analysis.features import (
    LabelledTokens,
    direct_logit_effect,
    feature_card,
    feature_stats,
    row_label,
    token_pieces,
    token_text,
)
from tutorial_sae.core.sae import SAE, SAEConfig
from tutorial_sae.plots.features import feature_card_html

pytestmark = pytest.mark.usefixtures("one_thread")


def toy(n_seq=6, pos=9, d_in=8, d_sae=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 50, (n_seq, pos), generator=gen)
    data = LabelledTokens(tokens, torch.arange(n_seq) % 2, ("a", "b"))
    acts = torch.randn(n_seq, pos, d_in, generator=gen)
    return SAE(SAEConfig(d_in=d_in, d_sae=d_sae, seed=seed)), acts, data


def test_feature_stats_match_a_dense_computation():
    sae, acts, data = toy()
    stats = feature_stats(sae, acts, data, k=4, chunk=7)  # chunks that cut across rows
    f = sae.encode(acts[:, 1:].reshape(-1, 8)).detach()
    assert stats.n_tokens == len(f)
    assert torch.equal(stats.fire_count, (f > 0).sum(0))
    assert torch.allclose(stats.act_sum, f.sum(0), atol=1e-5)
    assert torch.allclose(stats.top_values, f.topk(4, dim=0).values.T, atol=1e-6)
    labels = data.token_labels()[:, 1:].reshape(-1)
    assert torch.allclose(stats.label_mass[:, 1], f[labels == 1].sum(0), atol=1e-5)
    assert torch.equal(stats.hist_counts.sum(-1), stats.fire_count)
    # every top index points at a non-BOS token whose activation is the stored value
    seq, pos = stats.top_index[3, 0] // 9, stats.top_index[3, 0] % 9
    assert pos >= 1
    assert torch.isclose(sae.encode(acts[seq, pos])[3], stats.top_values[3, 0])


def test_feature_stats_rejects_mismatched_activations():
    sae, acts, data = toy()
    with pytest.raises(ValueError, match="expected activations of shape"):
        feature_stats(sae, acts[:, :5], data)


def test_token_pieces_give_a_split_character_to_its_last_byte(tokenizer):
    text = "中文 والعربية and code()"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces = token_pieces(tokenizer, ids)
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    partial = [i for i, p in zip(ids, pieces, strict=True) if p == ""]
    if partial:
        assert token_text(tokenizer, partial[0]).startswith("<")


def test_row_label_reads_the_script():
    assert row_label("我们今天去北京") == "zh"
    assert row_label("هذا السجل طويل جدا") == "ar"
    assert row_label("def f(x):\n    return {x: [x]}") == "code"
    assert row_label("And he said unto them") == "en"


def test_direct_logit_effect_is_linear_in_the_scale_and_matches_the_path():
    from tutorial_sae.models.mini import MiniModelConfig, build_model

    model = build_model(MiniModelConfig(d_vocab=64, d_model=16, n_heads=2, n_ctx=8), None)
    sae = SAE(SAEConfig(d_in=64, d_sae=32))
    effect = direct_logit_effect(model, sae, [3, 5], ln_scale=2.0)
    resid = sae.W_dec[[3, 5]] @ model.blocks[0].mlp.W_out
    resid = (resid - resid.mean(-1, keepdim=True)) * model.ln_final.w
    assert torch.allclose(effect, resid / 2.0 @ model.W_U, atol=1e-5)
    assert torch.allclose(direct_logit_effect(model, sae, [3, 5], 4.0), effect / 2, atol=1e-6)
    with pytest.raises(ValueError, match="positive ln_scale"):
        direct_logit_effect(model, sae, [3], 0.0)


def test_feature_card_html_is_rtl_safe_and_escaped(tokenizer):
    text = "<b>not bold</b> هذا السجل طويل جدا"
    ids = torch.tensor(
        [[tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]]
    )
    data = LabelledTokens(ids, torch.tensor([0]), ("ar",))
    sae, _, _ = toy(d_in=8)
    acts = torch.randn(1, ids.shape[1], 8, generator=torch.Generator().manual_seed(1))
    stats = feature_stats(sae, acts, data, k=3)
    feature = int(stats.fire_count.argmax())
    card = feature_card(sae, stats, acts, data, tokenizer, feature, n_contexts=2)
    assert len(card.contexts) == 2 and card.logits is None
    page = feature_card_html(card).html
    assert 'dir="auto"' in page
    assert "<b>not" not in page and "&lt;" in page
    with pytest.raises(ValueError, match="feature index"):
        feature_card(sae, stats, acts, data, tokenizer, 999)
