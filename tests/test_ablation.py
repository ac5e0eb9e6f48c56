"""Clamps, exact ablation vs attribution and rank overlap (tutorial_sae.analysis.ablation),
and issue #10's targets on the shipped mini/run1 SAE."""

import matplotlib
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from tutorial_sae.analysis import ablation as ab
from tutorial_sae.analysis import interventions as iv
from tutorial_sae.core.sae import SAE, SAEConfig

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")
D_MLP, D_SAE = 16, 48


@pytest.fixture(scope="module")
def model():
    cfg = HookedTransformerConfig(
        n_layers=1, d_model=8, d_head=4, n_heads=2, d_mlp=D_MLP, d_vocab=40, n_ctx=12,
        act_fn="gelu", normalization_type="LN", device="cpu", seed=0,
    )  # fmt: skip
    return HookedTransformer(cfg)


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 40, (6, 12), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def sae():
    sae = SAE(SAEConfig(d_in=D_MLP, d_sae=D_SAE, seed=3))
    with torch.no_grad():
        sae.b_enc.fill_(0.02)
        sae.W_dec.mul_(3.0)  # edits big enough to move the toy model's loss
    return sae


def test_clamp_values_change_only_the_chosen_tokens():
    acts = torch.tensor([0.0, 2.0, 0.0, 4.0, 1.0])
    chosen = acts > 1.5
    reference = torch.tensor([0.0, 0.0, 3.0, 1.0])
    assert torch.equal(ab.clamp_values("none", acts, chosen, reference), acts)
    assert torch.equal(ab.clamp_values("zero", acts, chosen, reference)[chosen], torch.zeros(2))
    assert torch.allclose(ab.clamp_values("mean", acts, chosen, reference)[chosen], torch.ones(2))
    resampled = ab.clamp_values("resample", acts, chosen, reference, seed=4)
    assert all(v in reference.tolist() for v in resampled[chosen].tolist())
    for kind in ab.CLAMP_KINDS:
        assert torch.equal(ab.clamp_values(kind, acts, chosen, reference)[~chosen], acts[~chosen])
    big = ab.clamp_values("noise", torch.ones(20_000), torch.ones(20_000, dtype=bool), reference)
    assert big.pow(2).mean().sqrt() == pytest.approx(5**0.5, rel=0.03)  # RMS of {3, 1}
    with pytest.raises(ValueError, match="clamp kind"):
        ab.clamp_values("scramble", acts, chosen, reference)
    with pytest.raises(ValueError, match="bool mask of shape"):
        ab.clamp_values("zero", acts, chosen.float(), reference)


def test_spearman_and_ranks_handle_order_and_ties():
    a = torch.tensor([1.0, 5.0, 2.0, 9.0])
    assert ab.spearman(a, a.exp()) == pytest.approx(1.0)
    assert ab.spearman(a, -a) == pytest.approx(-1.0)
    assert torch.equal(
        ab.rank(torch.tensor([3.0, 1.0, 3.0, 2.0])), torch.tensor([3.5, 1, 3.5, 2]).double()
    )
    # Textbook example: d = rank differences (0, -1, 1, 0, 0) -> 1 - 6 * 2 / (5 * 24) = 0.9
    assert ab.spearman(
        torch.tensor([1.0, 2, 3, 4, 5]), torch.tensor([1.0, 3, 2, 4, 5])
    ) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="two vectors"):
        ab.spearman(a, a[:3])


def test_top_k_overlap_counts_shared_members_over_the_union():
    features = torch.tensor([10, 11, 12, 13, 14])
    first = torch.tensor([5.0, 4, 3, 2, 1])
    second = torch.tensor([1.0, 4, 5, 2, 3])
    got = ab.top_k_overlap(features, first, second, k=2)
    assert got.by_first == (10, 11) and got.by_second == (12, 11)
    assert (got.shared, got.union, got.jaccard) == (1, 3, pytest.approx(1 / 3))
    with pytest.raises(ValueError, match="length >= k"):
        ab.top_k_overlap(features, first, second, k=6)


def test_attribute_is_minus_strength_times_activation_times_gradient():
    f = torch.tensor([[1.0, 0.0], [2.0, 3.0]])
    g = torch.tensor([[0.5, 7.0], [-1.0, 1.0]])
    torch.testing.assert_close(ab.attribute(f, g, 0.5, n_scored=3), torch.tensor([0.25, -0.5]))
    with pytest.raises(ValueError, match="one shape"):
        ab.attribute(f, g[:1])


