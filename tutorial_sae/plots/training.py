"""Figures and the l1_coeff widget of chapter 3 (training curves, dead features, l1 sweep)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from tutorial_sae.analysis.sweeps import DeadFeatureComparison, L1Sweep, SweepPoint
from tutorial_sae.core.metrics import DENSE_THRESHOLD
from tutorial_sae.plots.static_widget import frame_slider


class _LogRecords(Protocol):
    """What the figures read from a `training.TrainLog`: one list per logged quantity."""

    step: Sequence[float]


# A TrainLog, or its lists keyed by name (as in the precomputed JSON files).
Log = _LogRecords | Mapping[str, Sequence[float]]
# Plain numbers (50, 200) on log axes instead of matplotlib's 5 x 10^1.
PLAIN = FuncFormatter(lambda value, _: f"{value:g}")


def _plain_log_axis(ax, which: str) -> None:
    """Label a log axis with plain numbers at 1, 2 and 5 times each power of ten."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(PLAIN)
    axis.set_minor_formatter(NullFormatter())


METHOD_COLOURS = {"none": "tab:gray", "ghost": "tab:blue", "resample": "tab:orange"}
TABLE_COLUMNS = (
    ("l0", "L0", "{:.1f}"),
    ("explained_variance", "expl. var.", "{:.1%}"),
    ("ce_loss_recovered", "CE recovered", "{:.1%}"),
    ("dead_fraction", "dead", "{:.1%}"),
    ("dense_fraction", "dense", "{:.1%}"),
)


def _series(log: Log, name: str) -> list[float]:
    values = log[name] if isinstance(log, Mapping) else getattr(log, name)
    if len(values) != len(_steps(log)):
        raise ValueError(
            f"log field {name!r} has {len(values)} entries, step has {len(_steps(log))}"
        )
    return list(values)


def _steps(log: Log) -> list[float]:
    steps = log["step"] if isinstance(log, Mapping) else log.step
    if len(steps) == 0:
        raise ValueError("expected a log with at least one record, got an empty log")
    return list(steps)


def _two_over_one(fig: Figure) -> list:
    """Three axes: two side by side, one spanning the row below (at most two per row)."""
    grid = fig.add_gridspec(2, 2)
    return [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])]


def plot_training_log(log: Log, title: str = "Training an SAE") -> Figure:
    """Four panels over steps: the loss parts, L0, the dead fraction and explained variance."""
    steps = _steps(log)
    # Two panels per row: the text column of the book holds no more without shrinking labels.
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    (ax_loss, ax_l0), (ax_dead, ax_ev) = axes
    ax_loss.plot(steps, _series(log, "mse"), label="squared error")
    ax_loss.plot(steps, _series(log, "l1"), label="L1 × l1_coeff")
    # The ghost term is 0 while no feature is dead (a gap on a log axis), and by construction
    # equals the squared error when it is on: dots show when it was on.
    ghost = [v if v > 0 else float("nan") for v in _series(log, "ghost")]
    if any(v == v for v in ghost):
        ax_loss.plot(steps, ghost, ".", color="tab:green", label="ghost (when on)")
    ax_loss.set(title="Loss parts", xlabel="step", ylabel="loss (batch mean)", yscale="log")
    _plain_log_axis(ax_loss, "y")
    ax_loss.legend()
    ax_l0.plot(steps, _series(log, "l0"))
    ax_l0.set(title="Active features per token", xlabel="step", ylabel="L0", yscale="log")
    _plain_log_axis(ax_l0, "y")
    ax_dead.plot(steps, _series(log, "dead_fraction"))
    ax_dead.set(title="Dead features", xlabel="step", ylabel="fraction not fired in window")
    ax_dead.set_ylim(bottom=0)
    ax_ev.plot(steps, _series(log, "explained_variance"))
    ax_ev.set(title="Explained variance", xlabel="step", ylabel="1 - residual / total variance")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_dead_feature_comparison(comparison: DeadFeatureComparison) -> Figure:
    """Dead fraction, L0 and explained variance over steps, one line per dead-feature method."""
    fig = plt.figure(figsize=(11, 7.5))
    axes = _two_over_one(fig)
    panels = (
        ("dead_fraction", "Dead features", "fraction not fired in window", False),
        ("l0", "Active features per token", "L0", True),
        ("explained_variance", "Explained variance", "1 - residual / total variance", False),
    )
    for ax, (field, title, ylabel, log_y) in zip(axes, panels, strict=True):
        for name, run in comparison.runs.items():
            ax.plot(
                _steps(run.log), _series(run.log, field), label=name, color=METHOD_COLOURS.get(name)
            )
        ax.set(title=title, xlabel="step", ylabel=ylabel, yscale="log" if log_y else "linear")
        if log_y:
            _plain_log_axis(ax, "y")
    axes[0].set_ylim(bottom=0)
    window = comparison.settings.get("train_config", {}).get("dead_window")
    if window:
        axes[0].axvline(window, color="k", ls=":", lw=1, label=f"window ({window} steps)")
    axes[0].legend(loc="upper left")
    fig.suptitle("Same SAE, same seed and data: three ways to treat dead features")
    fig.tight_layout()
    return fig


