"""Each metric against a value worked out by hand."""

import pytest
import torch

from tutorial_sae import (
    dead_fraction,
    dense_fraction,
    explained_variance,
    feature_density,
    l0,
    log10_density,
    mse,
)


def test_l0_counts_nonzeros_per_token():
    f = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 0.5]])
    assert l0(f) == pytest.approx(1.5)


def test_mse_sums_over_features_and_averages_over_tokens():
    x = torch.zeros(2, 3)
    x_hat = torch.tensor([[1.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    assert mse(x, x_hat) == pytest.approx((2 + 4) / 2)


def test_explained_variance_is_one_for_perfect_and_zero_for_the_mean():
    x = torch.randn(100, 4)
    assert explained_variance(x, x) == pytest.approx(1.0)
    assert explained_variance(x, x.mean(0).expand_as(x)) == pytest.approx(0.0, abs=1e-6)


def test_density_dead_and_dense_fractions():
    f = torch.zeros(10, 4)
    f[:, 0] = 1.0  # fires on every token: dense
    f[0, 1] = 1.0  # fires on 10%: not dense (needs more than 10%)
    f[:5, 2] = 1.0  # 50%: dense
    density = feature_density(f)
    torch.testing.assert_close(density, torch.tensor([1.0, 0.1, 0.5, 0.0]))
    assert dead_fraction(f) == pytest.approx(0.25)
    assert dead_fraction(density) == pytest.approx(0.25)
    assert dense_fraction(f) == pytest.approx(0.5)
    assert log10_density(density)[3] == pytest.approx(-10.0)


def test_metric_inputs_are_checked():
    with pytest.raises(ValueError, match="same shape"):
        mse(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="at least 2 tokens"):
        explained_variance(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="at least one token"):
        feature_density(torch.zeros(0, 3))
