"""Checkers for the exercises of chapter 2 (SAE encoder, loss, decoder-gradient projection)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tutorial_sae.core.sae import SAE, SAEConfig
from tutorial_sae.exercises.runner import CheckResult, Mistake, run_check


def _make_sae(d_in: int, d_sae: int, l1_coeff: float, seed: int) -> SAE:
    """A seeded SAE with non-zero biases and decoder rows of norms in [0.5, 2]."""
    gen = torch.Generator().manual_seed(seed + 1)
    sae = SAE(SAEConfig(d_in=d_in, d_sae=d_sae, l1_coeff=l1_coeff, seed=seed))
    with torch.no_grad():
        sae.W_enc.add_(0.3 * torch.randn(d_in, d_sae, generator=gen))
        sae.b_enc.copy_(0.2 * torch.randn(d_sae, generator=gen))
        sae.b_dec.copy_(0.5 * torch.randn(d_in, generator=gen))
        sae.W_dec.mul_(0.5 + 1.5 * torch.rand(d_sae, 1, generator=gen))
    return sae


def _params(sae: SAE) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in sae.named_parameters()}


def _sae_from(
    W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, l1_coeff: float = 1.0
) -> SAE:
    sae = SAE(SAEConfig(d_in=W_enc.shape[0], d_sae=W_enc.shape[1], l1_coeff=l1_coeff))
    sae.load_state_dict({"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec})
    return sae


def _cases(seed: int, with_decoder: bool) -> list[dict[str, Any]]:
    cases = []
    for i, (d_in, d_sae, batch) in enumerate(((4, 8, 5), (16, 64, 32))):
        sae = _make_sae(d_in, d_sae, l1_coeff=0.7, seed=seed + i)
        x = torch.randn(batch, d_in, generator=torch.Generator().manual_seed(seed + 100 + i))
        params = _params(sae)
        case = {
            "x": x,
            "W_enc": params["W_enc"],
            "b_enc": params["b_enc"],
            "b_dec": params["b_dec"],
        }
        if with_decoder:
            case |= {"W_dec": params["W_dec"], "l1_coeff": sae.cfg.l1_coeff}
        cases.append(case)
    return cases


def _encode_ref(x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> Tensor:
    W_dec = torch.zeros(W_enc.shape[1], W_enc.shape[0])
    return _sae_from(W_enc, b_enc, W_dec, b_dec).encode(x)


def check_encode(
    student_fn: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor], seed: int = 0
) -> CheckResult:
    """Compare `student_fn(x, W_enc, b_enc, b_dec)` with SAE.encode: ReLU(W_enc (x - b_dec) + b_enc)."""
    mistakes = [
        Mistake(
            lambda x, W_enc, b_enc, b_dec: torch.relu(x @ W_enc + b_enc),
            "subtract the decoder bias b_dec from x before encoding (it centres the input).",
        ),
        Mistake(
            lambda x, W_enc, b_enc, b_dec: (x - b_dec) @ W_enc + b_enc,
            "feature activations pass through a ReLU, so they are never negative.",
        ),
        Mistake(
            lambda x, W_enc, b_enc, b_dec: torch.relu((x + b_dec) @ W_enc + b_enc),
            "the decoder bias is subtracted (x - b_dec), not added.",
        ),
    ]
    return run_check(
        "encode",
        student_fn,
        _encode_ref,
        _cases(seed, with_decoder=False),
        mistakes=mistakes,
        hint="f = ReLU((x - b_dec) @ W_enc + b_enc); W_enc has shape [d_in, d_sae].",
    )


def _loss_ref(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, l1_coeff: float
) -> Tensor:
    return _sae_from(W_enc, b_enc, W_dec, b_dec, l1_coeff).loss(x).total


def _loss_variant(mse_reduce: str, l1_weighted: bool, l1_reduce: str) -> Callable[..., Tensor]:
    def loss(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
        f = torch.relu((x - b_dec) @ W_enc + b_enc)
        err = (f @ W_dec + b_dec - x).pow(2)
        mse = err.mean() if mse_reduce == "mean" else err.sum(-1).mean()
        weights = W_dec.norm(dim=-1) if l1_weighted else torch.ones(W_dec.shape[0])
        penalty = (f * weights).sum(-1)
        l1 = penalty.sum() if l1_reduce == "sum" else penalty.mean()
        return mse + l1_coeff * l1

    return loss


def check_sae_loss(student_fn: Callable[..., Tensor], seed: int = 0) -> CheckResult:
    """Compare `student_fn(x, W_enc, b_enc, W_dec, b_dec, l1_coeff)` with SAE.loss(x).total."""
    mistakes = [
        Mistake(
            _loss_variant("sum", l1_weighted=False, l1_reduce="mean"),
            "weight each feature's L1 term by the norm of its decoder row, "
            "W_dec.norm(dim=-1); without it the SAE can shrink codes by growing the decoder.",
        ),
        Mistake(
            _loss_variant("mean", l1_weighted=True, l1_reduce="mean"),
            "the reconstruction error is summed over d_in and averaged over the batch, "
            "not averaged over every entry.",
        ),
        Mistake(
            _loss_variant("sum", l1_weighted=True, l1_reduce="sum"),
            "average the L1 penalty over the batch (mean over tokens), as for the MSE.",
        ),
        Mistake(
            lambda x, W_enc, b_enc, W_dec, b_dec, l1_coeff: (
                (torch.relu((x - b_dec) @ W_enc + b_enc) @ W_dec + b_dec - x).pow(2).sum(-1).mean()
            ),
            "you returned the reconstruction error only; add l1_coeff times the L1 penalty.",
        ),
    ]
    return run_check(
        "sae_loss",
        student_fn,
        _loss_ref,
        _cases(seed, with_decoder=True),
        mistakes=mistakes,
        hint="loss = mean_batch(sum_d (x_hat - x)^2) + l1_coeff * mean_batch(sum_i f_i "
        "||W_dec[i]||) with f = ReLU((x - b_dec) @ W_enc + b_enc), x_hat = f @ W_dec + b_dec.",
    )


def _projection_ref(W_dec: Tensor, grad: Tensor) -> Tensor:
    sae = _sae_from(
        torch.zeros(W_dec.shape[1], W_dec.shape[0]),
        torch.zeros(W_dec.shape[0]),
        W_dec,
        torch.zeros(W_dec.shape[1]),
    )
    sae.W_dec.grad = grad.clone()
    sae.remove_parallel_decoder_grad()
    return sae.W_dec.grad


def _projection_cases(seed: int) -> list[dict[str, Any]]:
    cases = []
    for i, (d_sae, d_in) in enumerate(((6, 3), (32, 16))):
        gen = torch.Generator().manual_seed(seed + i)
        W_dec = torch.randn(d_sae, d_in, generator=gen) * (
            0.5 + torch.rand(d_sae, 1, generator=gen)
        )
        cases.append({"W_dec": W_dec, "grad": torch.randn(d_sae, d_in, generator=gen)})
    return cases


def _project(W_dec: Tensor, grad: Tensor, unit: bool, dim: int) -> Tensor:
    w = W_dec / W_dec.norm(dim=dim, keepdim=True) if unit else W_dec
    return grad - (grad * w).sum(dim, keepdim=True) * w


def check_remove_parallel_grad(
    student_fn: Callable[[Tensor, Tensor], Tensor], seed: int = 0
) -> CheckResult:
    """Compare `student_fn(W_dec, grad)` with SAE.remove_parallel_decoder_grad's new gradient."""
    mistakes = [
        Mistake(
            lambda W_dec, grad: _project(W_dec, grad, unit=False, dim=-1),
            "normalise each decoder row to unit length before projecting; the rows here "
            "are not unit norm.",
        ),
        Mistake(
            lambda W_dec, grad: _project(W_dec, grad, unit=True, dim=0),
            "each ROW of W_dec is one feature's direction: take norms and dot products over "
            "the last dimension (dim=-1).",
        ),
        Mistake(
            lambda W_dec, grad: grad - _project(W_dec, grad, unit=True, dim=-1),
            "you returned the parallel part; return the gradient minus its parallel part.",
        ),
        Mistake(lambda W_dec, grad: grad, "the gradient came back unchanged."),
    ]
    return run_check(
        "remove_parallel_grad",
        student_fn,
        _projection_ref,
        _projection_cases(seed),
        mistakes=mistakes,
        hint="with w = W_dec / ||W_dec|| row-wise, return grad - (grad . w) w, the dot "
        "product taken per row (keepdim=True).",
    )
