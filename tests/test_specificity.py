"""Chapter 5: script labels from offsets, the LLR proxy, specificity and sensitivity, neurons at
matched sensitivity, feature families, and the chapter's targets on mini's held-out text."""

import json
import warnings

import matplotlib
import pytest
import torch

from tutorial_sae.analysis import prompts, scripts, token_counts
from tutorial_sae.analysis import specificity as spec
from tutorial_sae.analysis.polysemantic import polysemantic_neurons
from tutorial_sae.plots import fonts
from tutorial_sae.plots.specificity import prompt_table_html

matplotlib.use("Agg")


def test_a_byte_piece_of_a_han_character_is_labelled_han():
    text = "句 abc هذه 12."
    # As the mini tokenizer cuts it: two byte pieces of 句 share the character's span.
    offsets = [(0, 1), (0, 1), (1, 5), (5, 9), (9, 12), (12, 13)]
    assert scripts.token_scripts(text, offsets) == ["han", "han", "latin", "arabic", "none", "none"]


def test_labels_ignore_punctuation_but_count_cjk_punctuation_as_han():
    assert scripts.token_scripts("a.,!。", [(0, 4), (1, 3), (4, 5)]) == ["latin", "none", "han"]


def test_offsets_outside_the_text_are_rejected():
    with pytest.raises(ValueError, match="expected offsets within"):
        scripts.token_scripts("abc", [(0, 7)])


def test_label_tokens_puts_bos_first_and_labels_every_token():
    from tutorial_sae.models.mini import make_tokenizer
    from tutorial_sae.paths import assets_dir

    tok = make_tokenizer(assets_dir() / "tokenizer.json")
    data = scripts.label_tokens(tok, {"zh": ["这是中文句子。" * 30], "en": ["a cat " * 80]}, 60, 16)
    assert (data.tokens[:, 0] == tok.bos_token_id).all() and (data.script[:, 0] == 0).all()
    han = scripts.SCRIPTS.index("han")
    zh_rows = data.lang[:, 0] == scripts.LANGS.index("zh")
    assert (data.script[zh_rows, 1:] == han).float().mean() > 0.8
    assert data.n_tokens == data.tokens[:, 1:].numel()
    with pytest.raises(ValueError, match="expected languages"):
        scripts.label_tokens(tok, {"fr": ["bonjour"]}, 10)


def test_llr_proxy_is_finite_and_positive_for_the_concepts_own_tokens():
    counts = token_counts.count_tokens(
        {"han": [0, 0, 0, 1], "latin": [2, 2, 3, 3]}, 5, {"han": 0.5, "latin": 0.5}
    )
    llr = token_counts.llr_proxy(counts, "han")
    assert torch.isfinite(llr).all()
    assert llr[0] > 0 > llr[2]
    assert llr.max() <= torch.log(torch.tensor(2.0)) + 1e-6  # capped by 1 / the concept's weight
    with pytest.raises(ValueError, match="alpha"):
        token_counts.llr_proxy(counts, "han", alpha=0)
    with pytest.raises(ValueError, match="token ids"):
        token_counts.count_tokens({"han": [7]}, 5, {"han": 1.0})


def test_log_ratio_of_counts_rejects_mismatched_vectors():
    with pytest.raises(ValueError, match="count vectors"):
        token_counts.log_ratio_of_counts(torch.ones(3), torch.ones(4))


def test_specificity_weighs_by_activation_and_sensitivity_counts_the_concept():
    acts = torch.tensor([3.0, 1.0, 0.0, 0.0, 1.0])
    concept = torch.tensor([True, True, True, True, False])
    got = spec.specificity_sensitivity(acts, concept)
    assert got.specificity == pytest.approx(0.8)
    assert got.precision == pytest.approx(2 / 3)
    assert got.sensitivity == pytest.approx(0.5)
    with pytest.raises(ValueError, match="bool concept mask"):
        spec.specificity_sensitivity(acts, concept.float())


def test_cjk_and_arabic_render_without_missing_glyphs():
    import matplotlib.pyplot as plt

    try:
        fonts.fetch_cjk_font()
    except RuntimeError as err:
        pytest.skip(f"no CJK font available here: {err}")
    families = fonts.use_book_fonts()
    assert len(families) == 2
    fig, ax = plt.subplots()
    ax.set_title(fonts.shape_text("中文有很多词汇。 هذه جملة باللغة العربية."))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)"
        fig.canvas.draw()
    plt.close(fig)


def test_shape_text_leaves_latin_alone():
    assert fonts.shape_text("plain text") == "plain text"


