"""Figures and the step-size widget of chapter 7 (random walks in latent space, interpolation)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tutorial_sae.analysis.interpolation import PromptInterpolation
from tutorial_sae.analysis.walk_studies import closed_form
from tutorial_sae.analysis.walks import Predictions, WalkStudy, pca_2d
from tutorial_sae.plots.static_widget import frame_slider
from tutorial_sae.utils import check_index

KIND_COLOURS = {
    "latent": "tab:blue",
    "relu": "tab:orange",
    "active": "tab:green",
    "decoder": "tab:purple",
    "reprojected": "tab:red",
}
METRIC_LABELS = {
    "mse": "squared error to the start's activation",
    "cosine": "cosine to the start's reconstruction",
    "distance": "distance from the start (walk's own space)",
    "l0": "active features (L0)",
    "consistency": "|E(D(z)) - z|",
    "nearest": "distance to nearest real activation",
}


def _band(ax, y: torch.Tensor, colour, label: str) -> None:
    """Mean over walks (rows) with a band of one standard deviation; whole steps on the x axis."""
    t = torch.arange(y.shape[-1])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    mean, std = y.mean(0), y.std(0)
    ax.plot(t, mean, color=colour, label=label)
    ax.fill_between(t, mean - std, mean + std, color=colour, alpha=0.2, lw=0)


def plot_walk(
    study: WalkStudy, step_size: float, bank: torch.Tensor, kind: str = "latent"
) -> Figure:
    """The seed paper's figure 10 for one step size: squared error, cosine (with the closed
    form), distance (with s sqrt(t)) along the walk, and the first walks' 2D path over real data.

    Axes are fixed across the study's step sizes, so frames of a widget compare directly.
    """
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5))
    (ax_mse, ax_cos), (ax_dist, ax_path) = axes
    t = torch.arange(study.n_steps + 1)
    _band(ax_mse, study.curve(kind, step_size, "mse"), "tab:blue", "walks")
    _band(ax_cos, study.curve(kind, step_size, "cosine"), "tab:blue", "walks")
    ax_cos.plot(t, closed_form(study, step_size), "k--", label="closed form")
    _band(ax_dist, study.curve(kind, step_size, "distance"), "tab:blue", "walks")
    ax_dist.plot(t, step_size * t.sqrt(), "k--", label="s √t")
    top = max(float(study.curve(kind, s, "mse").mean(0).max()) for s in study.step_sizes)
    far = max(float(study.curve(kind, s, "distance").mean(0).max()) for s in study.step_sizes)
    ax_mse.set(
        title="Reconstruction drifts from the start",
        xlabel="step",
        ylabel=METRIC_LABELS["mse"],
        ylim=(0, 1.15 * top),
    )
    ax_cos.set(
        title="Cosine similarity to the start", xlabel="step", ylabel="cosine", ylim=(0, 1.02)
    )
    ax_dist.set(
        title="Distance from the start",
        xlabel="step",
        ylabel=METRIC_LABELS["distance"],
        ylim=(0, 1.1 * far),
    )
    for ax in (ax_mse, ax_cos, ax_dist):
        ax.legend(loc="best")
    _plot_path(ax_path, study, kind, step_size, bank)
    fig.suptitle(f"Random walk in latent space ({kind}), step size {step_size:g}")
    fig.tight_layout()
    return fig


_PCA: dict[int, tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]] = {}


def _pca(bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pca_2d of the bank, computed once for all the frames of a widget."""
    if id(bank) not in _PCA or _PCA[id(bank)][0] is not bank:
        _PCA.clear()
        _PCA[id(bank)] = (bank, pca_2d(bank))
    return _PCA[id(bank)][1]


