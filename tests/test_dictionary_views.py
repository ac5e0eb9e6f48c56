"""Chapter 4's one-call views: projections with sampled trustworthiness, a splitting example and
completeness by dictionary size (analysis.projection_views, analysis.dictionary_growth)."""

import pytest
import torch

from tutorial_sae.analysis.completeness import completeness, completeness_curve, frequency_edges
from tutorial_sae.analysis.dictionary_growth import completeness_by_size, splitting_example
from tutorial_sae.analysis.features import LabelledTokens, feature_card, feature_stats
from tutorial_sae.analysis.neighbourhoods import (
    StoredProjections,
    clean_split,
    project,
    splitting_families,
    trustworthiness,
)
from tutorial_sae.analysis.projection_views import projection_views, trust_sample
from tutorial_sae.core.sae import SAE, SAEConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def clusters(n=120, d=8, seed=2):
    labels = torch.arange(n) % 4
    return torch.eye(d)[labels] * 5 + torch.randn(
        n, d, generator=torch.Generator().manual_seed(seed)
    )


def test_trust_sample_keeps_all_rows_or_a_seeded_subset():
    assert torch.equal(trust_sample(100, 4_096, seed=3), torch.arange(100))
    rows = trust_sample(5_000, 4_096, seed=3)
    assert torch.equal(
        rows, torch.randperm(5_000, generator=torch.Generator().manual_seed(3))[:4_096]
    )
    assert len(set(rows.tolist())) == 4_096
    with pytest.raises(ValueError, match="max_points must be an int >= 1"):
        trust_sample(10, 0)


def test_projection_views_without_umap_are_pca_in_2d_and_3d():
    points = clusters()
    views = projection_views(points, None, k=5, umap=False)
    pca3 = project(points, "pca", 3).coords
    assert list(views.coords) == ["PCA"]
    assert torch.equal(views.coords["PCA"], pca3[:, :2])
    assert torch.equal(views.coords3d, pca3)
    assert views.trust == {"PCA": trustworthiness(points, pca3[:, :2], 5)}
    assert views.trust["PCA"] > 0.8
    assert views.sample_note is None


def test_projection_views_use_stored_umap_and_score_a_sample():
    points = clusters()
    gen = torch.Generator().manual_seed(4)
    stored = StoredProjections(
        "toy", torch.randn(120, 2, generator=gen), torch.randn(120, 3, generator=gen)
    )
    views = projection_views(points, stored, k=5, seed=1, max_points=50)
    assert views.coords["UMAP"] is stored.umap_2d and views.coords3d is stored.umap_3d
    assert torch.equal(views.coords["PCA"], project(points, "pca", 2).coords)
    rows = torch.randperm(120, generator=torch.Generator().manual_seed(1))[:50]
    assert torch.equal(views.rows, rows)
    assert views.trust["UMAP"] == trustworthiness(points[rows], stored.umap_2d[rows], 5)
    assert views.sample_note == "trustworthiness of a sample: 50 of 120 points"
    with pytest.raises(TypeError, match="StoredProjections"):
        projection_views(points, {"umap_2d": stored.umap_2d}, k=5)
    with pytest.raises(ValueError, match="120 points, got 60"):
        projection_views(points, StoredProjections("toy", stored.umap_2d[:60], stored.umap_3d[:60]))


def splitting_toy(split: bool = True):
    # Parent 0 of `small` reads e0+e1; children 0 and 1 of `large` read e0 and e1 (when split).
    small, large = SAE(SAEConfig(d_in=4, d_sae=2)), SAE(SAEConfig(d_in=4, d_sae=3))
    rows = [[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]] if split else [[0, 0, 1.0, 0]] * 3
    with torch.no_grad():
        for sae in (small, large):
            sae.b_dec.zero_()
            sae.b_enc.fill_(-0.5)
        small.W_dec.copy_(
            torch.tensor([[1.0, 1, 0, 0], [0, 0, 0, 1]]) / torch.tensor([[2**0.5], [1]])
        )
        small.W_enc.copy_(small.W_dec.T)
        large.W_dec.copy_(torch.tensor(rows))
        large.W_enc.copy_(large.W_dec.T)
    x = torch.tensor([[0, 0, 0, 0], [2.0, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]])
    acts = x.repeat(10, 1).reshape(10, 4, 4)
    tokens = torch.randint(1, 50, (10, 4), generator=torch.Generator().manual_seed(0))
    data = LabelledTokens(tokens, torch.arange(10) % 2, ("a", "b"))
    saes = {"small": small, "large": large}
    stats = {n: feature_stats(s, acts, data, k=4, name=n) for n, s in saes.items()}
    return saes, stats, acts, data


def test_splitting_example_equals_the_step_by_step_computation(tokenizer):
    saes, stats, acts, data = splitting_toy()
    split = splitting_example(saes, stats, acts, data, tokenizer)
    families = splitting_families(saes["small"], saes["large"], acts)
    assert split.families == families and split.n_covering == 1
    assert split.family == clean_split(families) and split.reason is None
    assert split.family.children == (0, 1)
    args = (acts, data, tokenizer)
    assert split.parent == feature_card(saes["small"], stats["small"], *args, 0)
    assert split.children == tuple(
        feature_card(saes["large"], stats["large"], *args, c) for c in (0, 1)
    )
    with pytest.raises(ValueError, match="stats keyed like saes"):
        splitting_example(saes, {"small": stats["small"]}, acts, data, tokenizer)


