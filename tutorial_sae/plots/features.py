"""Feature cards (HTML), neighbourhood figures, projections and the offline 3D view (chapters 4-7).

HTML is used wherever text in Chinese or Arabic is shown: the browser shapes and orders it
(`dir="auto"` per line, so an Arabic context reads right to left), which matplotlib cannot do
without extra fonts and reshaping.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

from tutorial_sae.analysis.completeness import CompletenessCurve
from tutorial_sae.analysis.features import Context, FeatureCard
from tutorial_sae.analysis.neighbourhoods import DictionaryMatch, SplittingFamily
from tutorial_sae.utils import check_tensor, check_width

LABEL_COLOURS = {
    "en": "#1f77b4",
    "code": "#2ca02c",
    "zh": "#d62728",
    "ar": "#9467bd",
    "dead": "#999999",
}
CARD_STYLE = (
    "font-family: system-ui, sans-serif; font-size: 14px; border: 1px solid #ccc; "
    "border-radius: 6px; padding: 8px 12px; margin: 6px 0;"
)


@dataclass(frozen=True)
class HtmlBlock:
    """HTML that a notebook displays as a cell output (and the built book keeps)."""

    html: str

    def _repr_html_(self) -> str:
        return self.html


def _colour(label: str) -> str:
    return LABEL_COLOURS.get(label, "#444444")


def context_html(context: Context, max_act: float) -> str:
    """One context line: each token's background is orange in proportion to the activation."""
    spans = []
    for i, (piece, act) in enumerate(zip(context.pieces, context.acts, strict=True)):
        alpha = 0.0 if max_act <= 0 else min(1.0, act / max_act)
        text = html.escape(piece).replace("\n", "↵")
        border = "border-bottom: 2px solid #000;" if i == context.centre else ""
        spans.append(
            f'<span style="background: rgba(255,140,0,{alpha:.2f});{border}" '
            f'title="{act:.2f}">{text}</span>'
        )
    return (
        f'<div style="white-space: pre-wrap; margin: 2px 0; line-height: 1.7;">'
        f'<code style="color:#666">{context.value:5.2f} {context.label:>4}</code> '
        f'<bdi dir="auto">{"".join(spans)}</bdi></div>'
    )


def _token_list(pairs: Sequence[tuple[str, float]]) -> str:
    items = ", ".join(
        f'<bdi dir="auto"><code>{html.escape(t)}</code></bdi>&nbsp;{v:+.2f}' for t, v in pairs
    )
    return items or "-"


def card_html(card: FeatureCard, n_contexts: int | None = None) -> str:
    """A feature card as an HTML string (see `feature_card_html`)."""
    contexts = card.contexts[:n_contexts]
    max_act = max((c.value for c in contexts), default=0.0)
    head = (
        f'<div style="{CARD_STYLE} border-left: 6px solid {_colour(card.label)};">'
        f"<b>{html.escape(card.sae_name)} feature {card.feature}</b> · label "
        f"<b>{card.label}</b> ({card.purity:.0%} of its activation mass) · fires on "
        f"{card.density:.3%} of held-out tokens"
    )
    body = "".join(context_html(c, max_act) for c in contexts)
    logits = ""
    if card.logits is not None:
        logits = (
            f'<div style="margin-top: 4px;">promotes: {_token_list(card.logits.promoted)}<br>'
            f"suppresses: {_token_list(card.logits.suppressed)}</div>"
        )
    return f"{head}{body}{logits}</div>"


def feature_card_html(cards: FeatureCard | Sequence[FeatureCard]) -> HtmlBlock:
    """Feature cards (Bricken et al. 2023's feature browser, condensed): header, top held-out
    contexts with the firing tokens highlighted (max token underlined), logit effect."""
    cards = [cards] if isinstance(cards, FeatureCard) else list(cards)
    return HtmlBlock("".join(card_html(c) for c in cards))