def _plot_path(ax, study: WalkStudy, kind: str, step_size: float, bank: torch.Tensor) -> None:
    """Walk points on the first two principal components, lighter early, darker late."""
    mean, basis = _pca(bank)
    cloud = (bank[:: max(1, len(bank) // 1500)] - mean) @ basis.T
    ax.scatter(cloud[:, 0], cloud[:, 1], s=3, color="0.8", label="real activations")
    paths = {s: (study.paths[kind][s] - mean) @ basis.T for s in study.step_sizes}
    for i, path in enumerate(paths[step_size]):
        ax.plot(path[:, 0], path[:, 1], color="0.4", lw=0.6, zorder=1)
        ax.scatter(
            path[:, 0],
            path[:, 1],
            c=torch.arange(path.shape[0]),
            cmap="Blues",
            vmin=-path.shape[0] // 3,
            s=12,
            zorder=2,
            label="walk (dark = late)" if i == 0 else None,
        )
    ax.scatter(*paths[step_size][0, 0], marker="*", s=200, color="tab:red", zorder=3, label="start")
    everything = torch.cat([cloud] + [p.flatten(0, 1) for p in paths.values()])
    low, high = everything.amin(0), everything.amax(0)
    pad = 0.05 * (high - low)
    ax.set(
        title="2D path (PCA of real activations)",
        xlabel="PC 1",
        ylabel="PC 2",
        xlim=(float(low[0] - pad[0]), float(high[0] + pad[0])),
        ylim=(float(low[1] - pad[1]), float(high[1] + pad[1])),
    )
    ax.legend(loc="best", fontsize=8)


def step_size_widget(study: WalkStudy, bank: torch.Tensor, kind: str = "latent", initial=None):
    """A slider over the study's step sizes showing `plot_walk` (live, and static in the book)."""
    sizes = list(study.step_sizes)
    start = sizes.index(initial) if initial in sizes else len(sizes) // 2
    return frame_slider(
        lambda s: plot_walk(study, s, bank, kind), sizes, "step size", "step-size", start
    )


def plot_step_sizes(study: WalkStudy, kind: str = "latent") -> Figure:
    """Squared error and cosine along the walk, one band per step size; closed form dashed."""
    fig, (ax_mse, ax_cos) = plt.subplots(1, 2, figsize=(11, 4))
    t = torch.arange(study.n_steps + 1)
    colours = plt.cm.viridis(torch.linspace(0, 0.85, len(study.step_sizes)).tolist())
    for s, c in zip(study.step_sizes, colours, strict=True):
        _band(ax_mse, study.curve(kind, s, "mse"), c, f"s = {s:g}")
        _band(ax_cos, study.curve(kind, s, "cosine"), c, f"s = {s:g}")
        ax_cos.plot(t, closed_form(study, s), "--", color="k", lw=1)
    ax_cos.plot([], [], "k--", lw=1, label="closed form")
    ax_mse.set(
        title="Squared error to the start's activation",
        xlabel="step",
        ylabel="squared error (sum over d_mlp)",
        yscale="log",
    )
    ax_cos.set(title="Cosine to the start's reconstruction", xlabel="step", ylabel="cosine")
    ax_mse.legend()
    ax_cos.legend()
    n = study.n_seeds * len(study.start_norms)
    fig.suptitle(f"{kind} walks: mean and ±1 std over {n} walks ({len(study.start_norms)} starts)")
    fig.tight_layout()
    return fig


def plot_walk_kinds(study: WalkStudy, step_size: float) -> Figure:
    """L0, self-consistency, distance to the data and cosine along each kind of walk."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, metric in zip(axes.flat, ("l0", "consistency", "nearest", "cosine"), strict=True):
        for kind in study.kinds:
            _band(ax, study.curve(kind, step_size, metric), KIND_COLOURS.get(kind), kind)
        ax.set(title=METRIC_LABELS[metric], xlabel="step", ylabel=metric)
    axes[0, 0].set_yscale("log")
    axes[1, 0].axhline(study.radius, color="k", ls=":", label="99% of real activations")
    axes[1, 0].legend(fontsize=8)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Five kinds of walk, step size {step_size:g}")
    fig.tight_layout()
    return fig


def token_label(tokenizer, token: int) -> str:
    """A token as readable text: whitespace made visible, long tokens cut."""
    # Any id of the unembedding: a padded one has rows past the tokenizer, which no text uses.
    check_index(token, "token", 2**31)
    if int(token) >= len(tokenizer):
        return "<unused>"
    text = tokenizer.decode([int(token)]).replace("\n", "⏎").replace(" ", "·")
    return text if len(text) <= 10 else text[:9] + "…"


def plot_predictions(
    preds: dict[str, Predictions], tokenizer, strip_kind: str, every: int = 4
) -> Figure:
    """Top-3 next tokens every `every` steps of one walk (shade: probability), and KL from
    the start's prediction along each walk."""
    p = preds[strip_kind]
    steps = list(range(0, len(p.kl), every))
    fig, (ax_strip, ax_kl) = plt.subplots(2, 1, figsize=(11, 6), height_ratios=(1.2, 1))
    shown = p.top_probs[steps, :3].T
    ax_strip.imshow(shown, cmap="Greens", vmin=0, vmax=1.5 * float(shown.max()), aspect="auto")
    for col, step in enumerate(steps):
        for rank in range(3):
            label = token_label(tokenizer, p.top_tokens[step, rank])
            ax_strip.text(
                col,
                rank,
                f"{label}\n{float(shown[rank, col]):.0%}",
                ha="center",
                va="center",
                fontsize=8,
            )
    ax_strip.set(
        title=f"Top next tokens along the {strip_kind} walk (shade: probability)",
        xlabel="step",
        ylabel="rank",
        xticks=range(len(steps)),
        xticklabels=steps,
        yticks=range(3),
        yticklabels=["1st", "2nd", "3rd"],
    )
    for kind, pk in preds.items():
        ax_kl.plot(pk.kl, color=KIND_COLOURS.get(kind), label=kind)
    ax_kl.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_kl.set(
        title="How far the prediction moves", xlabel="step", ylabel="KL(start || step) (nats)"
    )
    ax_kl.legend()
    fig.tight_layout()
    return fig


def plot_interpolation(
    alphas, preds: dict[str, Predictions], token_a: int, token_b: int, tokenizer
) -> Figure:
    """Probability of each endpoint's top token along lerp, slerp and re-encoded paths."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, token, end in zip(axes, (token_a, token_b), ("A", "B"), strict=True):
        for (method, p), style in zip(preds.items(), ("-", "--", ":"), strict=False):
            ax.plot(alphas, p.probs[:, token], style, label=method)
        ax.set(
            title=f"P({token_label(tokenizer, token)!r}), prompt {end}'s top token",
            xlabel="alpha (0: prompt A's code, 1: prompt B's)",
            ylabel="probability",
        )
        ax.legend()
    fig.suptitle("Interpolating between two prompts' codes, spliced into prompt A")
    fig.tight_layout()
    return fig


def plot_prompt_interpolation(result: PromptInterpolation, tokenizer) -> Figure:
    """`plot_interpolation` of `interpolate_prompts`' result: A's and B's top tokens along each path."""
    if not isinstance(result, PromptInterpolation):
        raise TypeError(
            f"expected the PromptInterpolation of interpolate_prompts, got {type(result).__name__}"
        )
    return plot_interpolation(
        result.alphas, result.predictions, result.top_a, result.top_b, tokenizer
    )
