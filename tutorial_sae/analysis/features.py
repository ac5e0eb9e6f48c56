"""Meeting a feature: firing statistics, top contexts, activation histograms, logit effects (chapters 4-7).

A feature card follows Bricken et al. 2023 (*Towards Monosemanticity*, "feature browser"): how
often the feature fires, the distribution of its activations, the held-out contexts where it
fires most, and the tokens its decoder direction promotes and suppresses through the direct path
W_dec -> W_out -> final LayerNorm -> W_U. All statistics come from one pass over activations.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

# Token-text helpers moved to tutorial_sae.analysis.token_text; re-exported so old imports work.
from tutorial_sae.analysis.token_text import (  # noqa: F401
    UNUSED_TOKEN,
    _byte_decoder,
    row_label,
    token_pieces,
    token_text,
)
from tutorial_sae.core.sae import SAE
from tutorial_sae.data.activations import DEFAULT_HOOK, check_tokens
from tutorial_sae.utils import check_index, check_int, check_real, check_sae, check_tensor

LABEL_NAMES = ("en", "code", "zh", "ar")
HIST_EDGES = torch.linspace(-3.0, 2.0, 26)  # log10 activation, 0.001 to 100


@dataclass(frozen=True)
class LabelledTokens:
    """Held-out token rows [n_seq, pos] (BOS first) and each row's language/domain label."""

    tokens: Int[Tensor, "n_seq pos"]
    labels: Int[Tensor, " n_seq"]
    label_names: tuple[str, ...]

    def __post_init__(self) -> None:
        check_tokens(self.tokens)
        check_tensor(self.labels, "labels", 1, "int", nonempty=False)
        if len(self.labels) and not 0 <= int(self.labels.min()) <= int(self.labels.max()) < len(
            self.label_names
        ):
            raise ValueError(f"labels must index label_names {self.label_names}, got "
                             f"{self.labels.unique().tolist()[:8]}")  # fmt: skip
        if self.labels.shape != (len(self.tokens),):
            raise ValueError(
                f"expected one label per row ({len(self.tokens)}), got {tuple(self.labels.shape)}"
            )

    def token_labels(self) -> Int[Tensor, "n_seq pos"]:
        return self.labels[:, None].expand_as(self.tokens)


