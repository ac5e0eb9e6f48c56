"""Chapter 1's figures: ReLU vs GELU, L1 vs L2 shrinkage, and the superposition toy models."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from tutorial_sae.core.math_toys import ActivationCurves, Shrinkage, ToyModel

# Below this column norm a toy feature is dropped: an arrow would be a dot.
DROPPED_NORM = 0.1


def plot_activations(curves: ActivationCurves) -> Figure:
    """ReLU and GELU side by side: their values (left) and their autograd slopes (right)."""
    fig, (ax_val, ax_grad) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_val.plot(curves.x, curves.relu, label="ReLU")
    ax_val.plot(curves.x, curves.gelu, label="GELU")
    ax_val.set(title="Activation values", xlabel="input x", ylabel="output")
    ax_grad.plot(curves.x, curves.relu_slope, label="ReLU")
    ax_grad.plot(curves.x, curves.gelu_slope, label="GELU")
    ax_grad.set(title="Gradients (autograd)", xlabel="input x", ylabel="d output / dx")
    for ax in (ax_val, ax_grad):
        ax.axhline(0, color="grey", lw=0.5)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_shrinkage(shrink: Shrinkage) -> Figure:
    """The L1 and L2 minimisers z*(y) (left) and the share of exact zeros against λ (right)."""
    fig, (ax_map, ax_zero) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_map.plot(shrink.y, shrink.y, "k--", lw=0.8, label="no penalty")
    ax_map.plot(shrink.y, shrink.l1_map, label=f"L1 penalty, λ={shrink.lam:g}")
    ax_map.plot(shrink.y, shrink.l2_map, label=f"L2 penalty, λ={shrink.lam:g}")
    ax_map.set(title="Best z for a target y", xlabel="target y", ylabel="minimiser z*")
    ax_map.legend()
    ax_zero.plot(shrink.strengths, shrink.l1_zeros, label="L1 (soft threshold)")
    ax_zero.plot(shrink.strengths, shrink.l2_zeros, label="L2 (shrinkage)")
    ax_zero.set(
        title=f"Exact zeros among {shrink.n_samples:,} N(0, 1) targets",
        xlabel="penalty strength λ",
        ylabel="fraction exactly zero",
    )
    ax_zero.legend()
    fig.tight_layout()
    return fig


def _feature_colours(n_features: int):
    return plt.cm.viridis(torch.linspace(0, 0.9, n_features).numpy())


def _draw_columns(ax, toy: ToyModel) -> None:
    colours = _feature_colours(toy.cfg.n_features)
    for i, (wx, wy) in enumerate(toy.W.T.tolist()):
        if toy.feature_norms[i] < DROPPED_NORM:
            continue
        ax.annotate(
            "",
            xy=(wx, wy),
            xytext=(0, 0),
            arrowprops={"arrowstyle": "->", "color": colours[i], "lw": 2},
        )
        ax.text(1.15 * wx, 1.15 * wy, str(i), color=colours[i], ha="center", va="center")
    ax.set(
        title=f"S = {toy.cfg.sparsity:g}: {toy.n_represented} of {toy.cfg.n_features} stored",
        xlabel="hidden dimension 0",
        ylabel="hidden dimension 1",
        xlim=(-1.5, 1.5),
        ylim=(-1.5, 1.5),
        aspect="equal",
    )


def plot_superposition(toys: Sequence[ToyModel]) -> Figure:
    """Each toy's columns W_i as arrows in its 2-D hidden space, two panels a row, one per sparsity."""
    if not toys or any(toy.cfg.d_hidden != 2 for toy in toys):
        raise ValueError(
            f"expected at least one toy model with d_hidden=2, got "
            f"{[toy.cfg.d_hidden for toy in toys]}"
        )
    n_rows = math.ceil(len(toys) / 2)
    fig = plt.figure(figsize=(8, 3.9 * n_rows + 0.5))
    # Four grid columns per row, a panel spans two: a lone last panel then sits in the middle.
    grid = fig.add_gridspec(n_rows, 4)
    for k, toy in enumerate(toys):
        row, col = divmod(k, 2)
        lone = k == len(toys) - 1 and col == 0
        cols = slice(1, 3) if lone else slice(2 * col, 2 * col + 2)
        _draw_columns(fig.add_subplot(grid[row, cols]), toy)
    fig.suptitle("Columns of W: where each feature is stored (darker = more important)")
    fig.tight_layout()
    return fig


def plot_neuron_weights(toy: ToyModel) -> Figure:
    """A bar per (feature, neuron): the weight W[j, i] with which hidden unit j reads feature i."""
    features = torch.arange(toy.cfg.n_features)
    width = 0.8 / toy.cfg.d_hidden
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for j, row in enumerate(toy.W):
        offset = width * (j - (toy.cfg.d_hidden - 1) / 2)
        ax.bar(features + offset, row, width=width, label=f"neuron {j}")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(
        title=f"Each neuron's weight on each feature (S = {toy.cfg.sparsity:g})",
        xlabel="feature i",
        ylabel="weight W[j, i]",
        xticks=features.tolist(),
    )
    ax.legend()
    fig.tight_layout()
    return fig
