"""Chapter 8's online section: trace a model's best-known shipped facts and report the run."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jaxtyping import Int
from torch import Tensor

from tutorial_sae.analysis.fact_prompts import (
    KnownFactPrompts,
    all_known_fact_prompts,
    true_object_ranks,
)
from tutorial_sae.analysis.tracing import (
    AverageTrace,
    average_traces,
    peak_layer,
    prompts_noise_std,
    trace_prompts,
)
from tutorial_sae.utils import check_int

ROW_METRICS = ("efficacy", "paraphrase", "neighbourhood", "seconds")
NUMBER_KEYS = (
    "n_shipped",
    "n_top1",
    "n_traced",
    "total_effect",
    "mlp_layer",
    "mlp_peak",
    "mlp_last_token",
    *ROW_METRICS,
)


@dataclass(frozen=True)
class KnownFactTrace:
    """The shipped facts, how well the model knows each, and the average trace of the best."""

    shipped: list[KnownFactPrompts]
    ranks: Int[Tensor, " n_shipped"]  # rank of the true object (0 = top-1), shipped order
    known: list[KnownFactPrompts]  # the shipped facts, best-known first
    noise_std: float
    avg: AverageTrace
    layer: int  # the MLP layer that brings back the most at the last subject token


def trace_known_facts(
    model, facts, n_known: int, n_samples: int = 10, seed: int = 0
) -> KnownFactTrace:
    """Causal tracing (Meng et al. 2022, section 2.1) of the `n_known` shipped facts `model`
    answers best (lowest true-object rank, ties in shipped order), MLP restorations only, with
    ROME's noise (3 x the std of all shipped subjects' embeddings); peak = `peak_layer`."""
    check_int(n_known, "n_known")
    check_int(n_samples, "n_samples")
    shipped = all_known_fact_prompts(model.tokenizer, facts)
    if not shipped:
        raise ValueError("expected known facts with at least one fact, got none")
    clean = [kp.clean for kp in shipped]
    ranks = true_object_ranks(model, clean)
    known = [shipped[i] for i in ranks.argsort(stable=True).tolist()]
    noise_std = prompts_noise_std(model, clean)
    traces = trace_prompts(
        model, [kp.clean for kp in known[:n_known]], noise_std, n_samples, seed=seed, kinds=("mlp",)
    )
    avg = average_traces(traces)
    return KnownFactTrace(shipped, ranks, known, noise_std, avg, peak_layer(avg, "mlp"))


def known_fact_numbers(traced: KnownFactTrace, rows: Sequence[Mapping]) -> dict[str, float]:
    """The numbers chapter 8 glues (prefix "gpt2_") for its online paragraph: facts shipped,
    answered top-1 and traced; the mean total effect; the peak MLP layer at the last subject
    token and its indirect effect; the largest MLP indirect effect at the last token; and the
    mean of each ROME score over `rows` (`rome_known_facts`)."""
    if not isinstance(traced, KnownFactTrace):
        raise TypeError(f"expected a KnownFactTrace, got {type(traced).__name__}")
    if "mlp" not in traced.avg.indirect:
        raise ValueError(f"expected an MLP trace, got kinds {list(traced.avg.indirect)}")
    if not rows:
        raise ValueError("expected at least one ROME row, got none")
    missing = [m for m in ROW_METRICS if any(m not in r for r in rows)]
    if missing:
        raise ValueError(f"expected rows with keys {list(ROW_METRICS)}, missing {missing}")
    mlp = traced.avg.indirect["mlp"]
    cats = traced.avg.categories
    return {
        "n_shipped": len(traced.shipped),
        "n_top1": int((traced.ranks == 0).sum()),
        "n_traced": traced.avg.n_facts,
        "total_effect": traced.avg.total_effect,
        "mlp_layer": traced.layer,
        "mlp_peak": float(mlp[:, cats.index("last subject")][traced.layer]),
        "mlp_last_token": float(mlp[:, cats.index("last token")].max()),
        **{m: statistics.fmean(r[m] for r in rows) for m in ROW_METRICS},
    }


def known_fact_paragraph(
    label: str, numbers: Mapping[str, float], n_layers: int, n_edits: int
) -> str:
    """Chapter 8's online paragraph (Markdown) from `known_fact_numbers`' values."""
    missing = [k for k in NUMBER_KEYS if k not in numbers]
    if missing:
        raise ValueError(f"expected numbers with keys {list(NUMBER_KEYS)}, missing {missing}")
    check_int(n_layers, "n_layers")
    check_int(n_edits, "n_edits")
    g = numbers
    return (
        f"On **{label}**: it answers {g['n_top1']} "
        f"of the {g['n_shipped']} shipped facts top-1. Over "
        f"the {g['n_traced']} it answers best, the "
        f"corruption removes {g['total_effect']:.2f} of the "
        "true object's probability; restoring one MLP output at "
        "the last subject token brings back the most at "
        f"**layer {g['mlp_layer']}** of {n_layers} "
        f"({g['mlp_peak']:.2f}), while no MLP at the last "
        f"token brings back more than {g['mlp_last_token']:.2f}. "
        f"ROME at that layer, over {n_edits} edits: "
        f"efficacy {g['efficacy']:.0%}, "
        f"paraphrase {g['paraphrase']:.0%}, "
        f"neighbourhood {g['neighbourhood']:.0%}, "
        f"{g['seconds']:.1f} s per edit."
    )