def plot_activation_histograms(cards: Sequence[FeatureCard]) -> Figure:
    """Each card's histogram of log10 activations (over the tokens where it fires), two per row."""
    if not cards:
        raise ValueError("expected at least one feature card, got none")
    rows = (len(cards) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(10, 3 * rows), squeeze=False)
    for ax, card in zip(axes.flat, cards, strict=False):
        edges = torch.tensor(card.hist_edges).numpy()
        ax.bar(10 ** edges[:-1], card.hist_counts, width=10 ** edges[1:] - 10 ** edges[:-1],
               align="edge", color=_colour(card.label))  # fmt: skip
        ax.set_xscale("log")
        ax.set_title(f"feature {card.feature} ({card.label}), density {card.density:.2%}")
        ax.set_xlabel("activation (log scale)")
        ax.set_ylabel("held-out tokens")
    for ax in axes.flat[len(cards) :]:
        ax.set_visible(False)
    fig.suptitle(f"Activation histograms of {cards[0].sae_name} features")
    fig.tight_layout()
    return fig


def neighbours_html(
    feature: int, decoder: tuple[Tensor, Tensor], encoder: tuple[Tensor, Tensor],
    labels: Sequence[str], top_words: Sequence[str],
) -> HtmlBlock:  # fmt: skip
    """Side-by-side table: `feature`'s neighbours among decoder and among encoder directions
    (each a pair of index and cosine tensors), with each neighbour's label and top token."""

    def column(pair: tuple[Tensor, Tensor]) -> list[str]:
        return [
            f"<td>{int(i)}</td><td>{float(c):.2f}</td><td>{labels[int(i)]}</td>"
            f'<td><bdi dir="auto">{html.escape(top_words[int(i)])}</bdi></td>'
            for i, c in zip(*pair, strict=True)
        ]

    head = "<th>feature</th><th>cos</th><th>label</th><th>top token</th>"
    rows = "".join(
        f"<tr>{d}<td style='width:2em'></td>{e}</tr>"
        for d, e in zip(column(decoder), column(encoder), strict=True)
    )
    return HtmlBlock(
        f"<table style='font-size: 13px'><caption>Neighbours of feature {feature} "
        f"({labels[feature]}, top token <bdi dir='auto'>{html.escape(top_words[feature])}"
        f"</bdi>)</caption><tr><th colspan=4>by decoder direction</th><th></th>"
        f"<th colspan=4>by encoder direction</th></tr><tr>{head}<th></th>{head}</tr>{rows}</table>"
    )


def _check_points(coords: Tensor, labels: Tensor, dim: int, name: str = "coords") -> None:
    check_tensor(coords, name, 2)
    check_width(coords, dim, name, f"{dim}-D points")
    check_tensor(labels, "labels", 1, "int")
    if len(labels) != len(coords):
        raise ValueError(f"expected coords [n, {dim}] and labels [n], got {tuple(coords.shape)} "
                         f"and {len(labels)}")  # fmt: skip


