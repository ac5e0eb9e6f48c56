"""Checkers for the exercises of chapter 1 (activation functions, norms, soft thresholding)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tutorial_sae.core.math_toys import Norms, gelu_exact, gelu_tanh, norms, soft_threshold
from tutorial_sae.exercises.runner import CheckResult, Mistake, compare_tensors, run_check


def _gelu_cases(seed: int) -> list[dict[str, Any]]:
    gen = torch.Generator().manual_seed(seed)
    return [
        {"x": torch.linspace(-6, 6, 241)},
        {"x": 3 * torch.randn(4, 7, generator=gen)},
        {"x": torch.tensor([0.0, -0.0, 1e-8, -30.0, 30.0])},
    ]


def check_gelu(student_fn: Callable[[Tensor], Tensor], seed: int = 0) -> CheckResult:
    """Compare `student_fn(x)` with the exact GELU x * Phi(x) (erf form)."""
    mistakes = [
        Mistake(
            gelu_tanh,
            "this is the tanh approximation; the exact GELU uses the normal CDF, "
            "Phi(x) = (1 + erf(x / sqrt(2))) / 2 (torch.erf).",
        ),
        Mistake(
            lambda x: x * torch.sigmoid(1.702 * x),
            "this is the sigmoid approximation x * sigmoid(1.702 x); use the normal CDF "
            "via torch.erf instead.",
        ),
        Mistake(
            lambda x: 0.5 * (1 + torch.erf(x / math.sqrt(2))),
            "you returned Phi(x) alone; GELU multiplies it by x.",
        ),
        Mistake(
            lambda x: x * 0.5 * (1 + torch.erf(x)),
            "erf needs x / sqrt(2) as its argument to give the standard normal CDF.",
        ),
        Mistake(torch.relu, "ReLU is max(0, x); GELU weights x by the probability Phi(x)."),
    ]
    return run_check(
        "gelu",
        student_fn,
        gelu_exact,
        _gelu_cases(seed),
        mistakes=mistakes,
        hint="GELU(x) = x * Phi(x) with Phi(x) = (1 + erf(x / sqrt(2))) / 2; use torch.erf.",
    )


def _compare_norms(got: Any, expected: Norms) -> str | None:
    if not all(hasattr(got, name) for name in ("l0", "l1", "l2")):
        return f"expected a Norms(l0=..., l1=..., l2=...), got {type(got).__name__}"
    for name in ("l0", "l1", "l2"):
        problem = compare_tensors(getattr(got, name), getattr(expected, name))
        if problem is not None:
            return f"{name}: {problem}"
    return None


def _norm_cases(seed: int) -> list[dict[str, Any]]:
    gen = torch.Generator().manual_seed(seed)
    sparse = torch.randn(8, 20, generator=gen) * (torch.rand(8, 20, generator=gen) < 0.3)
    return [
        {"x": torch.tensor([[3.0, -4.0, 0.0], [0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]])},
        {"x": sparse},
        {"x": torch.randn(5, 6, generator=gen)},
    ]


def check_norms(student_fn: Callable[[Tensor], Norms], seed: int = 0) -> CheckResult:
    """Compare `student_fn(x)` with the row-wise L0, L1 and L2 norms of a batch of vectors."""
    mistakes = [
        Mistake(
            lambda x: Norms((x > 0).to(x.dtype).sum(-1), x.abs().sum(-1), x.pow(2).sum(-1).sqrt()),
            "L0 counts entries that are non-zero, negative ones included (x != 0, not x > 0).",
        ),
        Mistake(
            lambda x: Norms((x != 0).to(x.dtype).sum(-1), x.sum(-1), x.pow(2).sum(-1).sqrt()),
            "L1 sums absolute values: x.abs().sum(-1).",
        ),
        Mistake(
            lambda x: Norms((x != 0).to(x.dtype).sum(-1), x.abs().sum(-1), x.pow(2).sum(-1)),
            "L2 is the square root of the sum of squares.",
        ),
        Mistake(
            lambda x: Norms((x != 0).to(x.dtype).sum(0), x.abs().sum(0), x.pow(2).sum(0).sqrt()),
            "each row is one vector: reduce over the last dimension (dim=-1).",
        ),
    ]
    return run_check(
        "norms",
        student_fn,
        norms,
        _norm_cases(seed),
        compare=_compare_norms,
        mistakes=mistakes,
        hint="per row: L0 = number of non-zero entries (as a float), L1 = sum |x_i|, "
        "L2 = sqrt(sum x_i^2); return Norms(l0=..., l1=..., l2=...).",
    )


def check_soft_threshold(
    student_fn: Callable[[Tensor, float], Tensor], seed: int = 0
) -> CheckResult:
    """Compare `student_fn(x, threshold)` with sign(x) * max(|x| - threshold, 0)."""
    gen = torch.Generator().manual_seed(seed)
    cases = [
        {"x": torch.linspace(-2, 2, 41), "threshold": 0.5},
        {"x": torch.randn(6, 9, generator=gen), "threshold": 0.3},
        {"x": torch.randn(10, generator=gen), "threshold": 0.0},
    ]
    mistakes = [
        Mistake(
            lambda x, threshold: torch.relu(x - threshold),
            "negative inputs must stay negative: shrink |x| and put the sign back.",
        ),
        Mistake(
            lambda x, threshold: x * (x.abs() > threshold),
            "this is hard thresholding; the survivors must also move towards zero by `threshold`.",
        ),
        Mistake(
            lambda x, threshold: torch.sign(x) * (x.abs() - threshold),
            "entries with |x| < threshold must become exactly 0, not flip sign: clip "
            "|x| - threshold at zero.",
        ),
    ]
    return run_check(
        "soft_threshold",
        student_fn,
        soft_threshold,
        cases,
        mistakes=mistakes,
        hint="soft_threshold(x, t) = sign(x) * max(|x| - t, 0) (torch.sign, torch.relu).",
    )
