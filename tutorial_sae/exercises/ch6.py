"""Checkers for the exercises of chapter 6 (an ablation hook, attribution, top-k overlap)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tutorial_sae.analysis.ablation import attribute, top_k_overlap
from tutorial_sae.analysis.interventions import SAESplice, zero_features
from tutorial_sae.core.sae import SAE, SAEConfig
from tutorial_sae.exercises.runner import CheckResult, Mistake, run_check


def _ablated_ref(x: Tensor, sae: SAE, feature: int) -> Tensor:
    # The splice the chapter uses: zero the feature, keep the SAE's error term.
    return SAESplice(sae, zero_features(feature), keep_error=True)(x)


def _ablation_cases(seed: int) -> list[dict[str, Any]]:
    cases = []
    for i, (n, d_in, d_sae) in enumerate(((6, 8, 24), (40, 16, 64))):
        gen = torch.Generator().manual_seed(seed + i)
        sae = SAE(SAEConfig(d_in=d_in, d_sae=d_sae, seed=seed + i))
        x = torch.randn(n, d_in, generator=gen).abs()
        with torch.no_grad():
            sae.b_enc.copy_(0.3 * torch.randn(d_sae, generator=gen))
            # A trained encoder is no longer the decoder's transpose (its initialisation).
            sae.W_enc.add_(0.3 * torch.randn(d_in, d_sae, generator=gen))
            f = sae.encode(x)
        # A feature that fires on some tokens but not all, so both cases are tested.
        share = (f > 0).float().mean(0)
        feature = int(((share - 0.5).abs() + 2.0 * (share == 0)).argmin())
        cases.append({"x": x, "sae": sae, "feature": feature})
    return cases


def check_ablated_activation(
    student_fn: Callable[[Tensor, SAE, int], Tensor], seed: int = 0
) -> CheckResult:
    """Compare `student_fn(x, sae, feature)` with the interventions module's zero-ablation
    splice (error term kept) on seeded SAEs and activations."""
    mistakes = [
        Mistake(
            lambda x, sae, feature: sae.decode(zero_features(feature)(sae.encode(x))),
            "keep the SAE's error term: the model should read x itself, changed only by the "
            "ablated feature's contribution, not the reconstruction x_hat.",
        ),
        Mistake(
            lambda x, sae, feature: x - sae.W_dec[feature],
            "scale the decoder row by each token's activation f_i(x): where the feature is 0 "
            "nothing changes.",
        ),
        Mistake(
            lambda x, sae, feature: x - sae.encode(x)[:, feature, None] * sae.W_enc[:, feature],
            "a feature writes along its decoder row W_dec[i], not its encoder column.",
        ),
    ]
    return run_check(
        "ablated_activation",
        student_fn,
        _ablated_ref,
        _ablation_cases(seed),
        mistakes=mistakes,
        hint="f = sae.encode(x); return x - f[:, feature, None] * sae.W_dec[feature].",
    )


def _attribution_cases(seed: int) -> list[dict[str, Any]]:
    cases = []
    for i, (n, d_sae, strength) in enumerate(((10, 6, 1.0), (50, 30, 0.1), (20, 12, 0.5))):
        gen = torch.Generator().manual_seed(seed + i)
        latents = torch.relu(torch.randn(n, d_sae, generator=gen) - 0.5)
        grads = torch.randn(n, d_sae, generator=gen)
        cases.append({"latents": latents, "grads": grads, "strength": strength, "n_scored": n - 2})
    return cases


def check_attribution(
    student_fn: Callable[[Tensor, Tensor, float, int], Tensor], seed: int = 0
) -> CheckResult:
    """Compare `student_fn(latents, grads, strength, n_scored)` with `ablation.attribute`."""
    mistakes = [
        Mistake(
            lambda latents, grads, strength, n_scored: (
                strength * (latents * grads).sum(0) / n_scored
            ),
            "mind the sign: scaling f_i by (1 - s) moves it by -s f_i, so the loss moves by "
            "about -s f_i dL/df_i.",
        ),
        Mistake(
            lambda latents, grads, strength, n_scored: -strength * grads.sum(0) / n_scored,
            "multiply each gradient by the feature's activation on that token: the edit is "
            "proportional to f_i, and zero where the feature is silent.",
        ),
        Mistake(
            lambda latents, grads, strength, n_scored: (
                -strength * (latents * grads).abs().sum(0) / n_scored
            ),
            "keep the sign of f_i dL/df_i on each token: contributions of opposite sign cancel.",
        ),
    ]
    return run_check(
        "attribution",
        student_fn,
        attribute,
        _attribution_cases(seed),
        mistakes=mistakes,
        hint="return -strength * (latents * grads).sum(0) / n_scored.",
    )


def _jaccard_ref(first: Tensor, second: Tensor, k: int) -> Tensor:
    return torch.tensor(top_k_overlap(torch.arange(len(first)), first, second, k).jaccard)


def _as_tensor(fn: Callable[..., Any]) -> Callable[..., Any]:
    def run(first, second, k):
        out = fn(first=first, second=second, k=k)
        return torch.tensor(float(out)) if isinstance(out, (int, float)) else out

    return run


def _jaccard_cases(seed: int) -> list[dict[str, Any]]:
    cases = []
    for i, (n, k) in enumerate(((12, 3), (200, 10), (40, 10))):
        gen = torch.Generator().manual_seed(seed + i)
        first = torch.randn(n, generator=gen)
        # Correlated scores, so the two top sets share some but not all members.
        second = first + 0.8 * torch.randn(n, generator=gen)
        cases.append({"first": first, "second": second, "k": k})
    return cases


def _jaccard_variant(denominator: str = "union", largest: bool = True) -> Callable[..., float]:
    def jaccard(first, second, k):
        a = set(first.topk(k, largest=largest).indices.tolist())
        b = set(second.topk(k, largest=largest).indices.tolist())
        size = {"union": len(a | b), "k": k, "2k": 2 * k}[denominator]
        return len(a & b) / size

    return jaccard


def check_jaccard_top_k(
    student_fn: Callable[[Tensor, Tensor, int], float], seed: int = 0
) -> CheckResult:
    """Compare `student_fn(first, second, k)` with `ablation.top_k_overlap(...).jaccard`."""
    mistakes = [
        Mistake(
            _as_tensor(_jaccard_variant("k")),
            "that is the share of the first top-k found in the second; Jaccard divides the "
            "intersection by the UNION of the two sets.",
        ),
        Mistake(
            _as_tensor(_jaccard_variant("2k")),
            "the union counts a shared feature once: |A | B| = 2k - |A & B|, not 2k.",
        ),
        Mistake(
            _as_tensor(_jaccard_variant(largest=False)),
            "take the k LARGEST scores (torch.topk's default), not the smallest.",
        ),
    ]
    return run_check(
        "jaccard_top_k",
        _as_tensor(student_fn) if callable(student_fn) else student_fn,
        _jaccard_ref,
        _jaccard_cases(seed),
        mistakes=mistakes,
        hint="a = set(first.topk(k).indices.tolist()); b likewise; return len(a & b) / len(a | b).",
    )
