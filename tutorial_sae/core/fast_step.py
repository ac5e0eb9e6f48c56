"""A faster SAE training step with the gradients written out by hand (chapter 3, benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from tutorial_sae.core.sae import SAE, SAELoss
from tutorial_sae.core.sparse_step import (
    batch_density,
    dense_ghost_on_subset,
    density_threshold,
    ghost_chain,
    sparse_rest_of_step,
)
from tutorial_sae.utils import check_activations, check_dead_mask

SparseMode = Literal["auto", "always", "never"]


@dataclass
class StepLoss(SAELoss):
    """`SAELoss` plus the tokens each feature fired on, when the step had them for free
    (the sparse branch counts its nonzeros; None from the dense branch: count f instead)."""

    fire_counts: Tensor | None = None


def _mm(a: Tensor, b: Tensor, bias: Tensor | None = None) -> Tensor:
    """a @ b (+ bias) in the inputs' dtype, returned as float32.

    bf16 inputs run ~4x faster on CPUs with AMX/AVX512-BF16 and on GPUs; fp32 uses addmm so the
    bias rides along in the matmul instead of costing another pass over the output.
    """
    if a.dtype == torch.float32:
        return a @ b if bias is None else torch.addmm(bias, a, b)
    if bias is None:
        return (a @ b).float()
    # bf16 + fp32 promotes to fp32: the cast and the bias in one pass (the same values as
    # .float() then .add_(bias), one pass over the batch x d_sae output fewer).
    return torch.add(a @ b, bias.float())


@torch.no_grad()
def loss_and_grads(
    sae: SAE,
    x: Float[Tensor, "batch d_in"],
    dead_mask: Bool[Tensor, " d_sae"] | None = None,
    matmul_dtype: torch.dtype = torch.float32,
    sparse: SparseMode = "auto",
) -> StepLoss:
    """`sae.loss(x, dead_mask)` and its gradients, written into each parameter's `.grad`.

    `sparse`: "auto" finishes the step on the nonzeros of f (`core.sparse_step`) when the batch's
    density is at most `density_threshold(matmul_dtype)` (2% in fp32), else with the dense
    products below; "always" and "never" force one branch. Both are exact (the sparse kernels run
    in fp32 whatever `matmul_dtype`); the encoder forward is dense in either.

    With e = x_hat - x, B the batch size, c = l1_coeff and n_i = ||W_dec,i||:
      dL/dx_hat = 2e/B;   dL/dW_dec = f^T (2e/B) + c (sum_b f_bi / B) W_dec,i / n_i;
      dL/dpre = [(2e/B) W_dec^T + c n/B] * 1[pre > 0];   dL/dW_enc = (x - b_dec)^T dL/dpre;
      dL/db_enc = sum_b dL/dpre;   dL/db_dec = sum_b 2e/B - W_enc sum_b dL/dpre.
    Five matmuls of size B x d_in x d_sae instead of autograd's six (the gradient with respect
    to x - b_dec is only needed summed over the batch, a matrix-vector product). The ghost-grad
    term adds the same chain rule through exp(pre) of the dead features (see `ghost_grad_loss`).
    """
    W_enc, W_dec, b_enc, b_dec = sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec
    _check_mode(sparse)
    check_activations(x, sae.cfg.d_in, batch=True)
    check_dead_mask(dead_mask, sae.cfg.d_sae)
    x = x.to(W_enc.dtype)  # float16/float64 activations train in the SAE's own dtype
    batch = x.shape[0]
    c = sae.cfg.l1_coeff
    w_enc, w_dec = W_enc.to(matmul_dtype), W_dec.to(matmul_dtype)

    x_cent = x - b_dec
    x_lo = x_cent.to(matmul_dtype)
    pre = _mm(x_lo, w_enc, b_enc)
    ghost_on = dead_mask is not None and bool(dead_mask.any())
    pre_dead = pre[:, dead_mask] if ghost_on else None
    f = pre.clamp_min_(0)  # in place: pre is not needed after this
    if use_sparse(f, sparse, matmul_dtype):
        return _sparse_finish(sae, x, x_cent, f, pre_dead, dead_mask if ghost_on else None)
    f_lo = f.to(matmul_dtype)
    x_hat = _mm(f_lo, w_dec, b_dec)
    err = x_hat - x
    per_token_mse = err.pow(2).sum(-1)
    mse = per_token_mse.mean()
    norms = W_dec.norm(dim=-1)
    f_sum = f.sum(0)  # one pass over f serves both the L1 value and its decoder-norm gradient
    l1 = c * (f_sum @ norms) / batch

    grad_out = err.mul_(2.0 / batch)  # err is not needed after this either
    grad_out_lo = grad_out.to(matmul_dtype)
    grad_dec = _mm(f_lo.T, grad_out_lo)
    grad_dec.add_(W_dec * (c * f_sum / (batch * norms))[:, None])
    grad_f = _mm(grad_out_lo, w_dec.T, c * norms / batch)
    # ReLU's backward in one fused pass, in place (one batch x d_sae tensor less in memory).
    grad_pre = torch.ops.aten.threshold_backward.grad_input(grad_f, f, 0.0, grad_input=grad_f)

    ghost = torch.zeros((), dtype=mse.dtype, device=x.device)
    b_dec_pre_grad = None
    if ghost_on:
        ghost, ghost_pre_sum = _ghost_grads(
            x, x_hat, pre_dead, W_dec, dead_mask, per_token_mse, grad_pre, grad_dec
        )

    W_enc.grad = _mm(x_lo.T, grad_pre.to(matmul_dtype))
    b_enc.grad = grad_pre.sum(0)
    if ghost_on:
        # The ghost term does not reach b_dec (see SAE.loss): leave its part out here.
        b_dec_pre_grad = b_enc.grad.clone()
        b_dec_pre_grad[dead_mask] -= ghost_pre_sum
    b_dec.grad = grad_out.sum(0) - W_enc @ (
        b_enc.grad if b_dec_pre_grad is None else b_dec_pre_grad
    )
    W_dec.grad = grad_dec
    return StepLoss(mse + l1 + ghost, mse, l1, ghost, f, x_hat)


def use_sparse(f: Tensor, sparse: SparseMode, matmul_dtype: torch.dtype = torch.float32) -> bool:
    """Whether the step goes on sparse: always, never, or by the batch's density ("auto").

    Off the CPU "auto" takes the dense step: the crossover was measured on CPUs only.
    """
    _check_mode(sparse)
    if sparse != "auto":
        return sparse == "always"
    return f.device.type == "cpu" and batch_density(f) <= density_threshold(matmul_dtype)


def _check_mode(sparse: object) -> None:
    if not isinstance(sparse, str) or sparse not in ("auto", "always", "never"):
        raise ValueError(f"sparse must be 'auto', 'always' or 'never', got {sparse!r}")


def _sparse_finish(
    sae: SAE, x: Tensor, x_cent: Tensor, f: Tensor, pre_dead: Tensor | None, dead: Tensor | None
) -> StepLoss:
    """The rest of the step on the nonzeros of f; ghost grads on the dead columns only."""
    W_enc, W_dec = sae.W_enc, sae.W_dec
    code, x_hat, per_token_mse, mse, l1, grad_out, grads = sparse_rest_of_step(
        W_enc, W_dec, sae.b_dec, x, x_cent, f, sae.cfg.l1_coeff
    )
    ghost = torch.zeros((), dtype=mse.dtype, device=x.device)
    if dead is not None:
        ghost = dense_ghost_on_subset(x, x_cent, x_hat, pre_dead, W_dec, dead, per_token_mse, grads)
    W_enc.grad, W_dec.grad, sae.b_enc.grad = grads["W_enc"], grads["W_dec"], grads["b_enc"]
    sae.b_dec.grad = grad_out.sum(0) - W_enc @ grads.get("b_enc_for_b_dec", grads["b_enc"])
    return StepLoss(mse + l1 + ghost, mse, l1, ghost, f, x_hat, code.fire_counts())


def _ghost_grads(
    x: Tensor,
    x_hat: Tensor,
    pre_dead: Tensor,
    W_dec: Tensor,
    dead_mask: Tensor,
    per_token_mse: Tensor,
    grad_pre: Tensor,
    grad_dec: Tensor,
) -> tuple[Tensor, Tensor]:
    """The ghost-grad loss (`ghost_chain`); adds its gradients to `grad_pre` and `grad_dec` in
    place and also returns the ghost part of dL/dpre summed over the batch (kept away from b_dec).
    """
    ghost, ghost_grad_pre = ghost_chain(
        x, x_hat, pre_dead, W_dec, dead_mask, per_token_mse, grad_dec
    )
    grad_pre[:, dead_mask] += ghost_grad_pre
    return ghost, ghost_grad_pre.sum(0)


def fast_train_step(
    sae: SAE,
    optimizer: torch.optim.Optimizer,
    x: Float[Tensor, "batch d_in"],
    dead_mask: Bool[Tensor, " d_sae"] | None = None,
    matmul_dtype: torch.dtype = torch.float32,
    sparse: SparseMode = "auto",
) -> StepLoss:
    """`train_step` with hand-written gradients (same update; a test checks it against autograd)."""
    out = loss_and_grads(sae, x, dead_mask, matmul_dtype, sparse)
    sae.remove_parallel_decoder_grad()
    optimizer.step()
    sae.normalize_decoder()
    return out
