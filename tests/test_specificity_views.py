"""Chapter 5's report helpers equal the chapter's former inline code, on a small scan of the
mini model over the book's own prompts (no corpus needed)."""

import pytest

from tutorial_sae.analysis import prompts
from tutorial_sae.analysis import specificity as spec
from tutorial_sae.analysis import specificity_views as views
from tutorial_sae.analysis.polysemantic import PolysemanticNeuron
from tutorial_sae.analysis.scripts import label_tokens


def _texts(langs):
    docs = {**prompts.OWN_PROMPTS}
    for lang, extra in prompts.PAPER_PROMPTS.items():
        docs[lang] = docs[lang] + extra
    return {lang: [" ".join(docs[lang] * 4)] * 3 for lang in langs}


@pytest.fixture(scope="module")
def mini(one_thread):
    from tutorial_sae.models.loading import load_model, load_sae

    model = load_model("mini", device="cpu")
    sae = load_sae("mini/run1", device="cpu")
    data = label_tokens(model.tokenizer, _texts(("en", "code", "zh", "ar")), 600, 64)
    return model, sae, data, spec.scan_scripts(model, sae, data)


def test_script_summaries_are_han_and_arabic_when_both_are_there(mini):
    _, _, _, scan = mini
    got = views.script_summaries(scan)
    assert [s.concept for s in got] == ["han", "arabic"]
    assert got == spec.summarize(scan, ("han", "arabic"))
    with pytest.raises(TypeError, match="expected a ScriptScan"):
        views.script_summaries("scan")


def test_script_summaries_fall_back_to_code_and_latin(mini):
    model, sae, _, _ = mini
    data = label_tokens(model.tokenizer, _texts(("en", "code")), 300, 64)
    scan = spec.scan_scripts(model, sae, data)
    got = views.script_summaries(scan)
    assert [s.concept for s in got] == ["code", "latin"]
    assert got == spec.summarize(scan, ("code", "latin"))


def test_best_feature_values_and_line_are_what_the_cell_glued_and_printed(mini):
    _, _, _, scan = mini
    for s in views.script_summaries(scan):
        f = s.feature
        values = {
            f"{s.concept}_feature": f.index,
            f"{s.concept}_spec": f.specificity,
            f"{s.concept}_sens": f.sensitivity,
            f"{s.concept}_prec": f.precision,
        }
        got = views.best_feature_values(s)
        assert got == values and list(got) == list(values)
        assert isinstance(got[f"{s.concept}_feature"], int)
        assert 0 < got[f"{s.concept}_spec"] <= 1
        assert views.describe_best_feature(s) == (
            f"{s.concept}: feature {f.index}, specificity {f.specificity:.3f}, "
            f"precision {f.precision:.3f}, sensitivity {f.sensitivity:.3f}, F1 "
            f"{f.f1:.3f}"
        )
    with pytest.raises(TypeError, match="ConceptSummary"):
        views.best_feature_values(1)
    with pytest.raises(TypeError, match="ConceptSummary"):
        views.describe_best_feature("han")


def _row(lang, feature, max_act, mean_act):
    return prompts.PromptRow(lang, "x", feature, max_act, mean_act, 0.5)


def test_prompt_table_stats_are_the_means_ratio_and_silent_count():
    paper = [
        _row("zh", 3, 0.0, 0.0),
        _row("zh", 3, 2.0, 1.0),
        _row("zh", 3, 0.0, 0.0),
        _row("zh", 4, 0.0, 0.0),
        _row("en", 3, 0.0, 0.0),
        _row("ar", 3, 0.5, 0.1),
    ]
    own = [_row("zh", 3, 4.0, 2.0), _row("en", 3, 1.0, 0.2), _row("code", 3, 0.0, 0.0)]
    got = views.prompt_table_stats(paper + own, paper, 3)
    assert got == pytest.approx(
        {
            "table_mean_zh": 0.75,
            "table_mean_en": 0.1,
            "table_mean_ar": 0.1,
            "table_mean_code": 0.0,
            "table_ratio": 7.5,
            "paper_zh_silent": 2,
        }
    )
    assert isinstance(got["paper_zh_silent"], int)
    with pytest.raises(ValueError, match="zh, en and ar"):
        views.prompt_table_stats(own[:2], paper, 3)
    with pytest.raises(TypeError, match="paper_rows"):
        views.prompt_table_stats(own, ["row"], 3)


def _poly(concepts, sensitivity):
    unit = spec.UnitScore("feature", 7, concepts[0], 0.9, 0.8, 0.3, 0.4)
    other = spec.UnitScore("feature", 11, concepts[1], 0.95, 0.9, 0.2, 0.3)
    return PolysemanticNeuron(
        5, concepts, 0.125, sensitivity, (0.4, 0.5), 0.9, (unit, other), (0.012, 0.0345)
    )


def test_describe_and_pick_polysemantic_neurons():
    a = _poly(("latin", "code"), (0.6, 0.5))
    b = _poly(("arabic", "han"), (0.3, 0.25))
    assert views.describe_polysemantic(a) == (
        "neuron 5 fires on latin (60% of its tokens) and code (50%) above 0.12; features "
        "7 / 11 put 1.2% / 3.5% of their activation on the other concept"
    )
    assert views.pick_polysemantic([a, b]) is b
    assert views.pick_polysemantic([a]) is a
    assert views.pick_polysemantic([]) is None
    with pytest.raises(TypeError, match="PolysemanticNeuron"):
        views.describe_polysemantic("neuron")
    with pytest.raises(ValueError, match="pair of two"):
        views.pick_polysemantic([a], ("han",))


def test_study_shared_feature_equals_the_cells_inline_numbers(mini):
    model, sae, data, scan = mini
    texts = [prompts.PAPER_PROMPTS["en"][0], prompts.PAPER_PROMPTS["zh"][0]]
    study = views.study_shared_feature(model, sae, scan, texts)
    shared = prompts.shared_feature(model, sae, texts)
    density = float(scan.feature_fires[shared.index].sum() / data.n_tokens)
    assert study.feature == shared and study.density == density
    assert study.shares == spec.concept_shares(scan, shared.index)
    assert list(study.values) == ["shared_feature", "shared_density"] + [
        f"shared_{c}" for c in study.shares
    ]
    assert study.lines[0] == f"feature {shared.index}: max activation {shared.max_acts} on {texts}"
    assert study.lines[1] == (
        f"on held-out text it fires on {density:.1%} of tokens; activation by concept: "
        + str({c: f"{v:.1%}" for c, v in study.shares.items()})
    )
    with pytest.raises(ValueError):
        views.study_shared_feature(model, sae, scan, "not a list")
