"""The ablated SAEs of chapter 2: each safeguard of the decoder norms does what the book says."""

import pytest
import torch

from tutorial_sae.core.decoder_norms import SafeguardConfig, VariantSAE, train_tracing_norms
from tutorial_sae.core.sae import SAE, SAEConfig
from tutorial_sae.core.synthetic import make_sparse_dataset

CFG = SAEConfig(d_in=16, d_sae=32, l1_coeff=0.1, seed=0)
NONE = SafeguardConfig(weighted_l1=False, project_grad=False, renormalise=False)


@pytest.fixture(scope="module")
def data():
    return make_sparse_dataset(24, 16, 0.9, n_samples=4000, seed=0)


def test_all_safeguards_equal_the_plain_sae(data):
    x = data.x[:64]
    variant, plain = VariantSAE(CFG, SafeguardConfig()), SAE(CFG)
    assert torch.equal(variant.loss(x).total, plain.loss(x).total)


def test_unweighted_l1_ignores_decoder_norms(data):
    x = data.x[:64]
    sae = VariantSAE(CFG, SafeguardConfig(weighted_l1=False))
    with torch.no_grad():
        sae.W_dec.mul_(3.0)
    out = sae.loss(x)
    assert torch.allclose(out.l1, CFG.l1_coeff * out.feature_acts.sum(-1).mean())
    assert torch.allclose(out.total, out.mse + out.l1)


def test_full_safeguards_keep_unit_norms(data):
    trace = train_tracing_norms(VariantSAE(CFG, SafeguardConfig()), data.x, 100, batch_size=64)
    assert max(trace.max_norm_error) < 1e-5


def test_projection_without_renormalisation_lets_norms_drift(data):
    sae = VariantSAE(CFG, SafeguardConfig(renormalise=False))
    trace = train_tracing_norms(sae, data.x, 300, batch_size=64)
    assert trace.max_norm_error[-1] > 1e-3
    assert trace.mean_decoder_norm[-1] > 1.0


def test_without_safeguards_decoder_grows_and_codes_shrink(data):
    with_all = train_tracing_norms(VariantSAE(CFG, SafeguardConfig()), data.x, 600, batch_size=64)
    without = train_tracing_norms(VariantSAE(CFG, NONE), data.x, 600, batch_size=64)
    assert without.mean_decoder_norm[-1] > 1.4
    assert without.mean_active_code[-1] < 0.75 * with_all.mean_active_code[-1]


def test_trace_records_every_record_every_steps(data):
    trace = train_tracing_norms(
        VariantSAE(CFG, SafeguardConfig()), data.x, 60, batch_size=32, record_every=25
    )
    assert trace.step == [25, 50, 60]
    assert len(trace.l0) == len(trace.mse) == len(trace.l1) == 3


def test_trace_rejects_too_few_samples():
    with pytest.raises(ValueError, match="batch_size=256"):
        train_tracing_norms(SAE(CFG), torch.zeros(10, 16), 5)