def labelled_eval_tokens(
    model_name: str, tokenizer, n_tokens: int, seq_len: int = 128, seed: int = 0
) -> LabelledTokens:
    """Held-out rows labelled by the source they come from: mini has one stream per language.

    mini: n_tokens split equally over en, code, zh, ar. gelu-1l (c4-code-20k, no language
    tags): each row is labelled by `row_label` from its decoded text.
    """
    from tutorial_sae.models.loading import load_tokens, resolve_auto

    check_int(n_tokens, "n_tokens")
    check_int(seq_len, "seq_len", 2)
    if model_name == "auto":
        model_name = resolve_auto().model
    if model_name == "mini":
        per_lang = max(1, n_tokens // len(LABEL_NAMES))
        rows = [
            load_tokens("mini", "eval", per_lang, seq_len, lang, tokenizer, seed)
            for lang in LABEL_NAMES
        ]
        labels = torch.cat([torch.full((len(r),), i) for i, r in enumerate(rows)])
        return LabelledTokens(torch.cat(rows), labels, LABEL_NAMES)
    tokens = load_tokens(model_name, "eval", n_tokens, seq_len, None, tokenizer, seed)
    names = [row_label(tokenizer.decode(row[1:])) for row in tokens]
    return LabelledTokens(tokens, torch.tensor([LABEL_NAMES.index(n) for n in names]), LABEL_NAMES)


@dataclass(frozen=True)
class FeatureStats:
    """One pass of held-out activations through an SAE: per-feature counts, top-k, histograms."""

    name: str
    n_tokens: int
    fire_count: Int[Tensor, " d_sae"]
    act_sum: Float[Tensor, " d_sae"]
    label_mass: Float[Tensor, "d_sae n_labels"]
    top_values: Float[Tensor, "d_sae k"]
    top_index: Int[Tensor, "d_sae k"]
    hist_counts: Int[Tensor, "d_sae n_bins"]
    hist_edges: Float[Tensor, " n_edges"]
    label_names: tuple[str, ...]

    @property
    def density(self) -> Float[Tensor, " d_sae"]:
        """Share of held-out tokens on which each feature fires."""
        return self.fire_count.float() / self.n_tokens

    @property
    def alive(self) -> Tensor:
        return self.fire_count > 0

    @property
    def labels(self) -> Int[Tensor, " d_sae"]:
        """Each feature's label: the label holding most of its activation mass (-1 if dead)."""
        return torch.where(self.alive, self.label_mass.argmax(-1), -1)

    @property
    def purity(self) -> Float[Tensor, " d_sae"]:
        """Share of each feature's activation mass that falls on its label."""
        total = self.label_mass.sum(-1)
        return torch.where(total > 0, self.label_mass.max(-1).values / total.clamp_min(1e-12), 0)

    def top_tokens(self, tokens: Int[Tensor, "n_seq pos"]) -> Int[Tensor, "d_sae k"]:
        """Token ids of each feature's top activations (-1 where it fired fewer than k times)."""
        flat = tokens.reshape(-1)
        return torch.where(self.top_index >= 0, flat[self.top_index.clamp_min(0)], -1)


def _check_acts(acts: Tensor, data: LabelledTokens, d_in: int) -> None:
    check_tensor(acts, "acts", 3)
    if acts.ndim != 3 or acts.shape[:2] != data.tokens.shape or acts.shape[2] != d_in:
        raise ValueError(
            f"expected activations of shape {(*data.tokens.shape, d_in)}, got {tuple(acts.shape)}"
        )


@torch.no_grad()
def feature_stats(
    sae: SAE,
    acts: Float[Tensor, "n_seq pos d_in"],
    data: LabelledTokens,
    k: int = 20,
    name: str = "",
    chunk: int = 4096,
) -> FeatureStats:
    """Encode every non-BOS token (f = ReLU(W_enc (x - b_dec) + b_enc)) and summarise each feature.

    Keeps, per feature: firing count (density, Bricken et al. 2023), activation sum and its split
    by label, the k largest activations with their flat token index into `data.tokens`, and a
    histogram of log10 activations over `HIST_EDGES`.
    """
    check_sae(sae)
    _check_acts(acts, data, sae.cfg.d_in)
    check_int(k, "k")
    check_int(chunk, "chunk")
    n_seq, pos, _ = acts.shape
    flat_index = torch.arange(n_seq * pos).reshape(n_seq, pos)[:, 1:].reshape(-1)
    flat_acts = acts[:, 1:].reshape(-1, acts.shape[-1])
    flat_labels = data.token_labels()[:, 1:].reshape(-1)
    d_sae, n_labels, n_bins = sae.cfg.d_sae, len(data.label_names), len(HIST_EDGES) - 1
    count = torch.zeros(d_sae, dtype=torch.long)
    total = torch.zeros(d_sae)
    mass = torch.zeros(n_labels, d_sae)
    hist = torch.zeros(d_sae * n_bins, dtype=torch.long)
    top_v = torch.zeros(0, d_sae)
    top_i = torch.zeros(0, d_sae, dtype=torch.long)
    device = sae.W_enc.device
    for start in range(0, len(flat_acts), chunk):
        f = sae.encode(flat_acts[start : start + chunk].to(device).float()).cpu()
        fired = f > 0
        count += fired.sum(0)
        total += f.sum(0)
        mass.index_add_(0, flat_labels[start : start + chunk], f)
        rows, cols = fired.nonzero(as_tuple=True)
        bins = torch.bucketize(f[rows, cols].log10(), HIST_EDGES[1:-1])
        hist.index_add_(0, cols * n_bins + bins, torch.ones_like(cols))
        vals, idx = f.topk(min(k, len(f)), dim=0)
        top_v, order = torch.cat([top_v, vals]).topk(min(k, len(top_v) + len(vals)), dim=0)
        top_i = torch.cat([top_i, flat_index[start + idx]]).gather(0, order)
    top_i = torch.where(top_v > 0, top_i, -1)
    return FeatureStats(
        name, len(flat_acts), count, total, mass.T.contiguous(), top_v.T.contiguous(),
        top_i.T.contiguous(), hist.reshape(d_sae, n_bins), HIST_EDGES.clone(), data.label_names,
    )  # fmt: skip


@dataclass(frozen=True)
class Context:
    """A window of held-out text around one of a feature's top activations."""

    pieces: tuple[str, ...]
    acts: tuple[float, ...]
    centre: int
    value: float
    label: str


@dataclass(frozen=True)
class LogitEffect:
    """Tokens a feature's decoder direction most promotes and suppresses (direct path)."""

    promoted: tuple[tuple[str, float], ...]
    suppressed: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class FeatureCard:
    """Everything the book shows about one feature (see `plots.features.feature_card_html`)."""

    sae_name: str
    feature: int
    density: float
    label: str
    purity: float
    hist_edges: tuple[float, ...]
    hist_counts: tuple[int, ...]
    contexts: tuple[Context, ...]
    logits: LogitEffect | None


def _layer(hook: str) -> int:
    parts = hook.split(".")
    if len(parts) < 2 or parts[0] != "blocks" or not parts[1].isdigit():
        raise ValueError(f"expected a hook inside a block, e.g. {DEFAULT_HOOK!r}, got {hook!r}")
    return int(parts[1])


@torch.no_grad()
def final_ln_scale(model, tokens: Int[Tensor, "n_seq pos"]) -> float:
    """Mean scale the final LayerNorm divides by (its hook_scale), over non-BOS tokens."""
    check_tokens(tokens, model)
    if tokens.shape[0] == 0 or tokens.shape[1] < 2:
        raise ValueError(
            f"tokens need a row of >= 2 tokens (BOS is left out), got {tuple(tokens.shape)}"
        )
    _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter="ln_final.hook_scale")
    return float(cache["ln_final.hook_scale"][:, 1:].mean())


