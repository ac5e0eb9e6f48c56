"""Chapter 6's inputs (tutorial_sae.analysis.ablation_inputs) and ScriptFeature.summary: each
equals the chapter's former inline code on the shipped mini model."""

import pytest
import torch

from tutorial_sae.analysis import ablation_inputs as ai
from tutorial_sae.analysis.prompts import OWN_PROMPTS, PAPER_PROMPTS
from tutorial_sae.analysis.steering import ScriptFeature
from tutorial_sae.models.loading import load_model, load_sae, load_tokens
from tutorial_sae.training.presets import PRESETS

pytestmark = pytest.mark.usefixtures("one_thread")
SIZES = dict(n_seq=8, n_features=24, n_clamp_seq=4, n_prompts=8, n_new=4)


@pytest.fixture(scope="module")
def setup():
    return ai.load_ablation_setup("mini", True, **SIZES)


def test_setup_equals_the_inline_loading_on_mini(setup):
    model = load_model("mini")
    sae = load_sae("mini/run1", device=model.cfg.device)
    tokens = load_tokens("mini", "eval", 8 * 128, tokenizer=model.tokenizer)
    assert setup.model_name == "mini"
    assert torch.equal(setup.tokens, tokens) and setup.tokens.shape == (8, 128)
    assert torch.equal(setup.sae.W_dec, sae.W_dec)
    # mini's FAST share is 1: the sizes pass through unchanged
    assert (setup.n_features, setup.n_clamp_seq, setup.n_prompts, setup.n_new) == (24, 4, 8, 4)
    assert str(setup) == (
        f"mini: d_mlp {model.cfg.d_mlp}, SAE {sae.cfg.d_sae:,} features, tokens (8, 128)"
    )


def test_fast_sizes_shrink_to_the_presets_share(monkeypatch):
    # gelu-1l's share (1/8) on the mini model's loaders: counts fall to 2, n_features to 12
    monkeypatch.setattr(ai, "preset_for", lambda model: PRESETS["gelu-1l"])
    shrunk = ai.load_ablation_setup("mini", True, **SIZES)
    assert shrunk.tokens.shape == (2, 128) and shrunk.model_name == "gelu-1l"
    assert (shrunk.n_features, shrunk.n_clamp_seq, shrunk.n_prompts, shrunk.n_new) == (12, 2, 2, 2)
    full = ai.load_ablation_setup("mini", False, **SIZES)
    assert (full.n_features, full.n_clamp_seq, full.n_prompts, full.n_new) == (24, 4, 8, 4)


def test_setup_rejects_bad_sizes_and_flags():
    with pytest.raises(TypeError, match="fast to be a bool"):
        ai.load_ablation_setup("mini", "yes", **SIZES)
    with pytest.raises(ValueError, match="n_prompts must be an int >= 1"):
        ai.load_ablation_setup("mini", True, **{**SIZES, "n_prompts": 0})


def test_language_tokens_are_each_languages_stream_on_mini(setup):
    langs = ai.language_tokens(setup.model, "mini", ("en", "ar"), n_seq=2)
    assert list(langs) == ["en", "ar"]
    for lang, rows in langs.items():
        expected = load_tokens("mini", "eval", 2 * 128, tokenizer=setup.model.tokenizer, lang=lang)
        assert torch.equal(rows, expected) and rows.shape == (2, 128)
    with pytest.raises(ValueError, match="sequence of languages"):
        ai.language_tokens(setup.model, "mini", "ar")
    with pytest.raises(ValueError, match="sequence of languages"):
        ai.language_tokens(setup.model, "mini", ("en", "fr"))


def test_language_tokens_are_chapter_5s_prompts_on_one_stream(setup, monkeypatch):
    monkeypatch.setattr(ai, "preset_for", lambda model: PRESETS["gelu-1l"])
    langs = ai.language_tokens(setup.model, "mini", ("code", "zh"))
    assert torch.equal(langs["code"], setup.model.to_tokens("\n".join(OWN_PROMPTS["code"])))
    zh = "\n".join(PAPER_PROMPTS["zh"] + OWN_PROMPTS["zh"])
    assert torch.equal(langs["zh"], setup.model.to_tokens(zh)) and langs["zh"].shape[0] == 1


def test_script_feature_summary_holds_the_glued_numbers():
    found = ScriptFeature(7, "ar", {"en": 0.01, "zh": 0.03, "ar": 0.5}, 4.25, 0.47)
    assert found.summary() == {
        "feature": 7, "max_act": 4.25, "mean_ar": 0.5, "mean_other": 0.03,
    }  # fmt: skip
