"""Chapter 1's figures and the numbers behind them: GELU's dip, L1's exact zeros, the toy's arrows."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from tutorial_sae.core.math_toys import (
    ToyConfig,
    ToyModel,
    activation_curves,
    shrinkage_comparison,
    soft_threshold,
)
from tutorial_sae.plots.maths import (
    plot_activations,
    plot_neuron_weights,
    plot_shrinkage,
    plot_superposition,
)


def assert_labelled(fig, n_panels: int) -> None:
    """Every panel has a title and both axis labels; at most two panels share a row."""
    assert len(fig.axes) == n_panels
    rows: dict[float, int] = {}
    for ax in fig.axes:
        assert ax.get_title(), "an axis has no title"
        assert ax.get_xlabel() and ax.get_ylabel(), f"axis {ax.get_title()!r} lacks a label"
        row = round(ax.get_position().y0, 2)
        rows[row] = rows.get(row, 0) + 1
    assert max(rows.values()) <= 2, f"more than two panels in a row: {rows}"
    plt.close(fig)


def toy(sparsity: float, W: list[list[float]]) -> ToyModel:
    W = torch.tensor(W)
    cfg = ToyConfig(n_features=W.shape[1], d_hidden=W.shape[0], sparsity=sparsity)
    return ToyModel(cfg=cfg, W=W, b=torch.zeros(W.shape[1]), losses=[])


PENTAGON = toy(
    0.9,
    [
        [math.cos(2 * math.pi * i / 5) for i in range(5)],
        [math.sin(2 * math.pi * i / 5) for i in range(5)],
    ],
)
# Features 0 and 1 on the axes, 2-4 dropped (zero columns).
DENSE = toy(0.0, [[1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 0.0]])


def test_gelu_minimum_and_slope_match_the_closed_form():
    curves = activation_curves()
    # GELU's minimum is -0.16997 at x = -0.7518; the grid has spacing 0.02.
    assert curves.gelu_min == pytest.approx(-0.16997, abs=1e-4)
    assert curves.gelu_argmin == pytest.approx(-0.75, abs=0.02)
    phi = math.exp(-2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + math.erf(-2 / math.sqrt(2)))
    assert curves.gelu_slope_at(-2) == pytest.approx(cdf - 2 * phi, abs=1e-5)
    assert curves.closed_form_gap < 1e-5
    assert torch.equal(curves.relu_slope, (curves.x > 0).float())


def test_gelu_and_relu_differ_on_a_symmetric_interval_that_shrinks_with_tol():
    curves = activation_curves()
    lo, hi = curves.differ_interval(0.05)
    # The slope gap d(x) = Phi(x) + x phi(x) - H(x) is odd, so the interval is symmetric.
    assert lo == pytest.approx(-hi, abs=0.021)
    assert 2.2 < hi < 2.5
    lo_loose, hi_loose = curves.differ_interval(0.2)
    assert lo < lo_loose < hi_loose < hi
    with pytest.raises(ValueError, match="agree"):
        curves.differ_interval(10.0)
    with pytest.raises(ValueError, match="lo < hi"):
        activation_curves(1.0, -1.0)


def test_l1_zeros_the_mass_within_lambda_and_l2_zeros_nothing():
    shrink = shrinkage_comparison(lam=1.0, n_samples=20_000, seed=3)
    # P(|y| <= 1) for y ~ N(0, 1) is erf(1 / sqrt 2) = 0.6827; the sample's sd is ~0.0033.
    assert shrink.l1_zeros_at_lam == pytest.approx(math.erf(1 / math.sqrt(2)), abs=0.015)
    assert shrink.l2_zeros_at_lam == 0.0
    assert torch.all(shrink.l2_zeros == 0)
    assert shrink.l1_zeros[0] == 0.0 and torch.all(shrink.l1_zeros.diff() >= 0)
    assert torch.equal(shrink.l1_map, soft_threshold(shrink.y, 1.0))
    assert torch.all(shrink.l1_map[shrink.y.abs() <= 1.0] == 0)
    with pytest.raises(ValueError, match="lam >= 0"):
        shrinkage_comparison(lam=-1.0)


def test_activation_and_shrinkage_figures_have_two_labelled_panels():
    assert_labelled(plot_activations(activation_curves()), 2)
    fig = plot_shrinkage(shrinkage_comparison(n_samples=500))
    assert "500" in fig.axes[1].get_title()
    assert_labelled(fig, 2)


def test_superposition_draws_one_arrow_per_stored_feature_two_panels_a_row():
    fig = plot_superposition([DENSE, toy(0.7, PENTAGON.W.tolist()), PENTAGON])
    labels = [[t.get_text() for t in ax.texts if t.get_text()] for ax in fig.axes]
    assert labels == [["0", "1"], ["0", "1", "2", "3", "4"], ["0", "1", "2", "3", "4"]]
    assert fig.axes[0].get_title() == "S = 0: 2 of 5 stored"
    # The lone third panel sits below, centred under the first two.
    top, bottom = fig.axes[0].get_position(), fig.axes[2].get_position()
    assert bottom.y1 < top.y0 and top.x0 < bottom.x0
    assert_labelled(fig, 3)
    assert_labelled(plot_superposition([PENTAGON] * 4), 4)
    with pytest.raises(ValueError, match="d_hidden=2"):
        plot_superposition([])


def test_neuron_weights_has_a_bar_per_neuron_and_feature():
    fig = plot_neuron_weights(PENTAGON)
    heights = sorted(round(p.get_height(), 5) for p in fig.axes[0].patches)
    assert len(heights) == 10
    assert heights == sorted(round(v, 5) for v in PENTAGON.W.flatten().tolist())
    assert "0.9" in fig.axes[0].get_title()
    assert_labelled(fig, 1)