@torch.no_grad()
def direct_logit_effect(
    model, sae: SAE, features: Int[Tensor, " n"] | list[int], ln_scale: float,
    hook: str = DEFAULT_HOOK,
) -> Float[Tensor, "n d_vocab"]:  # fmt: skip
    """Logit change per unit of activation: W_dec,i W_out, centred, times the final LN's weight,
    divided by its typical scale, times W_U (the direct path of Bricken et al. 2023's logit
    weights; the attention of later tokens is ignored)."""
    check_real(ln_scale, "ln_scale")
    if ln_scale <= 0:
        raise ValueError(f"expected a positive ln_scale, got {ln_scale}")
    w_out = model.blocks[_layer(hook)].mlp.W_out  # [d_mlp, d_model]
    resid = sae.W_dec[torch.as_tensor(features)].to(w_out.device) @ w_out
    resid = resid - resid.mean(-1, keepdim=True)  # LayerNorm centres before scaling
    weight = getattr(model.ln_final, "w", None)  # absent when TransformerLens folded it into W_U
    if weight is not None:
        resid = resid * weight
    return (resid / ln_scale) @ model.W_U


def logit_effect(
    model, sae: SAE, feature: int, ln_scale: float, k: int = 8, hook: str = DEFAULT_HOOK
) -> LogitEffect:
    """The k tokens most promoted and most suppressed by `feature` (see `direct_logit_effect`)."""
    effect = direct_logit_effect(model, sae, [feature], ln_scale, hook)[0].cpu()
    # Rows past the tokenizer (a padded unembedding) are ids no text ever produces.
    effect = effect[: min(len(effect), len(model.tokenizer))]
    top, bottom = effect.topk(k), (-effect).topk(k)
    text = functools.partial(token_text, model.tokenizer)
    return LogitEffect(
        tuple((text(int(i)), float(v)) for v, i in zip(*top, strict=True)),
        tuple((text(int(i)), -float(v)) for v, i in zip(*bottom, strict=True)),
    )


@torch.no_grad()
def feature_card(
    sae: SAE, stats: FeatureStats, acts: Float[Tensor, "n_seq pos d_in"], data: LabelledTokens,
    tokenizer, feature: int, model=None, ln_scale: float | None = None, n_contexts: int = 6,
    before: int = 14, after: int = 4,
) -> FeatureCard:  # fmt: skip
    """One feature's card: density, histogram, top held-out contexts and (given `model` and
    `ln_scale`) its logit effect."""
    check_sae(sae)
    check_index(feature, "feature index", sae.cfg.d_sae)
    check_int(n_contexts, "n_contexts", 0)
    _check_acts(acts, data, sae.cfg.d_in)
    pos = data.tokens.shape[1]
    w, b = sae.W_enc[:, feature].cpu(), sae.b_enc[feature].cpu()
    contexts = []
    for value, index in zip(stats.top_values[feature], stats.top_index[feature], strict=True):
        if index < 0 or len(contexts) == n_contexts:
            break
        seq, p = divmod(int(index), pos)
        # Decode a few tokens early so a character split across the window's edge is whole.
        lead = max(1, p - before - 4)
        start, stop = max(1, p - before), min(pos, p + after + 1)
        pieces = token_pieces(tokenizer, data.tokens[seq, lead:stop])[start - lead :]
        f = torch.relu((acts[seq, start:stop].float() - sae.b_dec.cpu()) @ w + b)
        contexts.append(Context(
            tuple(pieces), tuple(f.tolist()), p - start, float(value),
            data.label_names[int(data.labels[seq])],
        ))  # fmt: skip
    label = int(stats.labels[feature])
    logits = None
    if model is not None and ln_scale is not None:
        logits = logit_effect(model, sae, feature, ln_scale)
    return FeatureCard(
        stats.name, feature, float(stats.density[feature]),
        stats.label_names[label] if label >= 0 else "dead", float(stats.purity[feature]),
        tuple(stats.hist_edges.tolist()), tuple(stats.hist_counts[feature].tolist()),
        tuple(contexts), logits,
    )  # fmt: skip


def exemplar_features(
    stats: FeatureStats, min_density: float = 1e-3, min_purity: float = 0.9
) -> dict[str, int]:
    """For each label, the feature with the most activation mass among those firing on at least
    `min_density` of tokens with >= `min_purity` of their mass on the label (else the purest):
    the chapter's "one feature of each kind" (Han, Arabic, Python, English)."""
    check_real(min_density, "min_density", 0.0, 1.0)
    check_real(min_purity, "min_purity", 0.0, 1.0)
    found = {}
    for i, name in enumerate(stats.label_names):
        candidates = ((stats.labels == i) & (stats.density >= min_density)).nonzero().flatten()
        if not len(candidates):
            continue
        pure = candidates[stats.purity[candidates] >= min_purity]
        if len(pure):
            found[name] = int(pure[stats.act_sum[pure].argmax()])
        else:
            found[name] = int(candidates[stats.purity[candidates].argmax()])
    return found
