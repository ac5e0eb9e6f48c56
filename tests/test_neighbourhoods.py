"""Cosine neighbours, kNN agreement, projections, matching, splitting, completeness (chapter 4).

The `corpus` tests measure the issue's targets on the shipped mini SAEs and held-out text, with
the chapter's default sizes; the chapter states the same numbers through glue.
"""

import json

import pytest
import torch

from tutorial_sae.analysis.completeness import (
    Completeness,
    completeness,
    completeness_curve,
    dedicated_tokens,
    frequency_edges,
)
from tutorial_sae.analysis.features import LabelledTokens, feature_stats
from tutorial_sae.analysis.neighbourhoods import (
    SplittingFamily,
    best_matches,
    clean_split,
    cosine_neighbours,
    knn_agreement,
    load_projections,
    project,
    sae_fingerprint,
    splitting_families,
    trustworthiness,
)
from tutorial_sae.core.sae import SAE, SAEConfig

pytestmark = pytest.mark.usefixtures("one_thread")
N_TOKENS = 65_536  # the chapter's default


def test_cosine_neighbours_exclude_self_and_ignore_norms():
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(300, 16, generator=gen)
    scaled = d * torch.rand(300, 1, generator=gen) * 10
    nb = cosine_neighbours(scaled, k=5, chunk=64)
    unit = d / d.norm(dim=-1, keepdim=True)
    sims = unit @ unit.T
    sims.fill_diagonal_(-2)
    assert torch.equal(nb.indices, sims.topk(5).indices)
    assert (nb.indices != torch.arange(300)[:, None]).all()
    assert (nb.cosines[:, :-1] >= nb.cosines[:, 1:]).all()
    with pytest.raises(ValueError, match="1 <= k"):
        cosine_neighbours(d, k=300)


def test_knn_agreement_is_one_for_pure_clusters_and_near_chance_when_shuffled():
    centres = torch.eye(4) * 10
    labels = torch.arange(400) % 4
    points = centres[labels] + torch.randn(400, 4, generator=torch.Generator().manual_seed(1))
    result = knn_agreement(cosine_neighbours(points, 10).indices, labels)
    assert result.agreement == 1.0
    assert abs(result.shuffled - 0.25) < 0.03
    dead = labels.clone()
    dead[:100] = -1  # unlabelled features are left out and count as disagreeing neighbours
    assert knn_agreement(cosine_neighbours(points, 10).indices, dead).per_feature.shape == (300,)


def test_pca_projection_keeps_clusters_trustworthy():
    labels = torch.arange(200) % 4
    points = torch.eye(8)[labels] * 5 + torch.randn(
        200, 8, generator=torch.Generator().manual_seed(2)
    )
    coords = project(points, "pca", 2).coords
    assert coords.shape == (200, 2)
    assert trustworthiness(points, coords, k=10) > 0.8
    with pytest.raises(ValueError, match="method"):
        project(points, "tsne")


def test_best_matches_find_a_permuted_copy_and_random_stays_low():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(50, 64, generator=gen)
    b = torch.cat([a[torch.randperm(50, generator=gen)] * 3, torch.randn(50, 64, generator=gen)])
    m = best_matches(a, b)
    assert torch.allclose(m.best_cosine, torch.ones(50), atol=1e-5)
    assert torch.allclose(b[m.best_index] / 3, a, atol=1e-5)
    assert m.random_median < 0.5
    with pytest.raises(ValueError, match="same width"):
        best_matches(a, b[:, :10])


def test_splitting_families_measure_how_children_cover_the_parent():
    # Parent 0 reads e0+e1; two children read e0 and e1: each fires on half the parent's tokens.
    small, large = SAE(SAEConfig(d_in=4, d_sae=2)), SAE(SAEConfig(d_in=4, d_sae=3))
    with torch.no_grad():
        for sae in (small, large):
            sae.b_dec.zero_()
            sae.b_enc.fill_(-0.5)
        small.W_dec.copy_(
            torch.tensor([[1.0, 1, 0, 0], [0, 0, 0, 1]]) / torch.tensor([[2**0.5], [1]])
        )
        small.W_enc.copy_(small.W_dec.T)
        large.W_dec.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]))
        large.W_enc.copy_(large.W_dec.T)
    x = torch.tensor([[0, 0, 0, 0], [2.0, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]])
    acts = x.repeat(10, 1).reshape(10, 4, 4)  # position 0 of each row is skipped as BOS
    (family,) = splitting_families(small, large, acts, min_firings=1)
    assert family.parent == 0 and family.children == (0, 1)
    assert family.parent_firings == 20 and family.coverage == 1.0
    assert family.child_shares == (0.5, 0.5)
    assert clean_split([family]) is family
    with pytest.raises(ValueError, match="coverage"):
        clean_split([SplittingFamily(0, (1, 2), (0.6, 0.6), 10, 0.5, (0.3, 0.2))])


