"""Each metric against a value worked out by hand."""

import pytest
import torch

from tutorial_sae import (
    DensityHistogram,
    dead_fraction,
    dense_fraction,
    density_histogram,
    explained_variance,
    feature_density,
    firing_counts,
    l0,
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
    assert firing_counts(f).tolist() == [10, 1, 5, 0]


def test_metric_inputs_are_checked():
    with pytest.raises(ValueError, match="same shape"):
        mse(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="at least 2 tokens"):
        explained_variance(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="at least one token"):
        feature_density(torch.zeros(0, 3))


def test_density_histogram_counts_every_feature_once():
    counts = torch.tensor([0, 0, 1, 100, 20_000, 100_000])
    h = density_histogram(counts, n_tokens=100_000, bins=10)
    assert h.dead == 2 and h.n_features == 6
    assert sum(h.counts) == 4
    assert h.counts[0] == 1 and h.counts[-1] == 1  # one firing in 100k lands in the first bin
    assert h.edges[0] == -5.0 and h.edges[-1] == 0.0 and len(h.edges) == 11


def test_density_histogram_rejects_bad_input():
    with pytest.raises(ValueError, match="1-D integer firing counts"):
        density_histogram(torch.zeros(2, 3, dtype=torch.int64), n_tokens=10)
    with pytest.raises(ValueError, match="1-D integer firing counts"):
        density_histogram(torch.tensor([0.5, 0.1]), n_tokens=10)
    with pytest.raises(ValueError, match="largest count 11"):
        density_histogram(torch.tensor([11, 0]), n_tokens=10)
    with pytest.raises(ValueError, match="len\\(edges\\) == len\\(counts\\) \\+ 1"):
        DensityHistogram([0.0, 1.0], [1, 2], dead=0, n_tokens=5)


def test_metrics_refuse_empty_constant_and_non_finite_input():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="at least one row"):
        l0(torch.zeros(0, 5))
    with pytest.raises(ValueError, match="must be finite"):
        mse(x, torch.full_like(x, float("inf")))
    with pytest.raises(ValueError, match="must be finite"):
        l0(torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="does not vary"):
        explained_variance(torch.ones(4, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="floating-point"):
        mse(torch.ones(2, 2, dtype=torch.long), torch.ones(2, 2, dtype=torch.long))
