"""Causal tracing (Meng et al. 2022, section 2.1): where a model recalls a fact (chapter 8).

Corrupt the subject by adding Gaussian noise (3x the embedding std, ROME's choice) to its
token embeddings; then restore one clean hidden state at a time (a layer's residual output,
MLP output or attention output, at one position) and see how much of the probability of the
true object comes back. Indirect effect = P(restored) - P(corrupted); total effect =
P(clean) - P(corrupted). Hooks are asked of the interventions module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.analysis.interventions import (
    add_activation,
    patch_activation,
    run_with_interventions,
)

KINDS = {"resid": "hook_resid_post", "mlp": "hook_mlp_out", "attn": "hook_attn_out"}
NOISE_MULTIPLIER = 3.0  # Meng et al. 2022: noise of 3 times the std of subject embeddings
# Restorations per forward pass are capped so their logits stay under this many floats (512 MiB).
LOGITS_BUDGET = 2**27
CATEGORIES = ("first subject", "last subject", "first subsequent", "further tokens", "last token")


@dataclass
class TraceResult:
    """One fact's trace: P(target) restored at each (layer, position), for each kind."""

    tokens: Int[Tensor, " pos"]
    subject_pos: tuple[int, int]
    target: int
    p_clean: float
    p_corrupt: float
    restored: dict[str, Float[Tensor, "layer pos"]] = field(default_factory=dict)

    @property
    def total_effect(self) -> float:
        return self.p_clean - self.p_corrupt

    def indirect_effect(self, kind: str) -> Float[Tensor, "layer pos"]:
        """P(restored) - P(corrupted) at each (layer, position)."""
        return self.restored[kind] - self.p_corrupt

    def categories(self) -> list[int]:
        """Position -> index into CATEGORIES (-1 before the subject)."""
        start, end = self.subject_pos
        n = len(self.tokens)
        out = []
        for p in range(n):
            if p < start:
                out.append(-1)
            elif p == n - 1:
                out.append(4)
            elif p < end - 1:
                out.append(0)
            elif p == end - 1:
                out.append(1)
            else:
                out.append(2 if p == end else 3)
        return out


def embedding_noise_std(model, token_ids: Sequence[int] | Tensor) -> float:
    """The std of the token embeddings of `token_ids` (e.g. every subject token), as in ROME."""
    ids = torch.as_tensor(token_ids).flatten().unique()
    if ids.numel() < 2:
        raise ValueError(f"expected >= 2 distinct token ids, got {ids.tolist()}")
    return float(model.W_E[ids].detach().std())


def _probs(logits: Tensor, target: int) -> Tensor:
    return logits[:, -1].float().softmax(-1)[:, target]


def _restored_probs(model, tokens, cache, kind, sites, noise, start, target) -> Tensor:
    """P(target) for each (site, noise draw): the corrupted run with one clean state restored."""
    n_samples, end = noise.shape[0], start + noise.shape[1]
    batch = len(sites) * n_samples
    big_noise = noise.repeat(len(sites), 1, 1).reshape(-1, noise.shape[-1])
    rows = torch.arange(batch).repeat_interleave(end - start)
    cols = torch.arange(start, end).repeat(batch)
    site_of_row = torch.arange(batch) // n_samples
    fns = {"hook_embed": add_activation(big_noise, rows, cols)}
    for layer in sorted({lay for lay, _ in sites}):
        mine = torch.tensor([i for i, (lay, _) in enumerate(sites) if lay == layer])
        which = torch.isin(site_of_row, mine).nonzero()[:, 0]
        pos = torch.tensor([sites[int(s)][1] for s in site_of_row[which]])
        name = f"blocks.{layer}.{KINDS[kind]}"
        fns[name] = patch_activation(cache[name], which, pos)
    return _probs(run_with_interventions(model, tokens[None].expand(batch, -1), fns), target)


