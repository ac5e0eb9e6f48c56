"""Chapter 3's cells: its train/eval tokens, printed summaries, and the numbers it glues."""

from __future__ import annotations

from dataclasses import dataclass

from jaxtyping import Int
from torch import Tensor

from tutorial_sae.analysis.sweeps import (
    DeadFeatureComparison,
    L1Sweep,
    load_dead_feature_comparison,
    run_dead_feature_comparison,
)
from tutorial_sae.data.activations import DEFAULT_HOOK
from tutorial_sae.training.presets import BASE, DEAD_BASE, ModelPreset
from tutorial_sae.training.trainer import TrainConfig, TrainResult


@dataclass(frozen=True)
class TokenSplits:
    """A chapter's training tokens and its held-out evaluation tokens (rows of BOS + text)."""

    train: Int[Tensor, "n_seq pos"]
    eval: Int[Tensor, "n_seq eval_pos"]


def load_token_splits(model_name: str, model, n_train: int, n_eval: int) -> TokenSplits:
    """`load_tokens(model_name, "train", n_train)` then `(..., "eval", n_eval)`, both with the
    loaded `model`'s tokenizer (the order chapter 3 has always loaded them in)."""
    from tutorial_sae.models.loading import load_tokens

    for name, n in (("n_train", n_train), ("n_eval", n_eval)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"expected a positive int {name}, got {n!r}")
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise TypeError(f"expected a loaded model with a tokenizer, got {type(model).__name__}")
    train = load_tokens(model_name, "train", n_train, tokenizer=tokenizer)
    eval_ = load_tokens(model_name, "eval", n_eval, tokenizer=tokenizer)
    return TokenSplits(train, eval_)


def describe_training_data(model, preset: ModelPreset, tokens: TokenSplits) -> str:
    """Two lines: the model's widths and hook, then the shapes of the train and eval tokens."""
    if not isinstance(tokens, TokenSplits):
        raise TypeError(f"expected TokenSplits, got {type(tokens).__name__}")
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        raise TypeError(f"expected a loaded model with a cfg, got {type(model).__name__}")
    return (
        f"{preset.model}: d_model {cfg.d_model}, d_mlp {cfg.d_mlp}, hook {DEFAULT_HOOK}\n"
        f"train tokens: {tuple(tokens.train.shape)} (sequences, positions); "
        f"eval: {tuple(tokens.eval.shape)}"
    )


def describe_training_speed(result: TrainResult) -> str:
    """One line: tokens trained on, wall-clock seconds and throughput of a `train_sae` run."""
    if not isinstance(result, TrainResult):
        raise TypeError(f"expected a TrainResult from train_sae, got {type(result).__name__}")
    return (
        f"{result.n_tokens:,} tokens in {result.seconds:.0f} s "
        f"({result.tokens_per_second:,.0f} tokens/s)"
    )


def dead_feature_comparison(
    live: bool,
    model,
    train_tokens: Int[Tensor, "n_seq pos"],
    eval_tokens: Int[Tensor, "n_seq eval_pos"],
    base: TrainConfig,
) -> DeadFeatureComparison:
    """Chapter 3.4's comparison: retrained here from `base` when `live`, else the shipped one
    (`load_dead_feature_comparison`, made on mini by the sweeps build)."""
    if not isinstance(live, bool):
        raise TypeError(f"expected live to be a bool (LIVE_COMPARISON), got {live!r}")
    if not isinstance(base, TrainConfig):
        raise TypeError(f"expected a TrainConfig base, got {type(base).__name__}")
    if not live:
        return load_dead_feature_comparison()
    return run_dead_feature_comparison(model, train_tokens, eval_tokens, base=base)


def comparison_summary(comparison: DeadFeatureComparison) -> dict[str, float]:
    """The numbers chapter 3 quotes about a dead-feature comparison, keyed for `glue_all`.

    dead_<method>: share never firing on held-out tokens; window_peak: the largest share of
    features silent over the dead window in any logged step of any run; resampled: features
    re-initialised by resampling; ev_/ce_ min and max across methods.
    """
    runs = comparison.runs.values()
    summary = {f"dead_{r.method}": r.final["dead_fraction"] for r in runs}
    summary["window_peak"] = max(max(r.log["dead_fraction"]) for r in runs)
    resample = comparison.runs.get("resample")
    summary["resampled"] = int(sum(resample.log["resampled"])) if resample else 0
    for key, name in (("explained_variance", "ev"), ("ce_loss_recovered", "ce")):
        values = [r.final[key] for r in runs]
        summary[f"{name}_min"], summary[f"{name}_max"] = min(values), max(values)
    return summary


def sweep_summary(sweep: L1Sweep) -> dict[str, float]:
    """The numbers chapter 3 quotes about an l1_coeff sweep, keyed for `glue_all`.

    first_/second_/last_: points in increasing l1_coeff; chosen_: the highlighted value;
    first_negative_l1: the smallest l1_coeff whose CE loss recovered is below 0 (NaN if none).
    """
    first, second, last = sweep.points[0], sweep.points[1], sweep.points[-1]
    chosen = sweep.point(sweep.chosen)
    negative = [p.l1_coeff for p in sweep.points if p.ce_loss_recovered < 0]
    return {
        "n_points": len(sweep.points),
        "first_l1": first.l1_coeff,
        "first_l0": first.l0,
        "first_ev": first.explained_variance,
        "first_ce": first.ce_loss_recovered,
        "second_ce": second.ce_loss_recovered,
        "last_l1": last.l1_coeff,
        "last_l0": last.l0,
        "last_ev": last.explained_variance,
        "chosen_l1": chosen.l1_coeff,
        "chosen_l0": chosen.l0,
        "chosen_ce": chosen.ce_loss_recovered,
        "chosen_dead": chosen.histogram.dead,
        "chosen_dense": chosen.dense_fraction,
        "n_tokens": chosen.histogram.n_tokens,
        "first_negative_l1": min(negative) if negative else float("nan"),
    }


def comparison_values(comparison: DeadFeatureComparison) -> dict[str, float]:
    """What chapter 3.4 glues (prefix "cmp_"): DEAD_BASE's learning rate over BASE's
    (lr_ratio), its dead window (window), then `comparison_summary(comparison)`."""
    if not isinstance(comparison, DeadFeatureComparison):
        raise TypeError(f"expected a DeadFeatureComparison, got {type(comparison).__name__}")
    return {
        "lr_ratio": DEAD_BASE.lr / BASE.lr,
        "window": DEAD_BASE.dead_window,
        **comparison_summary(comparison),
    }
