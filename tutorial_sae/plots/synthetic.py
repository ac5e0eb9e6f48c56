"""Chapter 2's figures: an SAE trained on synthetic data, its recovery, and the decoder-norm variants."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import matplotlib.pyplot as plt
from jaxtyping import Float
from matplotlib.figure import Figure
from torch import Tensor

from tutorial_sae.core.decoder_norms import SafeguardComparison
from tutorial_sae.core.synthetic import RECOVERY_THRESHOLD
from tutorial_sae.utils import check_real, check_tensor


class _Log(Protocol):
    """What the figure reads from a `training.TrainLog` (plots may not import training)."""

    step: Sequence[float]
    mse: Sequence[float]
    l1: Sequence[float]
    l0: Sequence[float]


def plot_training_curves(log: _Log, true_l0: float) -> Figure:
    """The loss parts (left) and L0 against the data's true L0 (right) during training."""
    fig, (ax_loss, ax_l0) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(log.step, log.mse, label="squared error")
    ax_loss.plot(log.step, log.l1, label="weighted L1 × l1_coeff")
    ax_loss.set(
        title="Loss parts during training", xlabel="step", ylabel="loss (batch mean)", yscale="log"
    )
    ax_loss.legend()
    ax_l0.plot(log.step, log.l0, label="SAE")
    ax_l0.axhline(true_l0, color="k", ls="--", lw=1, label="true features")
    ax_l0.set(title="Active features per sample (L0)", xlabel="step", ylabel="L0")
    ax_l0.legend()
    fig.tight_layout()
    return fig


def plot_recovery(
    best_cos: Float[Tensor, " n_features"], threshold: float = RECOVERY_THRESHOLD
) -> Figure:
    """Histogram of each true feature's best cosine with a decoder direction, threshold dashed."""
    check_tensor(best_cos, "best_cos", 1)
    check_real(threshold, "threshold", -1.0, 1.0)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.hist(best_cos, bins=50, range=(0, 1))
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"recovered: cos ≥ {threshold:g}")
    ax.set(
        title="Best match for each true feature",
        xlabel="max cosine with a decoder direction",
        ylabel="number of true features",
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


# (NormTrace field, panel title, y label, log scale)
_TRACE_PANELS = (
    ("mean_decoder_norm", "Mean decoder-row norm", "mean ‖W_dec,i‖", False),
    ("max_norm_error", "Largest distance from unit norm", "max |‖W_dec,i‖ − 1|", True),
    ("mean_active_code", "Mean activation of firing features", "f_i where f_i > 0", False),
    ("l0", "Active features per sample (L0)", "L0", False),
)


def plot_norm_traces(comparison: SafeguardComparison) -> Figure:
    """Decoder norms, their drift from 1, active code size and L0 of each variant (2 x 2 panels)."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.8))
    for ax, (field, title, ylabel, log) in zip(axes.flat, _TRACE_PANELS, strict=True):
        for name, trace in comparison.traces.items():
            ax.plot(trace.step, getattr(trace, field), label=name)
        ax.set(title=title, xlabel="step", ylabel=ylabel)
        if log:
            ax.set_yscale("log")
    axes[0, 0].legend()
    fig.tight_layout()
    return fig


def safeguard_table(comparison: SafeguardComparison) -> str:
    """Final decoder norm, drift, active code, L0 and recovered share per variant, as text rows."""
    rows = ["variant          |W_dec,i|  max|norm-1|   code    L0  recovered"]
    for name, t in comparison.traces.items():
        rows.append(
            f"{name:<16} {t.mean_decoder_norm[-1]:>9.2f} {t.max_norm_error[-1]:>12.2e} "
            f"{t.mean_active_code[-1]:>6.3f} {t.l0[-1]:>5.1f} {comparison.recovered[name]:>10.0%}"
        )
    return "\n".join(rows)