@torch.no_grad()
def trace_fact(
    model,
    tokens: Int[Tensor, " pos"],
    subject_pos: tuple[int, int],
    target: int,
    noise_std: float,
    n_samples: int = 10,
    kinds: Sequence[str] = tuple(KINDS),
    seed: int = 0,
) -> TraceResult:
    """Trace one prompt (1-D tokens ending where the object is predicted); see module doc.

    Every (layer, position) restoration runs `n_samples` noise draws; positions before the
    subject are skipped (the noise cannot reach them, their effect is exactly 0).
    """
    if tokens.ndim != 1:
        raise ValueError(f"expected 1-D tokens [pos], got shape {tuple(tokens.shape)}")
    start, end = subject_pos
    if not 0 <= start < end <= len(tokens):
        raise ValueError(f"expected 0 <= start < end <= {len(tokens)}, got {subject_pos}")
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"expected kinds from {tuple(KINDS)}, got {bad}")
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n_samples, end - start, model.cfg.d_model, generator=gen) * noise_std
    n_layers, n_pos = model.cfg.n_layers, len(tokens)
    logits, cache = model.run_with_cache(tokens[None], return_type="logits")
    p_clean = float(_probs(logits, target)[0])
    rows = torch.arange(n_samples).repeat_interleave(end - start)
    cols = torch.arange(start, end).repeat(n_samples)
    corrupt = {"hook_embed": add_activation(noise.reshape(-1, noise.shape[-1]), rows, cols)}
    p_corrupt = float(
        _probs(
            run_with_interventions(model, tokens[None].expand(n_samples, -1), corrupt), target
        ).mean()
    )
    result = TraceResult(tokens, subject_pos, target, p_clean, p_corrupt)
    # One batch per kind: row block (layer, position) x n_samples noise draws; a large model's
    # logits are split into chunks of sites (the fact model's always fit in one).
    sites = [(layer, p) for layer in range(n_layers) for p in range(start, n_pos)]
    per_chunk = max(1, LOGITS_BUDGET // (n_samples * n_pos * model.cfg.d_vocab))
    chunks = [sites[i : i + per_chunk] for i in range(0, len(sites), per_chunk)]
    for kind in kinds:
        probs = torch.cat(
            [
                _restored_probs(model, tokens, cache, kind, chunk, noise, start, target)
                for chunk in chunks
            ]
        )
        grid = torch.full((n_layers, n_pos), p_corrupt)
        grid[:, start:] = probs.reshape(n_layers, n_pos - start, n_samples).mean(-1)
        result.restored[kind] = grid
    return result


@dataclass
class AverageTrace:
    """Indirect effects averaged over facts by token category (ROME's figure 2 rows)."""

    indirect: dict[str, Float[Tensor, "layer category"]]
    total_effect: float
    n_facts: int
    categories: tuple[str, ...] = CATEGORIES


def average_traces(traces: Sequence[TraceResult]) -> AverageTrace:
    """Mean indirect effect per (layer, category) over traces, and the mean total effect."""
    if not traces:
        raise ValueError("expected at least one trace, got none")
    kinds = list(traces[0].restored)
    n_layers = traces[0].restored[kinds[0]].shape[0]
    out = {}
    for kind in kinds:
        total = torch.zeros(n_layers, len(CATEGORIES))
        count = torch.zeros(len(CATEGORIES))
        for t in traces:
            ie = t.indirect_effect(kind)
            for p, c in enumerate(t.categories()):
                if c >= 0:
                    total[:, c] += ie[:, p]
                    count[c] += 1
        out[kind] = total / count.clamp(min=1)
    te = sum(t.total_effect for t in traces) / len(traces)
    return AverageTrace(out, te, len(traces))


def trace_prompts(
    model,
    prompts: Sequence,
    noise_std: float,
    n_samples: int = 10,
    seed: int = 0,
    kinds: Sequence[str] = tuple(KINDS),
) -> list[TraceResult]:
    """`trace_fact` for each prompt (objects with .ids, .subject_pos, .target: the fact world's
    prompts or `fact_prompts.FactPrompt`s for any tokenizer)."""
    return [
        trace_fact(
            model,
            torch.tensor(p.ids),
            p.subject_pos,
            p.target,
            noise_std,
            n_samples,
            kinds,
            seed=seed + i,
        )
        for i, p in enumerate(prompts)
    ]


def peak_layer(avg: AverageTrace, kind: str = "mlp", category: str = "last subject") -> int:
    """The layer whose restored `kind` state at `category` brings back the most, on average."""
    if kind not in avg.indirect or category not in avg.categories:
        raise ValueError(
            f"expected kind in {list(avg.indirect)} and category in {avg.categories}, "
            f"got {kind!r}, {category!r}"
        )
    return int(avg.indirect[kind][:, avg.categories.index(category)].argmax())


def prompts_noise_std(model, prompts: Sequence) -> float:
    """ROME's noise level for tokenized prompts: 3 x the std of their subject-token embeddings."""
    ids = [p.ids[i] for p in prompts for i in range(*p.subject_pos)]
    return NOISE_MULTIPLIER * embedding_noise_std(model, ids)


def subject_noise_std(model, world) -> float:
    """ROME's noise level for a fact world: 3 x the std of its subject-token embeddings."""
    ids = [i for s in world.subjects for i in world.tokenizer.encode(s)]
    return NOISE_MULTIPLIER * embedding_noise_std(model, ids)
