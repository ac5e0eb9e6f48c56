"""Checkers for the exercises of chapter 3 (dead-feature mask, ghost-grad loss, CE loss recovered)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tutorial_sae.core.metrics import ce_loss_recovered
from tutorial_sae.core.sae import ghost_grad_loss
from tutorial_sae.exercises.runner import CheckResult, Mistake, compare_tensors, run_check
from tutorial_sae.training.resample import update_dead_counters


def _dead_mask_ref(steps_since_fired: Tensor, feature_acts: Tensor, dead_window: int) -> Tensor:
    # The trainer's own update and threshold.
    return update_dead_counters(steps_since_fired, feature_acts) >= dead_window


def _dead_mask_variant(reset: str, strict: bool, update: bool) -> Callable[..., Tensor]:
    def mask(steps_since_fired, feature_acts, dead_window):
        fired = (feature_acts > 0).all(0) if reset == "all" else (feature_acts > 0).any(0)
        updated = torch.where(fired, 0, steps_since_fired + 1) if update else steps_since_fired
        return updated > dead_window if strict else updated >= dead_window

    return mask


def _compare_masks(got: Any, expected: Tensor) -> str | None:
    if not isinstance(got, Tensor):
        return f"expected a torch.Tensor, got {type(got).__name__}"
    if got.dtype != torch.bool:
        return f"dtype {got.dtype}, expected a bool mask (a comparison such as `>=` gives one)"
    if got.shape != expected.shape:
        return f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    wrong = (got != expected).nonzero().flatten().tolist()
    if not wrong:
        return None
    return f"{len(wrong)} of {expected.numel()} features wrong, first at index {wrong[0]}"


def _dead_mask_cases(seed: int) -> list[dict[str, Any]]:
    cases = []
    for i, (batch, d_sae, window) in enumerate(((6, 10, 3), (32, 200, 50), (1, 40, 1))):
        gen = torch.Generator().manual_seed(seed + i)
        steps = torch.randint(0, 2 * window + 1, (d_sae,), generator=gen)
        # Shifted ReLU: most entries exactly zero, as in a trained SAE.
        acts = torch.relu(torch.randn(batch, d_sae, generator=gen) - 1.5)
        cases.append({"steps_since_fired": steps, "feature_acts": acts, "dead_window": window})
    return cases


def check_dead_feature_mask(
    student_fn: Callable[[Tensor, Tensor, int], Tensor], seed: int = 0
) -> CheckResult:
    """Compare `student_fn(steps_since_fired, feature_acts, dead_window)` with the trainer's rule."""
    mistakes = [
        Mistake(
            _dead_mask_variant("any", strict=True, update=True),
            "a feature is dead once it has been silent for dead_window steps: use >=, not >.",
        ),
        Mistake(
            _dead_mask_variant("any", strict=False, update=False),
            "update the counters with this batch first: reset to 0 where the feature fired, "
            "add 1 everywhere else, then compare with dead_window.",
        ),
        Mistake(
            _dead_mask_variant("all", strict=False, update=True),
            "a feature has fired in this batch if it is positive on ANY token (.any(0)), "
            "not on every token.",
        ),
    ]
    return run_check(
        "dead_feature_mask",
        student_fn,
        _dead_mask_ref,
        _dead_mask_cases(seed),
        compare=_compare_masks,
        mistakes=mistakes,
        hint="fired = (feature_acts > 0).any(0); counters = where(fired, 0, steps + 1); "
        "return counters >= dead_window.",
    )


def _ghost_ref(
    x: Tensor, x_hat: Tensor, pre_acts: Tensor, W_dec: Tensor, dead_mask: Tensor
) -> Tensor:
    return ghost_grad_loss(x, x_hat, pre_acts, W_dec, dead_mask, (x_hat - x).pow(2).sum(-1))


# The ghost term's value equals the main MSE by construction (that is what the rescaling does),
# so only its gradients tell a right implementation from a wrong one: the checker compares both.
GRAD_INPUTS = ("pre_acts", "W_dec", "x_hat")