def test_the_prompt_table_marks_languages_and_direction():
    row = prompts.PromptRow("ar", "هذه جملة", 3, 1.0, 0.5, 0.25)
    out = prompt_table_html([row], {3: "feature 3"})
    assert 'lang="ar"' in out and 'dir="auto"' in out and "هذه جملة" in out


@pytest.fixture(scope="module")
def mini(one_thread):
    from tutorial_sae.build.specificity import HELDOUT_TOKENS
    from tutorial_sae.models.loading import load_model, load_sae

    model = load_model("mini", device="cpu")
    sae = load_sae("mini/run1", device="cpu")
    data = scripts.label_tokens(model.tokenizer, scripts.heldout_texts("mini"), HELDOUT_TOKENS)
    return model, sae, data, spec.scan_scripts(model, sae, data)


@pytest.mark.corpus
def test_held_out_set_has_enough_tokens_of_each_language(mini):
    _, _, data, scan = mini
    per_lang = torch.bincount(data.lang[:, 1:].flatten(), minlength=len(scripts.LANGS))
    for lang in ("en", "code", "zh"):
        assert per_lang[scripts.LANGS.index(lang)] >= 50_000
    assert scan.concept_mask("arabic").sum() >= 20_000


@pytest.mark.corpus
def test_scan_scores_equal_the_definition_on_dense_activations(mini):
    _, _, _, scan = mini
    for concept in ("han", "arabic"):
        best = spec.best_feature(scan, concept)
        direct = spec.specificity_sensitivity(
            scan.feature_values(best.index), scan.concept_mask(concept)
        )
        assert best.specificity == pytest.approx(direct.specificity, abs=1e-5)
        assert best.sensitivity == pytest.approx(direct.sensitivity, abs=1e-6)


@pytest.mark.corpus
def test_targets_script_features_are_specific(mini):
    _, _, _, scan = mini
    assert spec.best_feature(scan, "han").specificity >= 0.9
    assert spec.best_feature(scan, "arabic").specificity >= 0.85


@pytest.mark.corpus
def test_targets_feature_families_cover_the_scripts(mini):
    _, _, _, scan = mini
    assert spec.feature_family(scan, "han").coverage >= 0.9
    assert spec.feature_family(scan, "arabic").coverage >= 0.5


@pytest.mark.corpus
def test_matched_neuron_fires_on_at_least_the_features_share(mini):
    _, _, _, scan = mini
    for concept in ("han", "arabic"):
        feature = spec.best_feature(scan, concept)
        neuron = spec.best_neuron(scan, concept, feature.sensitivity)
        assert neuron.sensitivity >= feature.sensitivity
        assert neuron.threshold > 0


@pytest.mark.corpus
def test_targets_a_neuron_mixes_two_scripts_that_features_separate(mini):
    _, _, _, scan = mini
    found = polysemantic_neurons(scan)
    pair = [p for p in found if set(p.concepts) == {"han", "arabic"}]
    assert pair, found
    poly = pair[0]
    assert min(poly.share) >= 0.2 and poly.precision >= 0.8
    assert all(f.specificity >= 0.8 for f in poly.features)
    assert max(poly.leak) < 0.1


@pytest.mark.corpus
def test_targets_han_feature_dominates_the_prompt_table(mini):
    model, sae, _, scan = mini
    han = spec.best_feature(scan, "han").index
    rows = prompts.prompt_table(model, sae, prompts.PAPER_PROMPTS, [han])
    rows += prompts.prompt_table(model, sae, prompts.OWN_PROMPTS, [han])
    means = prompts.mean_by_language(rows, han)
    assert means["zh"] >= 5 * max(means["en"], means["ar"])


@pytest.mark.corpus
def test_the_shipped_asset_matches_a_live_scan(mini):
    model, _, _, scan = mini
    from tutorial_sae.paths import assets_dir

    asset = json.loads((assets_dir() / scripts.COUNTS_FILE).read_text())
    assert asset["tokenizer"] == scripts.vocab_fingerprint(model.tokenizer)
    sizes = scripts.load_size_comparison()
    assert sorted(s["d_sae"] for s in sizes.values()) == [1024, 2048, 4096]
    for concept in ("han", "arabic"):
        live = spec.best_feature(scan, concept)
        stored = sizes["mini/run1"]["concepts"][concept]["feature"]
        assert stored["index"] == live.index
        assert stored["specificity"] == pytest.approx(live.specificity, abs=1e-6)
    assert scripts.load_token_counts(model.tokenizer).weights["han"] == pytest.approx(0.25)
