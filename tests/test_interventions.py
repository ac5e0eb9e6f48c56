"""Interventions: the SAE splice with and without its error term, latent edits, and their checks."""

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from tutorial_sae import collect_activations
from tutorial_sae.analysis import interventions as iv
from tutorial_sae.analysis.evaluation import _mean_activation, evaluate_sae
from tutorial_sae.core.sae import SAE, SAEConfig

D_MLP, D_SAE, HOOK = 16, 48, "blocks.0.mlp.hook_post"


@pytest.fixture(scope="module")
def model():
    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=8,
        d_head=4,
        n_heads=2,
        d_mlp=D_MLP,
        d_vocab=40,
        n_ctx=12,
        act_fn="gelu",
        normalization_type="LN",
        device="cpu",
        seed=0,
    )
    return HookedTransformer(cfg)


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 40, (6, 12), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def sae():
    torch.manual_seed(0)
    sae = SAE(SAEConfig(d_in=D_MLP, d_sae=D_SAE, seed=3))
    with torch.no_grad():
        sae.b_enc.fill_(-0.05)
        sae.b_enc[: D_SAE // 2] = -100.0  # these never fire
    return sae


def test_keeping_the_error_term_without_an_edit_is_the_clean_model(model, tokens, sae):
    clean = iv.run_with_intervention(model, tokens)
    spliced = iv.run_with_sae(model, tokens, sae, keep_error=True)
    assert torch.equal(clean, spliced)


def test_zeroing_silent_features_with_the_error_term_changes_nothing(model, tokens, sae):
    acts = collect_activations(model, tokens, progress=False).reshape(-1, D_MLP)
    silent = torch.nonzero(sae.encode(acts).amax(0) == 0).flatten()
    assert len(silent) > 0
    clean = iv.run_with_intervention(model, tokens)
    edited = iv.run_with_sae(model, tokens, sae, iv.zero_features(silent))
    assert torch.equal(clean, edited)


def test_without_the_error_term_the_model_reads_the_reconstruction(model, tokens, sae):
    def reconstruction(act):
        return sae.decode(sae.encode(act.reshape(-1, D_MLP))).reshape(act.shape)

    expected = iv.run_with_intervention(model, tokens, reconstruction)
    got = iv.run_with_sae(model, tokens, sae, keep_error=False)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, iv.run_with_intervention(model, tokens))


def test_an_edit_moves_the_activation_by_exactly_its_decoder_change(sae):
    x = torch.randn(5, D_MLP, generator=torch.Generator().manual_seed(2)).abs()
    f = sae.encode(x)
    firing = int(f.sum(0).argmax())
    splice = iv.SAESplice(sae, iv.zero_features(firing), keep_error=True, record=True)
    out = splice(x)
    expected = x - f[:, firing, None] * sae.W_dec[firing]
    torch.testing.assert_close(out, expected)
    assert torch.equal(splice.latents, f) and (splice.edited[:, firing] == 0).all()


def test_each_edit_kind_sets_the_latents_it_names():
    f = torch.arange(12.0).reshape(3, 4)
    assert iv.zero_features([1, 3])(f)[:, [1, 3]].eq(0).all()
    assert iv.clamp_features(2, 7.5)(f)[:, 2].eq(7.5).all()
    torch.testing.assert_close(iv.add_to_features([0], 1.0)(f)[:, 0], f[:, 0] + 1)
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    torch.testing.assert_close(iv.replace_features([0, 2], values)(f)[:, [0, 2]], values)
    torch.testing.assert_close(iv.edit_latents(lambda g: 2 * g)(f), 2 * f)
    untouched = iv.clamp_features(2, 7.5)(f)
    assert torch.equal(untouched[:, [0, 1, 3]], f[:, [0, 1, 3]]) and f[0, 2] == 2.0


def test_bad_edits_and_runs_say_what_was_expected(model, tokens, sae):
    f = torch.zeros(3, 4)
    with pytest.raises(ValueError, match=r"feature indices in \[0, 4\), got \[9\]"):
        iv.zero_features(9)(f)
    with pytest.raises(ValueError, match="at least one feature index"):
        iv.zero_features([])
    with pytest.raises(ValueError, match="integer feature indices"):
        iv.clamp_features([1.5], 1.0)
    with pytest.raises(ValueError, match=r"broadcastable to \[3, 2\]"):
        iv.replace_features([0, 1], torch.zeros(4, 2))(f)
    with pytest.raises(ValueError, match=r"return \(3, 4\)"):
        iv.edit_latents(lambda g: g[:, :2])(f)
    with pytest.raises(ValueError, match="return_type in"):
        iv.run_with_sae(model, tokens, sae, return_type="probs")
    with pytest.raises(ValueError, match="hook points"):
        iv.run_with_sae(model, tokens, sae, hook="blocks.0.hook_nothing")
    with pytest.raises(ValueError, match="width d_in=8, got 16"):
        iv.run_with_sae(model, tokens, SAE(SAEConfig(d_in=8, d_sae=16)))
    with pytest.raises(ValueError, match="integer tensor"):
        iv.run_with_sae(model, tokens.float(), sae)


def test_token_losses_average_to_the_loss(model, tokens, sae):
    edit = iv.clamp_features([0, 1], 3.0)
    per_token = iv.run_with_sae(model, tokens, sae, edit, return_type="token_losses")
    mean = iv.run_with_sae(model, tokens, sae, edit, return_type="loss")
    assert per_token.shape == (6, 11)
    torch.testing.assert_close(per_token.mean(), mean)


