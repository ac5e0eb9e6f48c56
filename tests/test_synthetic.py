"""Synthetic sparse data and feature recovery."""

import pytest
import torch

from tutorial_sae import SAE, SAEConfig, feature_recovery, make_sparse_dataset


def test_dataset_is_a_sparse_mix_of_unit_features():
    ds = make_sparse_dataset(n_features=50, d=10, sparsity=0.9, n_samples=4000, seed=1)
    assert ds.x.shape == (4000, 10) and ds.codes.shape == (4000, 50)
    torch.testing.assert_close(ds.dictionary.norm(dim=-1), torch.ones(50))
    torch.testing.assert_close(ds.x, ds.codes @ ds.dictionary)
    active = (ds.codes > 0).float().mean()
    assert 0.08 < active < 0.12, "about 1 - sparsity of the features are on"
    again = make_sparse_dataset(n_features=50, d=10, sparsity=0.9, n_samples=4000, seed=1)
    torch.testing.assert_close(ds.x, again.x)


def test_recovery_is_one_for_an_sae_holding_the_true_dictionary():
    ds = make_sparse_dataset(n_features=6, d=4, sparsity=0.5, n_samples=10)
    sae = SAE(SAEConfig(d_in=4, d_sae=8))
    with torch.no_grad():
        sae.W_dec[:6] = ds.dictionary
    torch.testing.assert_close(feature_recovery(sae, ds.dictionary), torch.ones(6))
    random_sae = SAE(SAEConfig(d_in=4, d_sae=8, seed=5))
    assert feature_recovery(random_sae, ds.dictionary).mean() < 0.99


def test_bad_arguments():
    with pytest.raises(ValueError, match="sparsity"):
        make_sparse_dataset(4, 2, sparsity=1.0)
    with pytest.raises(ValueError, match="n_features"):
        make_sparse_dataset(0, 2, sparsity=0.5)
    with pytest.raises(ValueError, match=r"\[n_features, 4\]"):
        feature_recovery(SAE(SAEConfig(d_in=4, d_sae=8)), torch.zeros(3, 5))
