"""evaluate_sae: exact reconstructions recover all the loss, zero or mean outputs none, and the
streamed metrics equal tutorial_sae.core.metrics on all the activations at once."""

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from tutorial_sae import collect_activations
from tutorial_sae.analysis.evaluation import evaluate_sae
from tutorial_sae.core import metrics
from tutorial_sae.core.sae import SAE, SAEConfig

D_MLP = 16


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
    model = HookedTransformer(cfg)
    with torch.no_grad():
        # A large MLP output makes deleting it cost a clear amount of loss.
        model.blocks[0].mlp.W_out.mul_(8)
    return model


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 40, (10, 12), generator=torch.Generator().manual_seed(0))


def sae_with(W_enc, W_dec, b_enc=None, b_dec=None) -> SAE:
    d_in, d_sae = W_enc.shape
    sae = SAE(SAEConfig(d_in=d_in, d_sae=d_sae))
    with torch.no_grad():
        sae.W_enc.copy_(W_enc)
        sae.W_dec.copy_(W_dec)
        sae.b_enc.copy_(torch.zeros(d_sae) if b_enc is None else b_enc)
        sae.b_dec.copy_(torch.zeros(d_in) if b_dec is None else b_dec)
    return sae


def exact_sae() -> SAE:
    """relu(x) - relu(-x) = x: features [I, -I] reconstruct every input exactly."""
    eye = torch.eye(D_MLP)
    return sae_with(torch.cat([eye, -eye], 1), torch.cat([eye, -eye], 0))


def test_exact_reconstruction_recovers_all_the_loss(model, tokens):
    m = evaluate_sae(model, exact_sae(), tokens, batch_size=3, progress=False)
    assert m.ce_loss_zero_ablated > m.ce_loss_clean + 0.05, "the baseline gap is real"
    assert m.ce_loss_reconstructed == pytest.approx(m.ce_loss_clean, abs=1e-5)
    assert m.ce_loss_recovered == pytest.approx(1.0, abs=1e-4)
    assert m.ce_loss_recovered_mean_ablation == pytest.approx(1.0, abs=1e-4)
    assert m.explained_variance == pytest.approx(1.0, abs=1e-6)
    assert m.mse == pytest.approx(0.0, abs=1e-9)
    assert m.n_tokens == 120


def test_zero_output_recovers_nothing(model, tokens):
    sae = sae_with(torch.randn(D_MLP, 32), torch.zeros(32, D_MLP))
    m = evaluate_sae(model, sae, tokens, batch_size=4, progress=False)
    assert m.ce_loss_reconstructed == pytest.approx(m.ce_loss_zero_ablated, abs=1e-6)
    assert m.ce_loss_recovered == pytest.approx(0.0, abs=1e-6)
    assert m.explained_variance < 0, "predicting 0 is worse than predicting the mean"


def test_mean_output_recovers_nothing_against_mean_ablation(model, tokens):
    acts = collect_activations(model, tokens, progress=False).reshape(-1, D_MLP)
    sae = sae_with(torch.randn(D_MLP, 32), torch.zeros(32, D_MLP), b_dec=acts.mean(0))
    m = evaluate_sae(model, sae, tokens, batch_size=4, progress=False)
    assert m.ce_loss_reconstructed == pytest.approx(m.ce_loss_mean_ablated, abs=1e-5)
    assert m.ce_loss_recovered_mean_ablation == pytest.approx(0.0, abs=1e-4)
    assert m.explained_variance == pytest.approx(0.0, abs=1e-5)


def test_streamed_metrics_equal_the_metrics_module_on_all_tokens(model, tokens):
    sae = SAE(SAEConfig(d_in=D_MLP, d_sae=48, seed=3))
    with torch.no_grad():
        sae.b_enc.fill_(-0.3)  # some features never fire: dead_fraction is not trivially 0
    m = evaluate_sae(model, sae, tokens, batch_size=3, progress=False)
    x = collect_activations(model, tokens, progress=False).reshape(-1, D_MLP)
    f = sae.encode(x).detach()
    x_hat = sae.decode(f).detach()
    assert m.l0 == pytest.approx(metrics.l0(f), rel=1e-5)
    assert m.mse == pytest.approx(metrics.mse(x, x_hat), rel=1e-4)
    assert m.explained_variance == pytest.approx(metrics.explained_variance(x, x_hat), abs=1e-5)
    assert m.dead_fraction == metrics.dead_fraction(f)
    assert m.dense_fraction == metrics.dense_fraction(f)
    assert 0 < m.dead_fraction < 1


def test_batch_size_does_not_change_the_result(model, tokens):
    sae = SAE(SAEConfig(d_in=D_MLP, d_sae=32, seed=1))
    a = evaluate_sae(model, sae, tokens, batch_size=1, progress=False)
    b = evaluate_sae(model, sae, tokens, batch_size=10, progress=False)
    for key, value in a.as_dict().items():
        # A ratio over a small loss gap magnifies float32 noise from the batch shape.
        tol = 1e-3 if key.startswith("ce_loss_recovered") else 1e-5
        assert getattr(b, key) == pytest.approx(value, rel=tol, abs=1e-6), key


def test_metrics_print_as_a_table(model, tokens):
    m = evaluate_sae(model, exact_sae(), tokens, progress=False)
    text = str(m)
    assert text.splitlines()[0].split() == ["n_tokens", "120"]
    assert "ce_loss_recovered " in text and "100.00%" in text
    assert len(text.splitlines()) == len(m.as_dict())
    with pytest.raises(AttributeError):
        m.l0 = 0.0  # frozen


def test_bad_inputs_are_rejected(model, tokens):
    with pytest.raises(ValueError, match="SAE d_in=8 but blocks.0.mlp.hook_post has width 16"):
        evaluate_sae(model, SAE(SAEConfig(d_in=8, d_sae=16)), tokens, progress=False)
    with pytest.raises(ValueError, match="hook points"):
        evaluate_sae(model, exact_sae(), tokens, hook="blocks.3.nope", progress=False)
    with pytest.raises(ValueError, match="integer tensor"):
        evaluate_sae(model, exact_sae(), tokens.float(), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_sae(model, exact_sae(), tokens, batch_size=0, progress=False)