def test_dedicated_tokens_and_completeness_curve():
    top = torch.tensor([[7, 7, 7, 1, 2], [1, 2, 3, 4, 5], [9, 9, -1, -1, -1], [4, 4, 4, 4, 4]])
    assert dedicated_tokens(top, min_share=0.5, min_top=3).tolist() == [7, -1, -1, 4]
    freq = torch.tensor([0.5, 0.2, 0.2, 0.05, 0.05, 0.0])
    result = Completeness(freq, torch.tensor([True, True, False, False, False, False]), 2)
    curve = completeness_curve(result, torch.tensor([-1.4, -1.0, -0.5, 0.0]))
    assert curve.n_types.tolist() == [2, 2, 1]
    assert curve.p_covered.tolist() == [0.0, 0.5, 1.0]
    assert curve.half_coverage_log10 == pytest.approx(float(curve.log10_frequency[1]))


def test_stored_projections_are_used_only_for_their_sae(tmp_path):
    sae = SAE(SAEConfig(d_in=4, d_sae=3))
    path = tmp_path / "p.json"
    blob = {"sae": "toy", "fingerprint": sae_fingerprint(sae), "umap_2d": [[0, 0]] * 3,
            "umap_3d": [[0, 0, 0]] * 3}  # fmt: skip
    path.write_text(json.dumps(blob))
    assert load_projections(sae, path).umap_3d.shape == (3, 3)
    assert load_projections(SAE(SAEConfig(d_in=4, d_sae=3, seed=1)), path) is None
    path.write_text(json.dumps({**blob, "umap_2d": [[0, 0]] * 2}))
    with pytest.raises(ValueError, match="umap_2d"):
        load_projections(sae, path)


@pytest.fixture(scope="module")
def mini():
    from tutorial_sae.analysis.features import labelled_eval_tokens
    from tutorial_sae.data.activations import collect_activations
    from tutorial_sae.models.loading import load_model, load_sae

    model = load_model("mini", device="cpu")
    data = labelled_eval_tokens("mini", model.tokenizer, N_TOKENS)
    acts = collect_activations(model, data.tokens, progress=False)
    saes = {n: load_sae(f"mini/{n}", device="cpu") for n in ("x2", "x4", "run1")}
    stats = {n: feature_stats(s, acts, data, name=n) for n, s in saes.items()}
    return model, data, acts, saes, stats


@pytest.mark.corpus
def test_target_best_match_2048_to_4096(mini):
    _, _, _, saes, _ = mini
    match = best_matches(saes["x4"].W_dec.detach(), saes["run1"].W_dec.detach())
    assert match.median >= 0.6
    assert match.random_median <= 0.25


@pytest.mark.corpus
def test_target_knn_label_agreement(mini):
    _, _, _, saes, stats = mini
    from tutorial_sae.analysis.neighbourhoods import decoder_directions

    nb = cosine_neighbours(decoder_directions(saes["run1"]), 10)
    result = knn_agreement(nb.indices, stats["run1"].labels)
    assert result.agreement >= result.shuffled + 0.2


@pytest.mark.corpus
def test_target_a_splitting_family_covers_its_parent(mini):
    _, _, acts, saes, _ = mini
    family = clean_split(splitting_families(saes["x2"], saes["run1"], acts))
    assert family.coverage >= 0.8
    assert len(family.children) >= 2 and min(family.child_cosines) >= 0.5


@pytest.mark.corpus
def test_target_completeness_rises_with_dictionary_size(mini):
    model, data, _, _, stats = mini
    results = [completeness(stats[n], data.tokens, model.cfg.d_vocab) for n in ("x2", "x4", "run1")]
    edges = frequency_edges(results)
    half = [completeness_curve(r, edges).half_coverage_log10 for r in results]
    assert half[0] > half[1] > half[2]


def test_labelled_tokens_reject_a_label_count_mismatch():
    with pytest.raises(ValueError, match="one label per row"):
        LabelledTokens(
            torch.zeros(3, 4, dtype=torch.long), torch.zeros(2, dtype=torch.long), ("a",)
        )
