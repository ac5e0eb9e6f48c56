"""Chapter 7's walk experiments on real activations: run them, compare with the closed form, and
collect the numbers the chapter quotes (chapter 7)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tutorial_sae.analysis.walk_setup import WalkData, WalkSizes
from tutorial_sae.analysis.walks import METRICS, WalkStudy, isotropic_cosine, run_walks
from tutorial_sae.core.sae import SAE
from tutorial_sae.utils import check_choice


def _check_study(study) -> None:
    if not isinstance(study, WalkStudy):
        raise TypeError(f"expected a WalkStudy from run_walks, got {type(study).__name__}")


def _check_step(study: WalkStudy, step_size: float) -> None:
    if step_size not in study.step_sizes:
        raise ValueError(f"expected one of the study's step sizes {study.step_sizes}, got "
                         f"{step_size!r}")  # fmt: skip


def study_walks(
    sae: SAE,
    data: WalkData,
    sizes: WalkSizes,
    kinds: Sequence[str],
    step_sizes: Sequence[float],
    seed: int = 0,
    metrics: Sequence[str] = METRICS,
) -> WalkStudy:
    """`run_walks` from `data`'s starts, measured against its bank and held-out activations, with
    `sizes`' numbers of steps and seeds."""
    if not isinstance(data, WalkData):
        raise TypeError(f"expected the WalkData of walk_data, got {type(data).__name__}")
    if not isinstance(sizes, WalkSizes):
        raise TypeError(f"expected the WalkSizes of walk_sizes, got {type(sizes).__name__}")
    return run_walks(
        sae,
        data.starts,
        data.bank,
        data.held_out,
        kinds=kinds,
        step_sizes=step_sizes,
        n_steps=sizes.n_steps,
        n_seeds=sizes.n_seeds,
        seed=seed,
        metrics=metrics,
    )


def closed_form(study: WalkStudy, step_size: float) -> Float[Tensor, " T"]:
    """The isotropic cosine 1 / sqrt(1 + t s^2 / |x_0|^2) averaged over the study's starts (each
    has its own |x_0|)."""
    _check_study(study)
    curves = [isotropic_cosine(float(n), step_size, study.n_steps) for n in study.start_norms]
    return torch.stack(curves).mean(0)


def closed_form_gaps(study: WalkStudy, kinds: Sequence[str]) -> dict[str, float]:
    """For each kind: the largest relative gap |mean cosine - closed form| / closed form over every
    step and every step size of the study."""
    _check_study(study)
    if isinstance(kinds, str) or not kinds:
        raise ValueError(f"expected a non-empty list of the study's kinds, got {kinds!r}")
    gaps = {}
    for kind in kinds:
        check_choice(kind, "kinds[i]", study.kinds)
        gaps[kind] = max(
            float(
                (
                    (study.curve(kind, s, "cosine").mean(0) - closed_form(study, s)).abs()
                    / closed_form(study, s)
                ).max()
            )
            for s in study.step_sizes
        )
    return gaps


def end_cosine_values(study: WalkStudy, step_size: float, kind: str = "latent") -> dict:
    """{step, cos_end, cos_end_std}: the step size and the mean and standard deviation over all
    walks of the cosine to the start's reconstruction at the last step."""
    _check_study(study)
    _check_step(study, step_size)
    check_choice(kind, "kind", study.kinds)
    cos_end = study.curve(kind, step_size, "cosine")[:, -1]
    return {"step": step_size, "cos_end": cos_end.mean(), "cos_end_std": cos_end.std()}


def walk_kind_values(study: WalkStudy, step_size: float) -> dict:
    """The numbers section 7.3 quotes: the data radius, each kind's mean steps before leaving the
    data (`on_data_<kind>`) and final L0 (`l0_end_<kind>`), and the latent walk's starting L0."""
    _check_study(study)
    _check_step(study, step_size)
    for name in ("nearest", "l0"):
        if name not in study.metrics[study.kinds[0]][step_size]:
            raise ValueError(f"expected a study that measured {name!r} (run_walks' metrics)")
    if "latent" not in study.kinds:
        raise ValueError(f"expected a study with the 'latent' walk, got kinds {study.kinds}")
    values = {"radius": study.radius}
    for kind in study.kinds:
        values[f"on_data_{kind}"] = study.steps_on_data(kind, step_size)
        values[f"l0_end_{kind}"] = study.curve(kind, step_size, "l0")[:, -1].mean()
    values["l0_start"] = study.curve("latent", step_size, "l0")[:, 0].mean()
    return values