def plot_cosine_histograms(
    enc_dec: Tensor, nearest_decoder: Tensor, nearest_encoder: Tensor, name: str
) -> Figure:
    """Left: cos(encoder, decoder) of each feature. Right: each feature's nearest-neighbour
    cosine among decoder directions and among encoder directions."""
    for arg, value in (("enc_dec", enc_dec), ("nearest_decoder", nearest_decoder),
                       ("nearest_encoder", nearest_encoder)):  # fmt: skip
        check_tensor(value, arg, 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.hist(enc_dec.numpy(), bins=40, color="#555555")
    left.set_title(f"{name}: encoder vs decoder direction")
    left.set_xlabel("cosine of a feature's encoder and decoder directions")
    left.set_ylabel("features")
    bins = torch.linspace(0, 1, 41).numpy()
    right.hist(nearest_decoder.numpy(), bins=bins, alpha=0.6, label="decoder")
    right.hist(nearest_encoder.numpy(), bins=bins, alpha=0.6, label="encoder")
    right.set_title(f"{name}: nearest-neighbour cosine")
    right.set_xlabel("cosine to the nearest other feature")
    right.set_ylabel("features")
    right.legend()
    fig.tight_layout()
    return fig


def plot_projections(
    coords: Mapping[str, Tensor], labels: Tensor, label_names: Sequence[str], title: str
) -> Figure:
    """Up to two 2D projections side by side, one dot per feature, coloured by label."""
    if not 1 <= len(coords) <= 2:
        raise ValueError(f"expected one or two projections, got {len(coords)}")
    for method, xy in coords.items():
        _check_points(xy, labels, 2, f"coords[{method!r}]")
    fig, axes = plt.subplots(1, len(coords), figsize=(10 if len(coords) == 2 else 5.5, 4.8),
                             squeeze=False)  # fmt: skip
    for ax, (method, xy) in zip(axes.flat, coords.items(), strict=True):
        for i, name in enumerate(label_names):
            mask = labels == i
            ax.scatter(xy[mask, 0], xy[mask, 1], s=3, alpha=0.6, color=_colour(name), label=name)
        ax.set_title(method)
        ax.set_xlabel(f"{method} 1")
        ax.set_ylabel(f"{method} 2")
    axes.flat[0].legend(markerscale=4, title="label")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_best_matches(matches: Mapping[str, DictionaryMatch]) -> Figure:
    """Histogram of best-match decoder cosines per pair of dictionaries, with the random baseline."""
    if not 1 <= len(matches) <= 2:
        raise ValueError(f"expected one or two dictionary pairs, got {len(matches)}")
    fig, axes = plt.subplots(1, len(matches), figsize=(10, 3.6), squeeze=False)
    bins = torch.linspace(0, 1, 51).numpy()
    for ax, (pair, m) in zip(axes.flat, matches.items(), strict=True):
        ax.hist(
            m.best_cosine.numpy(), bins=bins, alpha=0.7, label=f"trained (median {m.median:.2f})"
        )
        ax.hist(m.random_cosine.numpy(), bins=bins, alpha=0.7,
                label=f"random directions ({m.random_median:.2f})")  # fmt: skip
        ax.set_title(pair)
        ax.set_xlabel("best-match decoder cosine")
        ax.set_ylabel("features")
        ax.legend(fontsize=9)
    fig.suptitle("Do features survive a larger dictionary?")
    fig.tight_layout()
    return fig


def family_html(family: SplittingFamily, parent: FeatureCard, children: Sequence[FeatureCard],
                n_contexts: int = 3) -> HtmlBlock:  # fmt: skip
    """A splitting family as a tree: the parent's card, then each child's card with its decoder
    cosine to the parent and the share of the parent's firing tokens on which it fires."""
    kids = "".join(
        f'<div style="margin-left: 2em; border-left: 2px solid #999; padding-left: 8px;">'
        f"cos {cos:.2f} to the parent · fires on {share:.0%} of the parent's tokens"
        f"{card_html(card, n_contexts)}</div>"
        for card, cos, share in zip(
            children, family.child_cosines, family.child_shares, strict=True
        )
    )
    head = (
        f"<div>Parent fires on {family.parent_firings:,} held-out tokens; at least one child fires "
        f"on <b>{family.coverage:.0%}</b> of them.</div>"
    )
    return HtmlBlock(head + card_html(parent, n_contexts) + kids)


def plot_completeness(curves: Mapping[str, CompletenessCurve]) -> Figure:
    """P(token type has a dedicated feature) against log10 frequency, one line per dictionary."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, c in curves.items():
        keep = c.n_types > 0
        ax.plot(c.log10_frequency[keep], c.p_covered[keep], marker="o", label=name)
    ax.axhline(0.5, color="#999999", lw=0.8, ls="--")
    ax.set_xlabel("log10 frequency of the token type in held-out text")
    ax.set_ylabel("P(a feature is dedicated to it)")
    ax.set_title("Completeness: frequent tokens get features first")
    ax.legend(title="dictionary")
    fig.tight_layout()
    return fig


_VIEW_JS = """
(function(){const d=DATA,c=document.getElementById(ID),g=c.getContext('2d');
let a=0.6,b=0.3,drag=null,spin=true;
function draw(){g.clearRect(0,0,c.width,c.height);const ca=Math.cos(a),sa=Math.sin(a),
cb=Math.cos(b),sb=Math.sin(b),s=c.height*0.42,pts=[];
for(const p of d.points){const x=ca*p[0]+sa*p[2],z=-sa*p[0]+ca*p[2],y=cb*p[1]-sb*z,
w=sb*p[1]+cb*z;pts.push([w,c.width/2+s*x,c.height/2-s*y,p[3]]);}
pts.sort((u,v)=>u[0]-v[0]);for(const p of pts){g.fillStyle=d.colours[p[3]];
g.globalAlpha=0.35+0.4*(p[0]+1)/2;g.fillRect(p[1]-1.5,p[2]-1.5,3,3);}g.globalAlpha=1;
d.names.forEach((n,i)=>{g.fillStyle=d.colours[i];g.fillRect(10,10+i*18,10,10);
g.fillStyle='#000';g.font='13px sans-serif';g.fillText(n,26,19+i*18);});}
c.onmousedown=e=>{drag=[e.clientX,e.clientY];spin=false;};
window.addEventListener('mouseup',()=>{drag=null;});
c.onmousemove=e=>{if(!drag)return;a+=(e.clientX-drag[0])*0.01;b+=(e.clientY-drag[1])*0.01;
drag=[e.clientX,e.clientY];draw();};
(function tick(){if(spin){a+=0.004;draw();}requestAnimationFrame(tick);})();draw();})();
"""


def rotating_3d_html(
    coords: Tensor, labels: Tensor, label_names: Sequence[str], title: str, element_id: str = "ch4-3d"
) -> HtmlBlock:  # fmt: skip
    """A self-contained 3D scatter (canvas + 30 lines of inline JavaScript, no library, no CDN):
    it spins until dragged, so it works offline in the built book."""
    _check_points(coords, labels, 3)
    xyz = coords - coords.mean(0)
    xyz = xyz / xyz.abs().max().clamp_min(1e-9)
    keep = labels >= 0
    points = [
        [round(v, 3) for v in p] + [int(k)]
        for p, k in zip(xyz[keep].tolist(), labels[keep], strict=False)
    ]
    data = {"points": points, "names": list(label_names),
            "colours": [_colour(n) for n in label_names]}  # fmt: skip
    script = _VIEW_JS.replace("DATA", json.dumps(data, separators=(",", ":"))).replace(
        "ID", json.dumps(element_id)
    )
    return HtmlBlock(
        f"<figure><canvas id='{element_id}' width='640' height='480' "
        f"style='border:1px solid #ddd; max-width:100%; cursor:grab'></canvas>"
        f"<figcaption>{html.escape(title)} (drag to rotate)</figcaption></figure>"
        f"<script>{script}</script>"
    )


def plot_3d_static(
    coords: Tensor, labels: Tensor, label_names: Sequence[str], title: str
) -> Figure:
    """A still of the 3D projection (the static companion of `rotating_3d_html`)."""
    _check_points(coords, labels, 3)
    fig = plt.figure(figsize=(6, 5))
    ax = fig.add_subplot(projection="3d")
    for i, name in enumerate(label_names):
        mask = labels == i
        ax.scatter(*coords[mask].T.numpy(), s=2, alpha=0.5, color=_colour(name), label=name)
    ax.set_xlabel("1")
    ax.set_ylabel("2")
    ax.set_zlabel("3")
    ax.set_title(title)
    ax.legend(markerscale=4, title="label", loc="upper left")
    fig.tight_layout()
    return fig