def _with_grads(fn: Callable[..., Tensor]) -> Callable[..., Any]:
    def run(x, x_hat, pre_acts, W_dec, dead_mask):
        inputs = {"x_hat": x_hat, "pre_acts": pre_acts, "W_dec": W_dec}
        leaves = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}
        with torch.enable_grad():
            loss = fn(x=x, dead_mask=dead_mask, **leaves)
            if not isinstance(loss, Tensor) or loss.ndim != 0 or not loss.requires_grad:
                return loss
            grads = torch.autograd.grad(loss, [leaves[k] for k in GRAD_INPUTS], allow_unused=True)
        out = {"loss": loss.detach()}
        for name, grad in zip(GRAD_INPUTS, grads, strict=True):
            out[f"gradient w.r.t. {name}"] = (
                torch.zeros_like(leaves[name]) if grad is None else grad
            )
        return out

    return run


def _compare_ghost(got: Any, expected: dict[str, Tensor]) -> str | None:
    if isinstance(got, Tensor) and got.ndim != 0:
        return f"expected a scalar loss (take the mean over tokens), got shape {tuple(got.shape)}"
    if isinstance(got, Tensor):
        return "the loss has no gradient: compute it from the inputs with torch operations"
    if not isinstance(got, dict):
        return f"expected a scalar torch.Tensor, got {type(got).__name__}"
    if not torch.isfinite(got["loss"]):
        return (
            f"the loss is {float(got['loss'])}: a division by a zero norm? Dead features' ReLU "
            "outputs are all 0, which is why ghost grads decode exp(pre_acts) instead"
        )
    for name, value in expected.items():
        problem = compare_tensors(got[name], value)
        if problem is not None:
            return f"{name}: {problem}"
    return None


def _ghost_variant(
    activation: str = "exp",
    half: bool = True,
    rescale: bool = True,
    only_dead: bool = True,
    detach: bool = True,
) -> Callable[..., Tensor]:
    def loss(x, x_hat, pre_acts, W_dec, dead_mask):
        residual = (x - x_hat).detach() if detach else x - x_hat
        mask = dead_mask if only_dead else torch.ones_like(dead_mask)
        acts = torch.exp(pre_acts) if activation == "exp" else torch.relu(pre_acts)
        ghost_out = acts[:, mask] @ W_dec[mask]
        target_norm = residual.norm(dim=-1) / (2 if half else 1)
        ghost_out = ghost_out * (target_norm / ghost_out.norm(dim=-1)).detach()[:, None]
        ghost_mse = (ghost_out - residual).pow(2).sum(-1)
        if not rescale:
            return ghost_mse.mean()
        return ((x_hat - x).pow(2).sum(-1) / ghost_mse).detach().mul(ghost_mse).mean()

    return loss


def _ghost_cases(seed: int) -> list[dict[str, Any]]:
    cases = []
    for i, (batch, d_in, d_sae) in enumerate(((5, 4, 12), (24, 16, 64))):
        gen = torch.Generator().manual_seed(seed + i)
        W_dec = torch.randn(d_sae, d_in, generator=gen)
        W_dec /= W_dec.norm(dim=-1, keepdim=True)
        x = torch.randn(batch, d_in, generator=gen)
        dead = torch.rand(d_sae, generator=gen) < 0.4
        dead[0] = True
        # Dead features have negative pre-activations: they did not fire on these tokens.
        pre = torch.randn(batch, d_sae, generator=gen) - 2.0 * dead
        x_hat = torch.relu(pre) @ W_dec + 0.1 * torch.randn(d_in, generator=gen)
        cases.append({"x": x, "x_hat": x_hat, "pre_acts": pre, "W_dec": W_dec, "dead_mask": dead})
    return cases


