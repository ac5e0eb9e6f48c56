"""Chapter 1's maths: GELU, norms, soft thresholding and the superposition toy."""

import math

import pytest
import torch

from tutorial_sae.core.math_toys import (
    ToyConfig,
    gelu_exact,
    gelu_grad,
    gelu_tanh,
    norms,
    ridge_shrink,
    soft_threshold,
    train_toy_model,
)


def test_gelu_exact_matches_torch_erf_gelu():
    x = torch.linspace(-8, 8, 1001)
    assert torch.allclose(gelu_exact(x), torch.nn.functional.gelu(x), atol=1e-6)


def test_gelu_tanh_matches_torch_tanh_gelu_and_differs_from_exact():
    x = torch.linspace(-4, 4, 801)
    assert torch.allclose(gelu_tanh(x), torch.nn.functional.gelu(x, approximate="tanh"), atol=1e-6)
    assert (gelu_tanh(x) - gelu_exact(x)).abs().max() > 1e-4


def test_gelu_grad_matches_autograd():
    x = torch.linspace(-5, 5, 501, dtype=torch.float64, requires_grad=True)
    (auto,) = torch.autograd.grad(gelu_exact(x).sum(), x)
    assert torch.allclose(gelu_grad(x.detach()), auto, atol=1e-12)


def test_gelu_minimum_is_about_minus_0_17_near_minus_0_75():
    x = torch.linspace(-3, 0, 30001, dtype=torch.float64)
    y = gelu_exact(x)
    assert y.min().item() == pytest.approx(-0.16997, abs=1e-4)
    assert x[y.argmin()].item() == pytest.approx(-0.7518, abs=1e-3)


def test_norms_on_hand_computed_rows():
    x = torch.tensor([[3.0, -4.0, 0.0], [0.0, 0.0, 0.0]])
    result = norms(x)
    assert result.l0.tolist() == [2.0, 0.0]
    assert result.l1.tolist() == [7.0, 0.0]
    assert result.l2.tolist() == [5.0, 0.0]


def test_norms_rejects_a_vector_without_batch_dimension():
    with pytest.raises(ValueError, match=r"\[batch, d\]"):
        norms(torch.ones(3))


def test_soft_threshold_zeroes_small_entries_and_shrinks_the_rest():
    x = torch.tensor([-2.0, -0.5, -0.1, 0.0, 0.3, 1.5])
    assert soft_threshold(x, 0.5).tolist() == [-1.5, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_soft_threshold_minimises_the_l1_penalised_objective():
    y, lam = torch.tensor(1.3), 0.4
    grid = torch.linspace(-3, 3, 600_001, dtype=torch.float64)
    objective = 0.5 * (grid - y) ** 2 + lam * grid.abs()
    assert soft_threshold(y, lam).item() == pytest.approx(grid[objective.argmin()].item(), abs=1e-4)


def test_ridge_shrink_never_gives_zero_for_nonzero_input():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    assert (ridge_shrink(x, 5.0) != 0).all()
    assert torch.allclose(ridge_shrink(x, 0.5), x / 2)


@pytest.mark.parametrize("bad", [-0.1, -1.0])
def test_penalties_reject_negative_strength(bad):
    with pytest.raises(ValueError):
        soft_threshold(torch.ones(2), bad)
    with pytest.raises(ValueError):
        ridge_shrink(torch.ones(2), bad)


def test_toy_config_rejects_sparsity_of_one():
    with pytest.raises(ValueError, match="sparsity"):
        ToyConfig(sparsity=1.0)


def test_dense_toy_stores_only_as_many_features_as_dimensions():
    toy = train_toy_model(ToyConfig(sparsity=0.0, n_steps=1500, seed=0))
    assert toy.n_represented == 2
    # The two it keeps are the two most important ones, on nearly orthogonal axes.
    kept = toy.feature_norms.argsort(descending=True)[:2].sort().values.tolist()
    assert kept == [0, 1]
    w0, w1 = toy.W[:, 0], toy.W[:, 1]
    assert abs(float(w0 @ w1) / float(w0.norm() * w1.norm())) < 0.1


def test_sparse_toy_stores_all_five_features_in_two_dimensions():
    toy = train_toy_model(ToyConfig(sparsity=0.9, n_steps=1500, seed=0))
    assert toy.n_represented == 5
    assert toy.losses[-1] < toy.losses[0]
    # Every hidden unit reads several features: the neurons are polysemantic.
    assert (toy.neuron_loadings() >= 3).all()
    # Five directions spread around the circle: consecutive angles near 72 degrees.
    angles = torch.atan2(toy.W[1], toy.W[0]).sort().values
    gaps = torch.diff(torch.cat([angles, angles[:1] + 2 * math.pi]))
    assert gaps.min() > math.radians(50)


def test_toy_training_is_reproducible_and_restores_thread_count():
    threads = torch.get_num_threads()
    a = train_toy_model(ToyConfig(sparsity=0.7, n_steps=50, seed=3))
    b = train_toy_model(ToyConfig(sparsity=0.7, n_steps=50, seed=3))
    assert torch.equal(a.W, b.W)
    assert torch.get_num_threads() == threads
