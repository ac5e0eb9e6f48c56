"""Figures of chapter 8: causal-tracing heatmaps and the edit-score comparison."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from tutorial_sae.analysis.tracing import AverageTrace, TraceResult

KIND_TITLES = {
    "resid": "restore the residual stream",
    "mlp": "restore one MLP output",
    "attn": "restore one attention output",
}
KIND_CMAPS = {"resid": "Purples", "mlp": "Greens", "attn": "Reds"}


def _heatmaps(grids: dict, xlabels: Sequence[str], title: str, value: str, xlabel: str) -> Figure:
    kinds = list(grids)
    fig, axes = plt.subplots(len(kinds), 1, figsize=(8, 1.6 + 1.3 * len(kinds)), squeeze=False)
    for ax, kind in zip(axes[:, 0], kinds, strict=True):
        grid = grids[kind]
        im = ax.imshow(grid, cmap=KIND_CMAPS[kind], aspect="auto", vmin=min(0.0, float(grid.min())))
        ax.set_xticks(range(len(xlabels)), xlabels, rotation=20)
        ax.set_yticks(range(grid.shape[0]))
        ax.set_ylabel("layer")
        ax.set_title(KIND_TITLES[kind], fontsize=10)
        fig.colorbar(im, ax=ax, label=value, fraction=0.04)
    axes[-1, 0].set_xlabel(xlabel)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_trace(trace: TraceResult, labels: Sequence[str], title: str | None = None) -> Figure:
    """One fact: P(true object) when one state is restored, per (layer, token); subject marked *."""
    start, end = trace.subject_pos
    xlabels = [f"{w}*" if start <= i < end else w for i, w in enumerate(labels)]
    title = (
        title or f"Causal trace (clean p={trace.p_clean:.2f}, corrupted p={trace.p_corrupt:.2f})"
    )
    return _heatmaps(trace.restored, xlabels, title, "p(object)", "token (* = subject)")


def plot_average_trace(avg: AverageTrace) -> Figure:
    """Indirect effect averaged over facts, per (layer, token category)."""
    title = (
        f"Average indirect effect over {avg.n_facts} facts (total effect {avg.total_effect:.2f})"
    )
    return _heatmaps(avg.indirect, list(avg.categories), title, "indirect effect", "token category")


def plot_edit_scores(rows: Sequence[dict]) -> Figure:
    """Grouped bars: each method's efficacy, paraphrase, neighbourhood, other relations, score."""
    import pandas as pd
    import seaborn as sns

    metrics = ["efficacy", "paraphrase", "neighbourhood", "other_relations", "score"]
    long = pd.DataFrame(
        [
            {"method": r["method"], "metric": m.replace("_", " "), "value": r[m]}
            for r in rows
            for m in metrics
        ]
    )
    fig, ax = plt.subplots(figsize=(8, 3.6))
    sns.barplot(long, x="metric", y="value", hue="method", ax=ax)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("CounterFact-style score")
    ax.set_ylabel("mean over edits")
    ax.set_title("Three ways to rewrite a fact")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, title="method")
    fig.tight_layout()
    return fig


def scores_table(rows: Sequence[dict], index: str = "method"):
    """The rows (dicts of scores) as a DataFrame indexed by `index`, rounded for display."""
    import pandas as pd

    return pd.DataFrame(list(rows)).set_index(index).round(3)