def check_ghost_grad_loss(student_fn: Callable[..., Tensor], seed: int = 0) -> CheckResult:
    """Compare `student_fn(x, x_hat, pre_acts, W_dec, dead_mask)` and its gradients (w.r.t.
    pre_acts, W_dec and x_hat) with `sae.ghost_grad_loss`."""
    mistakes = [
        Mistake(
            _with_grads(_ghost_variant(activation="relu")),
            "dead features have negative pre-activations, so a ReLU gives them nothing to "
            "decode; ghost grads use exp(pre_acts), which is small but positive.",
        ),
        Mistake(
            _with_grads(_ghost_variant(half=False)),
            "scale the ghost output to HALF the norm of the residual x - x_hat.",
        ),
        Mistake(
            _with_grads(_ghost_variant(rescale=False)),
            "rescale the ghost MSE to the size of the main MSE: multiply each token's ghost "
            "error by (main error / ghost error), the factor detached, before the mean.",
        ),
        Mistake(
            _with_grads(_ghost_variant(only_dead=False)),
            "decode the dead features only: index pre_acts[:, dead_mask] and W_dec[dead_mask].",
        ),
        Mistake(
            _with_grads(_ghost_variant(detach=False)),
            "detach the residual x - x_hat: it is the ghost output's target, and the ghost term "
            "must not push the real reconstruction x_hat.",
        ),
    ]
    return run_check(
        "ghost_grad_loss",
        _with_grads(student_fn) if callable(student_fn) else student_fn,
        _with_grads(_ghost_ref),
        _ghost_cases(seed),
        compare=_compare_ghost,
        mistakes=mistakes,
        hint="residual = (x - x_hat).detach(); g = exp(pre_acts[:, dead]) @ W_dec[dead]; scale g "
        "per token to ||residual|| / 2 (scale factor detached); e = ||g - residual||^2 per "
        "token; return mean(e * (||x_hat - x||^2 / e).detach()).",
    )


def _recovered_ref(clean: Tensor, reconstructed: Tensor, zero_ablated: Tensor) -> Tensor:
    # The definition evaluate_sae uses.
    return ce_loss_recovered(clean, reconstructed, zero_ablated)


def _recovered_cases(seed: int) -> list[dict[str, Any]]:
    cases = []
    for i in range(2):
        gen = torch.Generator().manual_seed(seed + i)
        clean = 2.0 + torch.rand(8, generator=gen)
        zero = clean + 0.5 + 2 * torch.rand(8, generator=gen)
        # Reconstructions from perfect to worse than ablating the layer (recovered < 0).
        share = torch.tensor([0.0, 0.05, 0.1, 0.3, 0.5, 0.9, 1.0, 1.2])[
            torch.randperm(8, generator=gen)
        ]
        reconstructed = clean + share * (zero - clean)
        cases.append({"clean": clean, "reconstructed": reconstructed, "zero_ablated": zero})
    return cases


def check_ce_loss_recovered(
    student_fn: Callable[[Tensor, Tensor, Tensor], Tensor], seed: int = 0
) -> CheckResult:
    """Compare `student_fn(clean, reconstructed, zero_ablated)` with SAEMetrics' definition."""
    mistakes = [
        Mistake(
            lambda clean, reconstructed, zero_ablated: (
                (reconstructed - clean) / (zero_ablated - clean)
            ),
            "that is the fraction of the loss gap LOST; recovered is 1 minus it, "
            "(zero - reconstructed) / (zero - clean).",
        ),
        Mistake(
            lambda clean, reconstructed, zero_ablated: (
                (zero_ablated - reconstructed) / zero_ablated
            ),
            "divide by the gap between the zero-ablated and the clean loss, not by the "
            "zero-ablated loss alone.",
        ),
        Mistake(
            lambda clean, reconstructed, zero_ablated: clean / reconstructed,
            "the metric compares gaps to the zero-ablation baseline, not the two losses' ratio.",
        ),
    ]
    return run_check(
        "ce_loss_recovered",
        student_fn,
        _recovered_ref,
        _recovered_cases(seed),
        mistakes=mistakes,
        hint="1 when the reconstruction costs nothing (reconstructed = clean), 0 when it is as bad "
        "as zero-ablation (reconstructed = zero_ablated); it is linear in between.",
    )