def comparison_table(comparison: DeadFeatureComparison) -> str:
    """Held-out scores of each method's final SAE, one aligned text row per method."""
    header = f"{'method':<10}" + "".join(f"{label:>14}" for _, label, _ in TABLE_COLUMNS)
    rows = [header]
    for name, run in comparison.runs.items():
        cells = "".join(f"{fmt.format(run.final[key]):>14}" for key, _, fmt in TABLE_COLUMNS)
        rows.append(f"{name:<10}{cells}")
    return "\n".join(rows)


def sweep_table(sweep: L1Sweep) -> str:
    """Held-out scores for every l1_coeff of the sweep, the chosen one marked with *."""
    header = f"{'l1_coeff':<10}" + "".join(f"{label:>14}" for _, label, _ in TABLE_COLUMNS)
    rows = [header]
    for p in sweep.points:
        mark = "*" if p.l1_coeff == sweep.chosen else " "
        cells = "".join(f"{fmt.format(getattr(p, key)):>14}" for key, _, fmt in TABLE_COLUMNS)
        rows.append(f"{p.l1_coeff:<9g}{mark}{cells}")
    return "\n".join(rows)


def _plot_tradeoff(ax, sweep: L1Sweep, metric: str, label: str, selected: float) -> None:
    l0s = sweep.column("l0")
    values = sweep.column(metric)
    ax.plot(l0s, values, "o-", color="tab:blue", zorder=1)
    for p in sweep.points:
        ax.annotate(
            f"{p.l1_coeff:g}",
            (p.l0, getattr(p, metric)),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
    chosen = sweep.point(selected)
    ax.scatter(
        [chosen.l0],
        [getattr(chosen, metric)],
        s=160,
        facecolors="none",
        edgecolors="tab:red",
        linewidths=2,
        zorder=2,
        label=f"l1_coeff = {selected:g}",
    )
    ax.set(title=f"Sparsity vs {label}", xlabel="L0 (log scale)", ylabel=label, xscale="log")
    _plain_log_axis(ax, "x")
    ax.legend(loc="lower right")


def plot_density_histogram(point: SweepPoint, ax=None) -> Figure:
    """log10 feature density over held-out tokens; the dead features form the bar at the left."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(6, 3.8))
    ax = ax if ax is not None else fig.add_subplot()
    h = point.histogram
    width = h.edges[1] - h.edges[0]
    ax.stairs(h.counts, h.edges, fill=True, color="tab:blue", label="fired at least once")
    ax.bar(h.edges[0] - width, h.dead, width=width, align="edge", color="tab:red", label="dead")
    ax.axvline(math.log10(DENSE_THRESHOLD), color="k", ls=":", lw=1, label="dense above")
    ax.set(
        title=f"Feature density, l1_coeff = {point.l1_coeff:g}",
        xlabel=f"log10 firing frequency ({h.n_tokens:,} held-out tokens)",
        ylabel="number of features",
    )
    ax.legend(loc="upper left")
    return fig


def plot_l1_sweep(sweep: L1Sweep, selected: float | None = None) -> Figure:
    """L0 vs explained variance, L0 vs CE loss recovered, and the density histogram of `selected`."""
    selected = sweep.chosen if selected is None else selected
    fig = plt.figure(figsize=(11, 8))
    axes = _two_over_one(fig)
    _plot_tradeoff(axes[0], sweep, "explained_variance", "explained variance", selected)
    _plot_tradeoff(axes[1], sweep, "ce_loss_recovered", "CE loss recovered", selected)
    plot_density_histogram(sweep.point(selected), ax=axes[2])
    fig.suptitle("l1_coeff sweep: each point is one SAE (labels: l1_coeff)")
    fig.tight_layout()
    return fig


def l1_widget(sweep: L1Sweep):
    """A slider over the sweep's l1_coeff values showing `plot_l1_sweep` (no training).

    Live in Jupyter and Colab (an image redrawn on each move: no output capture, so the cell
    never stalls under papermill); in the built book, a client-side slider over one
    precomputed frame per sweep point (`plots.static_widget`).
    """
    values = sweep.column("l1_coeff")
    return frame_slider(
        lambda value: plot_l1_sweep(sweep, value),
        values,
        label="l1_coeff",
        name="l1-coeff",
        initial=values.index(sweep.chosen),
    )


def metrics_side_by_side(columns: Mapping[str, Mapping[str, float | str]]) -> str:
    """One row per metric, one column per SAE (or report); a metric a column lacks shows '—'.

    Numbers are formatted by kind (percentages for fractions); strings, such as a reported
    "≥ 90%", are shown as given.
    """
    keys = list(dict.fromkeys(k for col in columns.values() for k in col))
    width = max(len(k) for k in keys)
    cell = max(12, *(len(name) + 2 for name in columns))
    rows = [f"{'':<{width}}" + "".join(f"{name:>{cell}}" for name in columns)]
    for key in keys:
        cells = []
        for col in columns.values():
            value = col.get(key)
            if value is None:
                cells.append("—")
            elif isinstance(value, str):
                cells.append(value)
            elif (
                key.startswith("ce_loss_recovered")
                or key.endswith("_fraction")
                or key == "explained_variance"
            ):
                cells.append(f"{value:.1%}")
            elif isinstance(value, int):
                cells.append(f"{value:,}")
            else:
                cells.append(f"{value:.4g}")
        rows.append(f"{key:<{width}}" + "".join(f"{c:>{cell}}" for c in cells))
    return "\n".join(rows)


EVALUATION_ROWS = (
    "l0",
    "mse",
    "explained_variance",
    "ce_loss_clean",
    "ce_loss_reconstructed",
    "ce_loss_zero_ablated",
    "ce_loss_mean_ablated",
    "ce_loss_recovered",
    "ce_loss_recovered_mean_ablation",
    "dead_fraction",
    "dense_fraction",
)
# What Nanda reported for his gelu-1l run1 SAE (his evaluation data, not measured here).
NANDA_RUN1_REPORTED = {"ce_loss_recovered": "≥ 90%", "mse": "≈ 0.016"}


def evaluation_table(scores: Mapping[str, Mapping[str, float]]) -> str:
    """`metrics_side_by_side` of `SAEMetrics.as_dict()`s on EVALUATION_ROWS, plus Nanda's report."""
    columns = {name: {k: s[k] for k in EVALUATION_ROWS} for name, s in scores.items()}
    return metrics_side_by_side({**columns, "Nanda run1 (reported)": NANDA_RUN1_REPORTED})