def test_exact_ablation_matches_a_full_run_and_attribution_is_first_order(model, tokens, sae):
    study = ab.ablation_vs_attribution(model, sae, tokens, n_features=6, strengths=(0.01, 1.0))
    clean = iv.run_with_sae(model, tokens, sae, return_type="token_losses")
    for j, feature in enumerate(study.features.tolist()):
        ablated = iv.run_with_sae(
            model, tokens, sae, iv.zero_features(feature), return_type="token_losses"
        )
        assert study.true_dce[1, j] == pytest.approx(float((ablated - clean).mean()), abs=1e-6)
    # A 1% clamp is well inside the linear regime.
    # (float32 losses: a tiny edit's loss change carries rounding of ~1e-5 nats)
    torch.testing.assert_close(study.attributed[0], study.true_dce[0], rtol=0.1, atol=2e-5)
    assert study.spearman[0] > 0.9
    assert study.n_scored == tokens[:, 1:].numel()
    with pytest.raises(ValueError, match="increasing clamp strengths"):
        ab.ablation_vs_attribution(model, sae, tokens, strengths=(1.0, 0.5))


def test_clamp_effects_with_the_error_term_leave_the_unedited_model(model, tokens, sae):
    f = sae.encode(iv.cache_last_mlp(model, tokens).act).detach()
    feature = int((f > 0).sum(0).argmax())
    study = ab.clamp_effects(model, sae, tokens, feature)
    none = study.get("none", True)
    assert (none.mse, none.dce_overall, none.changed) == (0.0, 0.0, 0.0)
    assert none.cosine == pytest.approx(1.0)
    # Without the error term even "none" costs: the model reads the reconstruction.
    assert study.get("none", False).mse > 0
    zero = study.get("zero", True)
    assert zero.mse > 0 and zero.dce_overall == pytest.approx(
        zero.dce_active
        * (tokens.shape[0] * (tokens.shape[1] - 1)) ** -1
        * _scored_active(f, feature, tokens),
        rel=1e-4,
    )
    assert len(study.effects) == 2 * len(ab.CLAMP_KINDS)
    with pytest.raises(ValueError, match="expected a kind in"):
        study.get("scramble", True)


def _scored_active(f, feature, tokens):
    return int((f[:, feature] > 0).reshape(tokens.shape)[:, :-1].sum())


# Issue #10's targets, measured on held-out mini text with the shipped mini/run1 SAE.
@pytest.fixture(scope="module")
def mini():
    from tutorial_sae.models.loading import load_model, load_sae, load_tokens

    model = load_model("mini", device="cpu")
    sae = load_sae("mini/run1", device="cpu")
    tokens = load_tokens("mini", "eval", 64 * 128, tokenizer=model.tokenizer)
    return model, sae, tokens


@pytest.fixture(scope="module")
def mini_study(mini):
    model, sae, tokens = mini
    return ab.ablation_vs_attribution(model, sae, tokens, 200, (0.1, 0.5, 1.0))


def test_mini_zero_ablation_with_the_error_term_changes_only_active_positions(mini):
    model, sae, tokens = mini
    tokens = tokens[:8]
    f = sae.encode(iv.cache_last_mlp(model, tokens).act).detach()
    feature = int((f > 0).sum(0).argmax())
    delta = iv.run_with_sae(model, tokens, sae, iv.zero_features(feature)) - iv.run_with_sae(
        model, tokens, sae
    )
    active = (f[:, feature] > 0).reshape(tokens.shape)
    assert delta.abs().amax(-1)[~active].max() <= 1e-5
    assert delta.abs().amax(-1)[active].max() > 1e-2


def test_mini_attribution_ranks_a_small_clamp_but_less_so_full_ablation(mini_study):
    rho = mini_study.spearman
    assert rho[0] >= 0.98  # f -> 0.9 f (issue: >= 0.98; measured 0.996)
    assert rho[-1] < rho[1] < rho[0]  # falls towards zero-ablation (measured 0.755)


def test_mini_ablation_hurts_at_active_positions_for_most_frequent_features(mini_study):
    assert int((mini_study.dce_active[:100] > 0).sum()) >= 75  # measured 83


def test_mini_top_ten_by_activation_and_by_effect_overlap_little(mini_study):
    overlap = mini_study.overlap(10)
    assert overlap.shared <= 5  # measured 3 of 17 (Jaccard 0.18)
