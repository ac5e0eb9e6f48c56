"""Checkers for the exercises of chapter 7 (a seeded random walk, slerp, the isotropic cosine)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tutorial_sae.analysis.walks import isotropic_cosine, random_walk, slerp, walk_directions
from tutorial_sae.exercises.runner import CheckResult, Mistake, run_check


def _walk_ref(
    start: Tensor, n_steps: int, step_size: float, n_seeds: int, seed: int, clip: bool
) -> Tensor:
    return random_walk(start, n_steps, step_size, n_seeds, seed, torch.relu if clip else None)


def _walk_variant(with_start: bool = True, clip_first: bool = False, scale: str = "s"):
    def walk(start, n_steps, step_size, n_seeds, seed, clip):
        dirs = walk_directions(n_steps, n_seeds, start.shape[0], seed)
        size = step_size**2 if scale == "s2" else step_size
        z = start.expand(n_seeds, -1).clone()
        states = [z] if with_start else []
        for u in dirs:
            z = (torch.relu(z) + size * u) if (clip and clip_first) else z + size * u
            if clip and not clip_first:
                z = torch.relu(z)
            states.append(z)
        return torch.stack(states, dim=1)

    return walk


def _walk_cases(seed: int) -> list[dict[str, Any]]:
    cases = []
    for i, (dim, n_steps, size, n_seeds, clip) in enumerate(
        ((6, 5, 0.5, 3, False), (40, 12, 1.5, 4, True), (16, 3, 2.0, 2, True))
    ):
        gen = torch.Generator().manual_seed(seed + i)
        start = torch.relu(torch.randn(dim, generator=gen))
        cases.append(
            {
                "start": start,
                "n_steps": n_steps,
                "step_size": size,
                "n_seeds": n_seeds,
                "seed": seed + 10 * i,
                "clip": clip,
            }
        )
    return cases


def check_random_walk(student_fn: Callable[..., Tensor], seed: int = 0) -> CheckResult:
    """Compare `student_fn(start, n_steps, step_size, n_seeds, seed, clip)` with `random_walk`."""
    mistakes = [
        Mistake(
            _walk_variant(with_start=False),
            "the walk's first state is the start itself: return n_steps + 1 states per walk.",
        ),
        Mistake(
            _walk_variant(clip_first=True),
            "take the step first, then clip: z = relu(z + step_size * u).",
        ),
        Mistake(
            _walk_variant(scale="s2"),
            "the directions are unit vectors: multiply them by step_size, not its square.",
        ),
    ]
    return run_check(
        "random_walk",
        student_fn,
        _walk_ref,
        _walk_cases(seed),
        mistakes=mistakes,
        hint="dirs = walk_directions(n_steps, n_seeds, dim, seed); start every walk at `start`; "
        "for each u in dirs: z = z + step_size * u, then relu if clip; stack on dim 1.",
    )


def _slerp_variant(kind: str):
    def interp(a, b, alphas):
        w = alphas[:, None]
        if kind == "lerp":
            return (1 - w) * a + w * b
        if kind == "swapped":
            return slerp(b, a, alphas)
        ua, ub = a / a.norm(), b / b.norm()
        theta = torch.arccos((ua @ ub).clamp(-1, 1))
        return (torch.sin((1 - w) * theta) * ua + torch.sin(w * theta) * ub) / torch.sin(theta)

    return interp


def _slerp_cases(seed: int) -> list[dict[str, Any]]:
    cases = []
    for i, dim in enumerate((3, 32, 200)):
        gen = torch.Generator().manual_seed(seed + i)
        a, b = torch.relu(torch.randn(2, dim, generator=gen)) + 0.1
        cases.append({"a": a * (1 + i), "b": b, "alphas": torch.linspace(0, 1, 7)})
    return cases


def check_slerp(student_fn: Callable[..., Tensor], seed: int = 0) -> CheckResult:
    """Compare `student_fn(a, b, alphas)` with the package's `slerp`."""
    mistakes = [
        Mistake(
            _slerp_variant("lerp"),
            "that is linear interpolation: move along the great circle, with sin weights.",
        ),
        Mistake(
            _slerp_variant("unit"),
            "the directions are right; now scale each point to (1 - alpha)|a| + alpha|b|.",
        ),
        Mistake(
            _slerp_variant("swapped"),
            "alpha = 0 must give a and alpha = 1 must give b: a's weight is sin((1-alpha)θ).",
        ),
    ]
    return run_check(
        "slerp",
        student_fn,
        slerp,
        _slerp_cases(seed),
        mistakes=mistakes,
        hint="theta = arccos(a^ . b^); direction = (sin((1-α)θ) a^ + sin(αθ) b^) / sin θ; "
        "scale by (1-α)|a| + α|b|.",
    )


def _cosine_variant(kind: str):
    def cosine(start_norm, step_size, n_steps):
        t = torch.arange(n_steps + 1, dtype=torch.float32)
        if kind == "no_sqrt":
            return 1 / (1 + t * step_size**2 / start_norm**2)
        if kind == "linear_s":
            return 1 / torch.sqrt(1 + t * step_size / start_norm**2)
        return 1 / torch.sqrt(1 + t[1:] * step_size**2 / start_norm**2)

    return cosine


def check_isotropic_cosine(student_fn: Callable[..., Tensor], seed: int = 0) -> CheckResult:
    """Compare `student_fn(start_norm, step_size, n_steps)` with `isotropic_cosine`."""
    gen = torch.Generator().manual_seed(seed)
    cases = [
        {"start_norm": float(n), "step_size": float(s), "n_steps": int(k)}
        for n, s, k in zip(
            torch.rand(3, generator=gen) * 10 + 2, (0.5, 2.0, 3.0), (10, 25, 4), strict=True
        )
    ]
    mistakes = [
        Mistake(
            _cosine_variant("no_sqrt"),
            "cos = x0.x_t / (|x0| |x_t|) and |x_t| = sqrt(|x0|^2 + t s^2): keep the square root.",
        ),
        Mistake(
            _cosine_variant("linear_s"),
            "t steps of length s add t s^2 to the squared norm: square the step size.",
        ),
        Mistake(
            _cosine_variant("from_one"),
            "include step 0 (cosine 1): return n_steps + 1 values, t = 0, 1, ..., n_steps.",
        ),
    ]
    return run_check(
        "isotropic_cosine",
        student_fn,
        isotropic_cosine,
        cases,
        mistakes=mistakes,
        hint="t = arange(n_steps + 1); return 1 / sqrt(1 + t * step_size**2 / start_norm**2).",
    )