def test_mean_ablation_value_leaves_the_bos_token_out(model, tokens, monkeypatch):
    bos_tokens = tokens.clone()
    bos_tokens[:, 0] = 0
    monkeypatch.setattr("tutorial_sae.analysis.evaluation._bos_id", lambda model: 0)
    acts = collect_activations(model, bos_tokens, progress=False).double()
    expected = acts[bos_tokens != 0].mean(0)
    got = _mean_activation(model, bos_tokens, HOOK, batch_size=4, progress=False)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, acts.reshape(-1, D_MLP).mean(0))


def test_evaluation_reports_firing_counts_and_their_histogram(model, tokens, sae):
    scores = evaluate_sae(model, sae, tokens, HOOK, batch_size=4, progress=False)
    acts = collect_activations(model, tokens, progress=False).reshape(-1, D_MLP)
    expected = (sae.encode(acts) > 0).sum(0)
    assert torch.equal(scores.firing_counts, expected)
    hist = scores.density_histogram()
    assert hist.dead == int((expected == 0).sum()) and hist.n_features == D_SAE
    assert "firing_counts" not in scores.as_dict()
    assert scores.dead_fraction == pytest.approx(hist.dead / D_SAE)


def test_latent_gradients_keep_the_clean_output_and_predict_small_edits(model, tokens, sae):
    grads = iv.latent_gradients(model, tokens, sae)
    clean = iv.run_with_intervention(model, tokens, return_type="token_losses")
    torch.testing.assert_close(grads.token_losses, clean)
    f = grads.latents
    feature = int((f > 0).sum(0).argmax())
    eps = 1e-3
    nudged = iv.run_with_sae(
        model, tokens, sae, iv.add_to_features(feature, eps), return_type="token_losses"
    )
    predicted = eps * grads.grads[:, feature].sum()
    assert float(nudged.sum() - clean.sum()) == pytest.approx(float(predicted), rel=0.05, abs=1e-6)
    # The last position predicts nothing, so no loss depends on its latents in one layer.
    assert grads.grads.reshape(6, 12, D_SAE)[:, -1].abs().max() == 0


def test_last_mlp_cache_reruns_any_edit_per_position(model, tokens, sae):
    cache = iv.cache_last_mlp(model, tokens)
    clean = iv.run_with_intervention(model, tokens).reshape(-1, 40)
    torch.testing.assert_close(iv.logits_from_last_mlp(model, cache.resid_mid, cache.act), clean)
    f = sae.encode(cache.act).detach()
    feature = int((f > 0).sum(0).argmax())
    edited_act = cache.act - f[:, feature, None] * sae.W_dec[feature].detach()
    expected = iv.run_with_sae(model, tokens, sae, iv.zero_features(feature)).reshape(-1, 40)
    rows = torch.tensor([0, 5, 13, 40])
    got = iv.logits_from_last_mlp(model, cache.resid_mid[rows], edited_act[rows])
    torch.testing.assert_close(got, expected[rows], rtol=1e-5, atol=1e-5)
    assert torch.equal(cache.next_tokens.reshape(6, 12)[:, :-1], tokens[:, 1:])
    assert (cache.next_tokens.reshape(6, 12)[:, -1] == -1).all()
    with pytest.raises(ValueError, match="last block's MLP output hook"):
        iv.cache_last_mlp(model, tokens, hook="blocks.0.hook_resid_mid")
    with pytest.raises(ValueError, match="as many residual rows"):
        iv.logits_from_last_mlp(model, cache.resid_mid[:2], cache.act[:3])


def test_patching_pairs_writes_the_stored_activation_there_only(model, tokens):
    _, cache = model.run_with_cache(tokens)
    stored = cache["blocks.0.hook_resid_post"][:1]
    batch_index, positions = torch.tensor([1, 3]), torch.tensor([2, 5])
    act = torch.randn(6, 12, 8)
    out = iv.patch_activation(stored, batch_index, positions)(act)
    torch.testing.assert_close(out[batch_index, positions], stored[0, positions])
    keep = torch.ones(6, 12, dtype=torch.bool)
    keep[batch_index, positions] = False
    torch.testing.assert_close(out[keep], act[keep])
    torch.testing.assert_close(iv.patch_activation(stored)(act), stored.expand_as(act))


def test_several_interventions_at_once_and_gradients_through_an_added_vector(model, tokens):
    clean = iv.run_with_interventions(model, tokens, {})
    torch.testing.assert_close(clean, iv.run_with_intervention(model, tokens))
    delta = torch.zeros(8, requires_grad=True)
    fns = {
        "hook_embed": iv.add_activation(torch.zeros(8)),
        "blocks.0.hook_mlp_out": iv.add_activation(delta, torch.tensor([0]), torch.tensor([4])),
    }
    logits = iv.run_with_interventions(model, tokens, fns, grad=True)
    torch.testing.assert_close(logits.detach(), clean)
    logits[0, 4].sum().backward()
    assert delta.grad is not None and delta.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="both batch_index and positions"):
        iv.add_activation(delta, torch.tensor([0]))(torch.zeros(2, 3, 8))
    with pytest.raises(ValueError, match="hook points"):
        iv.run_with_interventions(model, tokens, {"nope": iv.zero_ablation})
