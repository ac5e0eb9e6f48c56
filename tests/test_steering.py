"""Script features, steering dose-response and continuations (tutorial_sae.analysis.steering),
and issue #10's steering target on the shipped mini/run1 SAE."""

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from tutorial_sae.analysis import interventions as iv
from tutorial_sae.analysis import steering as sg
from tutorial_sae.core.sae import SAE, SAEConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy():
    cfg = HookedTransformerConfig(
        n_layers=1, d_model=8, d_head=4, n_heads=2, d_mlp=16, d_vocab=40, n_ctx=12,
        act_fn="gelu", normalization_type="LN", device="cpu", seed=0,
    )  # fmt: skip
    model = HookedTransformer(cfg)
    sae = SAE(SAEConfig(d_in=16, d_sae=32, seed=2))
    tokens = torch.randint(0, 40, (4, 6), generator=torch.Generator().manual_seed(0))
    return model, sae, tokens


def test_dose_zero_with_add_is_the_clean_model_and_doses_move_the_mass(toy):
    model, sae, tokens = toy
    logits = iv.run_with_intervention(model, tokens)
    mask = torch.zeros(40, dtype=torch.bool)
    mask[logits[:, -1].argmin(-1)] = True
    clean_mass = float(logits[:, -1].softmax(-1)[:, mask].sum(-1).mean())
    curve = sg.dose_response(model, sae, tokens, 3, 2.0, [0.0, 5.0], mask, mode="add")
    assert curve.mass[0] == pytest.approx(clean_mass) and curve.clean_mass == pytest.approx(
        clean_mass
    )
    assert curve.delta_ce[0] == pytest.approx(0.0, abs=1e-6)
    assert curve.mass[1] != pytest.approx(clean_mass)
    with pytest.raises(ValueError, match="bool mask of shape"):
        sg.dose_response(model, sae, tokens, 3, 2.0, [1.0], mask[:5])
    with pytest.raises(ValueError, match="steering mode"):
        sg.steering_edit(3, 1.0, 2.0, mode="multiply")


def test_steering_edits_clamp_or_add_multiples_of_the_max_activation():
    f = torch.ones(2, 4)
    assert sg.steering_edit(1, 3.0, 2.0, "clamp")(f)[:, 1].eq(6.0).all()
    assert sg.steering_edit(1, 3.0, 2.0, "add")(f)[:, 1].eq(7.0).all()


def test_generation_without_an_edit_is_the_clean_greedy_text(toy):
    model, sae, tokens = toy
    out = sg.generate_with_sae(model, tokens[:2], sae, n_new=3)
    expected = tokens[:2]
    for _ in range(3):
        nxt = iv.run_with_intervention(model, expected)[:, -1].argmax(-1, keepdim=True)
        expected = torch.cat([expected, nxt], 1)
    assert torch.equal(out, expected)
    with pytest.raises(ValueError, match="n_ctx=12"):
        sg.generate_with_sae(model, tokens, sae, n_new=7)


@pytest.fixture(scope="module")
def mini():
    from tutorial_sae.models.loading import load_model, load_sae, load_tokens

    model = load_model("mini", device="cpu")
    sae = load_sae("mini/run1", device="cpu")
    langs = {
        lang: load_tokens("mini", "eval", 16 * 128, tokenizer=model.tokenizer, lang=lang)
        for lang in ("en", "code", "zh", "ar")
    }
    return model, sae, langs


def test_vocab_scripts_label_arabic_han_and_latin_tokens(mini):
    model, _, _ = mini
    labels = sg.vocab_scripts(model.tokenizer)
    ids = model.tokenizer("كتاب 中文 book", add_special_tokens=False)["input_ids"]
    got = {labels[i] for i in ids}
    assert {"arabic", "han", "latin"} <= got
    mask = sg.script_token_mask(model.tokenizer, "arabic")
    assert mask.shape == (len(model.tokenizer),) and 100 < int(mask.sum()) < 2000


def test_mini_arabic_feature_steers_english_prompts_to_arabic(mini):
    model, sae, langs = mini
    found = sg.find_script_feature(model, sae, langs, "ar")
    assert found.mean_by_lang["ar"] > 20 * max(
        v for k, v in found.mean_by_lang.items() if k != "ar"
    )
    prompts = langs["en"][:50, :32]
    assert len(prompts) >= 16
    mask = sg.script_token_mask(model.tokenizer, "arabic")
    curve = sg.dose_response(model, sae, prompts, found.feature, found.max_act, [0.0, 10.0], mask)
    assert curve.clean_mass < 0.05  # measured 0.003
    assert curve.mass[-1] >= 0.5  # issue: >= 0.5 at <= 10x; measured 0.99 (5x: 0.98)