def test_splitting_example_without_a_family_says_why(tokenizer):
    saes, stats, acts, data = splitting_toy(split=False)
    split = splitting_example(saes, stats, acts, data, tokenizer)
    assert split.family is None and split.parent is None and split.children == ()
    assert split.reason == "expected a family with coverage >= 0.8, best is 0.00"


def test_completeness_by_size_equals_the_step_by_step_computation():
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50, (6, 9), generator=gen)
    data = LabelledTokens(tokens, torch.arange(6) % 2, ("a", "b"))
    acts = torch.randn(6, 9, 8, generator=gen)
    stats = {
        f"{d}": feature_stats(SAE(SAEConfig(d_in=8, d_sae=d, seed=d)), acts, data, k=4)
        for d in (16, 32)
    }
    growth = completeness_by_size(stats, tokens, 50)
    results = {s: completeness(st, tokens, 50) for s, st in stats.items()}
    edges = frequency_edges(list(results.values()))
    for s, r in results.items():
        curve = completeness_curve(r, edges)
        got = growth.curves[f"{s} features"]
        assert torch.equal(got.log10_frequency, curve.log10_frequency)
        assert torch.equal(got.n_types, curve.n_types)
        assert growth.half_frequency[s] == 10**curve.half_coverage_log10
        assert growth.results[s].n_dedicated == r.n_dedicated
    assert growth.prose_numbers == {
        "half_0": growth.half_frequency["16"], "dedicated_0": results["16"].n_dedicated,
        "half_1": growth.half_frequency["32"], "dedicated_1": results["32"].n_dedicated,
    }  # fmt: skip
    with pytest.raises(ValueError, match="non-empty mapping"):
        completeness_by_size({}, tokens, 50)


def test_feature_cards_equal_one_card_per_feature_with_logit_effects(tokenizer):
    from tutorial_sae.analysis.feature_views import feature_cards
    from tutorial_sae.models.mini import MiniModelConfig, build_model

    cfg = MiniModelConfig(d_vocab=len(tokenizer), d_model=16, n_heads=2, n_ctx=8)
    model = build_model(cfg, tokenizer)
    d_mlp = model.cfg.d_mlp
    gen = torch.Generator().manual_seed(0)
    data = LabelledTokens(
        torch.randint(1, 500, (4, 8), generator=gen), torch.arange(4) % 2, ("a", "b")
    )
    acts = torch.randn(4, 8, d_mlp, generator=gen)
    sae = SAE(SAEConfig(d_in=d_mlp, d_sae=32))
    stats = feature_stats(sae, acts, data, k=3)
    cards = feature_cards(sae, stats, acts, data, model, iter([5, 2]), 2.0)
    args = (acts, data, tokenizer)
    assert cards == [feature_card(sae, stats, *args, f, model, 2.0) for f in (5, 2)]
    assert cards[0].logits is not None
    with pytest.raises(ValueError, match="a model with a tokenizer"):
        feature_cards(sae, stats, acts, data, object(), [5], 2.0)
    with pytest.raises(TypeError, match="features as ints"):
        feature_cards(sae, stats, acts, data, model, [5.0], 2.0)


def test_feature_names_give_labels_and_decoded_top_tokens(tokenizer):
    from tutorial_sae.analysis.feature_views import feature_names

    saes, stats, acts, data = splitting_toy()
    shown = feature_names(stats["large"], data.tokens, tokenizer)
    st = stats["large"]
    top = st.top_tokens(data.tokens)[:, 0].tolist()
    assert shown.labels == [st.label_names[i] if i >= 0 else "dead" for i in st.labels]
    assert shown.top_words == [tokenizer.decode([t]) if t >= 0 else "-" for t in top]
    assert "dead" not in shown.labels[:3] and len(shown.top_words) == 3
    with pytest.raises(TypeError, match="FeatureStats"):
        feature_names({}, data.tokens, tokenizer)


def test_dictionary_matches_chain_consecutive_sizes_and_count_same_index():
    from tutorial_sae.analysis.dictionary_growth import dictionary_matches, same_index_share
    from tutorial_sae.analysis.neighbourhoods import best_matches

    saes = {str(d): SAE(SAEConfig(d_in=8, d_sae=d, seed=0)) for d in (8, 16, 32)}
    matches = dictionary_matches(saes)
    assert list(matches) == ["8 → 16 features", "16 → 32 features"]
    direct = best_matches(saes["16"].W_dec.detach(), saes["32"].W_dec.detach())
    got = matches["16 → 32 features"]
    assert torch.equal(got.best_cosine, direct.best_cosine)
    assert torch.equal(got.best_index, direct.best_index)
    share = float((direct.best_index == torch.arange(16)).float().mean())
    assert same_index_share(got) == share
    with pytest.raises(ValueError, match="at least two"):
        dictionary_matches({"8": saes["8"]})
    with pytest.raises(TypeError, match="DictionaryMatch"):
        same_index_share(0.5)
