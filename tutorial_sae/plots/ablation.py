"""Figures and tables of chapter 6: clamps, attribution vs ablation, activation vs effect, steering."""

from __future__ import annotations

import html
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from tutorial_sae.analysis.ablation import AttributionStudy
from tutorial_sae.analysis.clamps import CLAMP_KINDS, ClampStudy
from tutorial_sae.analysis.steering import Continuation, DoseResponse

ERROR_LABELS = {True: "error term kept", False: "reconstruction only"}


def _setup() -> None:
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")


def clamp_table(study: ClampStudy) -> str:
    """The clamp study as a fixed-width text table, one row per (kind, error term)."""
    lines = [
        f"feature {study.feature}: active on {study.n_active:,} of {study.n_tokens:,} tokens",
        f"{'clamp':<9}{'model input':<21}{'MSE':>8}{'cosine':>8}{'others moved':>14}"
        f"{'share':>7}{'dCE active':>12}{'dCE all':>10}",
    ]
    for e in study.effects:
        lines.append(
            f"{e.kind:<9}{ERROR_LABELS[e.keep_error]:<21}{e.mse:>8.2f}{e.cosine:>8.3f}"
            f"{e.changed:>14.1f}{e.changed_share:>7.0%}{e.dce_active:>+12.4f}{e.dce_overall:>+10.4f}"
        )
    return "\n".join(lines)


def plot_clamp_effects(study: ClampStudy) -> Figure:
    """Two panels per clamp kind: the loss change where the feature fired, and the share of
    the other active features that move when the model's input is re-encoded."""
    _setup()
    kinds = [k for k in CLAMP_KINDS if k != "none"]
    x = np.arange(len(kinds))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for offset, keep_error in ((-0.2, True), (0.2, False)):
        rows = [study.get(k, keep_error) for k in kinds]
        label = ERROR_LABELS[keep_error]
        axes[0].bar(x + offset, [r.dce_active for r in rows], 0.4, label=label)
        axes[1].bar(x + offset, [r.changed_share for r in rows], 0.4, label=label)
    base = study.get("none", False).dce_active
    axes[0].axhline(base, color="grey", ls="--", lw=1, label="reconstruction, no clamp")
    axes[0].set(ylabel="change in next-token loss (nats)", title="Loss where the feature fired")
    axes[1].set(ylabel="share of other active features", title="Other features that move > 10%")
    axes[1].yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    for ax in axes:
        ax.set_xticks(x, kinds)
        ax.set_xlabel("clamp")
        ax.legend(fontsize=8)
    fig.suptitle(f"Clamping feature {study.feature} where it fires")
    fig.tight_layout()
    return fig


def plot_attribution_scatter(study: AttributionStudy, strengths: Sequence[float]) -> Figure:
    """Exact loss change against attribution's estimate, one panel per clamp strength, y = x."""
    _setup()
    fig, axes = plt.subplots(1, len(strengths), figsize=(5.5 * len(strengths), 4.6), squeeze=False)
    rho = study.spearman
    for ax, s in zip(axes[0], strengths, strict=True):
        j = study.strengths.index(s)
        attr, true = study.attributed[j].numpy(), study.true_dce[j].numpy()
        ax.scatter(attr, true, s=12, alpha=0.6)
        lo, hi = min(attr.min(), true.min()), max(attr.max(), true.max())
        ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=1, label="y = x")
        what = "zero-ablation" if s == 1.0 else f"f -> {1 - s:g} f"
        ax.set(
            xlabel="attribution estimate of the loss change (nats)",
            ylabel="exact loss change (nats)",
            title=f"{what}: Spearman {rho[j]:.3f}",
        )
        ax.legend(fontsize=8)
    fig.suptitle(f"Attribution vs exact ablation, {len(study.features)} most frequent features")
    fig.tight_layout()
    return fig


def plot_spearman_curve(study: AttributionStudy) -> Figure:
    """Rank agreement between attribution and exact ablation, from a small clamp to zero."""
    _setup()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(study.strengths, study.spearman, marker="o")
    ax.set(
        xlabel="clamp strength s (f -> (1 - s) f; 1 = zero-ablation)",
        ylabel="Spearman correlation",
        title="Where a first-order estimate stops ranking right",
    )
    fig.tight_layout()
    return fig


def plot_activation_vs_effect(study: AttributionStudy, k: int = 10) -> Figure:
    """Mean activation against the full ablation's loss change; top-k of each marked, and the
    features whose removal lowers the loss where they fire."""
    _setup()
    overlap = study.overlap(k)
    features = study.features.tolist()
    act, effect = study.mean_act.numpy(), study.true_dce[-1].numpy()
    helps = study.dce_active.numpy() < 0
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter(act[~helps], effect[~helps], s=12, alpha=0.5, label="removal hurts")
    ax.scatter(act[helps], effect[helps], s=12, alpha=0.7, color="C3", label="removal helps")
    for name, top, marker in (
        ("activation", overlap.by_first, "s"),
        ("effect", overlap.by_second, "D"),
    ):
        idx = [features.index(f) for f in top]
        ax.scatter(act[idx], effect[idx], s=70, facecolors="none", edgecolors="k", marker=marker,
                   label=f"top {k} by {name}")  # fmt: skip
    ax.axhline(0, color="grey", lw=1)
    ax.set(
        xlabel="mean activation over all tokens",
        ylabel="loss change when zero-ablated (nats, mean over tokens)",
        title=f"Most active is not most important: {overlap.shared} shared of {overlap.union}",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_dose_response(curves: Sequence[DoseResponse]) -> Figure:
    """Script-token mass and loss change against the steering dose, one line per curve."""
    _setup()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for c in curves:
        label = f"feature {c.feature} ({c.mode})"
        axes[0].plot(c.multiples, c.mass.numpy(), marker="o", label=label)
        axes[1].plot(c.multiples, c.delta_ce.numpy(), marker="o", label=label)
    axes[0].axhline(curves[0].clean_mass, color="grey", ls="--", lw=1, label="clean model")
    axes[0].set(
        ylabel=f"next-token mass on {curves[0].script.capitalize()}-script tokens",
        title="What the model now predicts",
        ylim=(-0.02, 1.02),
    )
    axes[1].set(ylabel="change in next-token loss (nats)", title="What it costs on the prompts")
    for ax in axes:
        ax.set_xlabel("dose (multiples of the feature's max activation)")
        ax.legend(fontsize=8)
    fig.suptitle("Steering English prompts with a script feature")
    fig.tight_layout()
    return fig


def continuations_html(rows: Sequence[Continuation]):
    """The continuations as an HTML table for the notebook (Arabic renders as text)."""
    from IPython.display import HTML

    body = "".join(
        f"<tr><td>{r.multiple:g}</td><td dir='auto'>{html.escape(r.text)!s}</td></tr>" for r in rows
    )
    prompt = html.escape(rows[0].prompt) if rows else ""
    return HTML(
        f"<p>Prompt: <code>{prompt}</code></p><table><tr><th>dose</th>"
        f"<th>greedy continuation</th></tr>{body}</table>"
    )
