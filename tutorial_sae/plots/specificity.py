"""Figures and tables of chapter 5: activations by proxy value, neurons vs features, prompts."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from tutorial_sae.analysis.polysemantic import PolysemanticNeuron
from tutorial_sae.analysis.prompts import PromptRow
from tutorial_sae.analysis.scripts import concept_groups
from tutorial_sae.analysis.specificity import NEURON_EDGES, ConceptSummary, ScriptScan
from tutorial_sae.plots.fonts import shape_text, use_book_fonts
from tutorial_sae.utils import check_tensor

# Proxy buckets of log P(t | concept) / P(t), from "unlike the concept" to "typical of it". The
# proxy cannot exceed log(1 / the concept's share of the training mix): 1.4 for Han (25%), 1.9
# for Arabic (15%), hence the top edge at 1.
PROXY_EDGES = (-4.0, -2.0, 0.0, 1.0)
LANG_NAMES = {"en": "English", "zh": "Chinese", "ar": "Arabic", "code": "Python code"}


def _setup() -> None:
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    use_book_fonts()


def proxy_buckets(proxy: Tensor) -> list[str]:
    """A label per token for its proxy value, by PROXY_EDGES ("< -2", "-2 to 0", ..., "> 4")."""
    labels = [f"< {PROXY_EDGES[0]:g}"]
    labels += [f"{lo:g} to {hi:g}" for lo, hi in zip(PROXY_EDGES, PROXY_EDGES[1:], strict=False)]
    labels += [f"> {PROXY_EDGES[-1]:g}"]
    index = torch.bucketize(proxy, torch.tensor(PROXY_EDGES, dtype=proxy.dtype))
    return [labels[i] for i in index.tolist()]


def plot_proxy_histograms(
    acts: Tensor, proxy: Tensor, title: str, concept: str = "the concept"
) -> Figure:
    """Bricken et al. 2023's two views of one feature: a histogram of its non-zero activations
    stacked by the token's proxy value, by count (left) and by expected value = activation x
    density (right, each token weighted by its activation)."""
    import pandas as pd
    import seaborn as sns

    check_tensor(acts, "acts", 1)
    check_tensor(proxy, "proxy", 1)
    if acts.shape != proxy.shape:
        raise ValueError(
            f"expected acts and proxy of one shape, got {acts.shape} and {proxy.shape}"
        )
    _setup()
    on = acts > 0
    frame = pd.DataFrame(
        {"activation": acts[on].numpy(), "proxy": proxy_buckets(proxy[on].double())}
    )
    names = proxy_buckets(torch.tensor([-5.0, -3, -1, 0.5, 2]))
    order = [b for b in names if b in set(frame.proxy)]
    palette = dict(zip(names, sns.color_palette("coolwarm", len(names)), strict=True))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, weights, ylabel in (
        (axes[0], None, "tokens"),
        (axes[1], "activation", "activation x tokens (expected value)"),
    ):
        sns.histplot(
            frame,
            x="activation",
            hue="proxy",
            hue_order=order,
            weights=weights,
            bins=40,
            multiple="stack",
            palette=palette,
            ax=ax,
            linewidth=0,
        )
        ax.set_xlabel("feature activation (tokens where it fires)")
        ax.set_ylabel(ylabel)
    axes[0].get_legend().set_title(f"log P(t|{concept})/P(t)")
    axes[1].get_legend().remove()
    axes[0].set_title("count")
    axes[1].set_title("expected value")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_neuron_vs_feature(summaries: Sequence[ConceptSummary], title: str) -> Figure:
    """Specificity (left) and sensitivity (right) of each concept's best feature and of the best
    neuron thresholded to the feature's sensitivity."""
    import pandas as pd
    import seaborn as sns

    _setup()
    rows = [
        {
            "concept": s.concept,
            "unit": u.kind,
            "specificity": u.specificity,
            "sensitivity": u.sensitivity,
            "label": f"{u.kind[0]}{u.index}",
        }
        for s in summaries
        for u in (s.feature, s.neuron)
    ]
    frame = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("specificity", "sensitivity"), strict=True):
        sns.barplot(
            frame, x="concept", y=metric, hue="unit", ax=ax, palette=["tab:blue", "tab:orange"]
        )
        for container, unit in zip(ax.containers, ("feature", "neuron"), strict=True):
            labels = frame[frame.unit == unit]
            ax.bar_label(
                container,
                [f"{v:.2f}\n({n})" for v, n in zip(labels[metric], labels.label, strict=True)],
                fontsize=8,
            )
        ax.set_ylim(0, 1.25)
        ax.set_xlabel("concept (token script)")
        ax.set_ylabel(metric)
    axes[0].set_title("specificity: share of activation on the concept")
    axes[1].set_title("sensitivity: share of the concept's tokens hit")
    axes[0].get_legend().remove()
    axes[1].legend(title="unit", loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_sizes(sizes: Mapping[str, Mapping], title: str) -> Figure:
    """Best-feature specificity and sensitivity against dictionary size, one line per concept
    (`sizes` as stored in specificity.json: name -> {"d_sae", "concepts": {...}})."""
    _setup()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    concepts = sorted({c for s in sizes.values() for c in s["concepts"]})
    for concept in concepts:
        points = sorted((s["d_sae"], s["concepts"][concept]["feature"]) for s in sizes.values())
        d = [p[0] for p in points]
        for ax, metric in zip(axes, ("specificity", "sensitivity"), strict=True):
            ax.plot(d, [p[1][metric] for p in points], marker="o", label=concept)
    for ax, metric in zip(axes, ("specificity", "sensitivity"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xticks(d, [f"{x:,}" for x in d])
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("dictionary size (features)")
        ax.set_ylabel(f"best feature's {metric}")
    axes[0].legend(title="concept")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_polysemantic(scan: ScriptScan, poly: PolysemanticNeuron, title: str) -> Figure:
    """Left: the neuron's activations (above 0.01) stacked by concept, its threshold marked.
    Right: where the firings of the neuron and the activation of each concept's feature fall."""
    import pandas as pd
    import seaborn as sns

    _setup()
    a, b = poly.concepts
    counts = scan.neuron_counts[poly.neuron, 1:]  # bin 0 holds everything at or below 0.01
    parts = {c: counts[:, concept_groups(c)].sum(1) for c in (a, b)}
    parts["other"] = counts.sum(1) - parts[a] - parts[b]
    edges = torch.cat([NEURON_EDGES, NEURON_EDGES[-1:] * 1.07]).numpy()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    bottom = torch.zeros(len(counts), dtype=counts.dtype)
    for (name, part), colour in zip(parts.items(), sns.color_palette()[:3], strict=True):
        axes[0].stairs(
            (bottom + part).numpy(),
            edges,
            baseline=bottom.numpy(),
            fill=True,
            color=colour,
            label=name,
        )
        bottom = bottom + part
    axes[0].axvline(poly.threshold, color="black", linestyle="--")
    axes[0].set_xscale("log")
    axes[0].set_xlim(0.01, float(NEURON_EDGES[(bottom > 0).nonzero().max()]) * 1.2)
    axes[0].legend(title="concept")
    axes[0].set_xlabel(f"neuron {poly.neuron} activation (log scale, > 0.01)")
    axes[0].set_ylabel("tokens")
    axes[0].set_title(f"neuron {poly.neuron}: threshold {poly.threshold:.2f} (dashed)")
    shares = pd.DataFrame(
        [
            {"unit": f"neuron {poly.neuron}", "concept": a, "share": poly.share[0]},
            {"unit": f"neuron {poly.neuron}", "concept": b, "share": poly.share[1]},
            *(
                row
                for f, leak in zip(poly.features, poly.leak, strict=True)
                for row in (
                    {"unit": f"feature {f.index}", "concept": f.concept, "share": f.specificity},
                    {
                        "unit": f"feature {f.index}",
                        "concept": b if f.concept == a else a,
                        "share": leak,
                    },
                )
            ),
        ]
    )
    sns.barplot(shares, x="unit", y="share", hue="concept", hue_order=[a, b], ax=axes[1])
    axes[1].set_ylim(0, 1.05)
    axes[1].set_xlabel("")
    axes[1].set_ylabel("share (neuron: of firings above threshold)")
    axes[1].set_title("what each unit responds to (share of activation)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_prompt_activations(rows: Sequence[PromptRow], feature: int, title: str) -> Figure:
    """The seed paper's figure 7 for one feature: its max activation on each prompt, by language
    (Chinese and Arabic drawn as text, Arabic right to left)."""
    _setup()
    picked = [r for r in rows if r.feature == feature]
    if not picked:
        raise ValueError(f"expected rows for feature {feature}, got none")
    colours = dict(zip(LANG_NAMES, plt.get_cmap("tab10").colors, strict=False))
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(picked) + 1.2))
    y = np.arange(len(picked))[::-1]
    ax.barh(y, [r.max_act for r in picked], color=[colours[r.lang] for r in picked])
    short = [r.prompt.replace("\n", " ⏎ ")[:48] for r in picked]
    ax.set_yticks(y, [shape_text(s) for s in short], fontsize=9)
    ax.set_xlabel(f"feature {feature}: max activation over the prompt's tokens")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[k]) for k in LANG_NAMES]
    ax.legend(handles, LANG_NAMES.values(), loc="lower right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def prompt_table_html(rows: Sequence[PromptRow], names: Mapping[int, str]) -> str:
    """An HTML table: one row per prompt, max / mean / share active per feature; each prompt
    cell carries its language and dir="auto", so Arabic reads right to left in the browser."""
    features = list(dict.fromkeys(r.feature for r in rows))
    head = "".join(
        f'<th colspan="3">{html.escape(names.get(f, f"feature {f}"))}</th>' for f in features
    )
    sub = "<th>max</th><th>mean</th><th>active</th>" * len(features)
    body = []
    by_prompt: dict[tuple[str, str], dict[int, PromptRow]] = {}
    for r in rows:
        by_prompt.setdefault((r.lang, r.prompt), {})[r.feature] = r
    for (lang, prompt), cells in by_prompt.items():
        nums = "".join(
            f"<td>{cells[f].max_act:.2f}</td><td>{cells[f].mean_act:.2f}</td>"
            f"<td>{cells[f].active:.0%}</td>"
            for f in features
        )
        text = html.escape(prompt).replace("\n", "<br>")
        tag = "code" if lang == "code" else "span"
        body.append(
            f'<tr><td>{LANG_NAMES.get(lang, lang)}</td><td lang="{lang if lang != "code" else "en"}" '
            f'dir="auto" style="text-align:start"><{tag}>{text}</{tag}></td>{nums}</tr>'
        )
    return (
        '<table class="specificity-table"><thead>'
        f'<tr><th rowspan="2">language</th><th rowspan="2">prompt</th>{head}</tr><tr>{sub}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table>"
    )
