"""The SAE step finished on the nonzeros of a sparse code (chapter 3, benchmarks)."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

# Batch density (nnz / (batch * d_sae)) above which the dense step is faster, by matmul dtype.
# Measured with `benchmarks/bench_sparse_step.py --crossover` (both branches timed in turns on
# one batch whose b_enc is shifted to each density; batch 4096; 2-core Xeon with AVX-512 and
# AMX, shared, load average ~8): sparse/dense time in fp32 at 512/4096 was 0.53, 0.84, 0.66,
# 0.98, 1.20, 1.59 at densities 0.27, 0.5, 1, 2, 4, 8%, and at 2048/16384 0.35, 0.53, 0.52 at
# 0.27, 0.5, 1%; with bf16 matmuls (4x cheaper dense products; the sparse kernels stay fp32) at
# 512/4096: 0.62, 0.93, 0.81, 1.36 at 0.27, 0.5, 1, 2%. Each threshold sits at or below the
# crossover of its dtype, so "auto" never takes the sparse branch where it measured slower.
DENSITY_THRESHOLD = 0.02
BF16_DENSITY_THRESHOLD = 0.01
# Rows of the batch that estimate its density before the branch is chosen (a shuffled batch:
# any rows are a fair sample; counting all of them would cost a pass over batch x d_sae).
DENSITY_SAMPLE_ROWS = 512


def density_threshold(matmul_dtype: torch.dtype) -> float:
    """The density up to which the sparse branch is used, for this matmul dtype."""
    return DENSITY_THRESHOLD if matmul_dtype == torch.float32 else BF16_DENSITY_THRESHOLD


def batch_density(f: Tensor, rows: int = DENSITY_SAMPLE_ROWS) -> float:
    """Fraction of nonzero entries of `f` [batch, d_sae], estimated from its first `rows` rows."""
    sample = f[:rows]
    return int(torch.count_nonzero(sample)) / max(sample.numel(), 1)


class SparseCode:
    """The nonzeros of f [batch, d_sae] in row-major (CSR) and feature-major (CSR of f^T) order.

    Both orders share one index set; `csr_t` reorders values given in row-major order (f's, or
    the gradient at f's nonzeros) into feature-major order, so f^T @ A needs no transpose.
    """

    def __init__(self, f: Tensor) -> None:
        batch, d_sae = f.shape
        flat = f.reshape(-1)
        idx = _nonzero_of_nonnegative(flat)  # sorted: row-major order
        self.shape = (batch, d_sae)
        self.rows = torch.div(idx, d_sae, rounding_mode="floor")
        self.cols = idx - self.rows * d_sae
        self.values = flat[idx]
        self.nnz = idx.numel()
        self.crow = _offsets(self.rows, batch)
        # Feature-major order: a stable sort keeps each feature's tokens in batch order.
        self.perm = torch.argsort(self.cols, stable=True)
        self.t_crow = _offsets(self.cols, d_sae)
        self.t_col = self.rows[self.perm]

    def csr(self, values: Tensor) -> Tensor:
        """[batch, d_sae] CSR with these `values` (row-major order)."""
        return _csr(self.crow, self.cols, values, self.shape)

    def csr_t(self, values: Tensor) -> Tensor:
        """[d_sae, batch] CSR of the transpose, from `values` in row-major order."""
        return _csr(self.t_crow, self.t_col, values[self.perm], self.shape[::-1])

    def column_sums(self, values: Tensor) -> Tensor:
        """Sum over the batch of each feature's entries: [d_sae]."""
        out = torch.zeros(self.shape[1], dtype=values.dtype, device=values.device)
        return out.index_add_(0, self.cols, values)

    def fire_counts(self) -> Tensor:
        """Tokens each feature fired on (int64 [d_sae])."""
        return torch.bincount(self.cols, minlength=self.shape[1])


def _nonzero_of_nonnegative(flat: Tensor, block: int = 16) -> Tensor:
    """Sorted indices of the nonzeros of a 1-D tensor with no negative entries.

    Blocks of 16 whose sum is 0 hold only zeros: one summing pass and a nonzero over 1/16 of the
    entries find the blocks to search (measured 1.3-1.45x faster than `nonzero` at L0 31-80).
    """
    if flat.numel() % block:
        return flat.nonzero().squeeze(1)
    blocks = flat.view(-1, block)
    hit = blocks.sum(1).nonzero().squeeze(1)
    inner = blocks[hit].nonzero()
    return hit[inner[:, 0]] * block + inner[:, 1]


def _csr(crow: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():
        # torch calls CSR support "beta"; the kernels used here are tested against autograd.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def _offsets(sorted_or_any_ids: Tensor, n: int) -> Tensor:
    """CSR row offsets [n + 1] from the row id of each nonzero."""
    counts = torch.bincount(sorted_or_any_ids, minlength=n)
    out = torch.zeros(n + 1, dtype=torch.int64, device=counts.device)
    torch.cumsum(counts, 0, out=out[1:])
    return out


@torch.no_grad()
def sparse_rest_of_step(
    W_enc: Tensor,
    W_dec: Tensor,
    b_dec: Tensor,
    x: Tensor,
    x_cent: Tensor,
    f: Tensor,
    l1_coeff: float,
) -> tuple[SparseCode, Tensor, Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """Everything after the dense encoder forward, on the nonzeros of f = ReLU(pre) only.

    Returns (code, x_hat, per_token_mse, mse, l1, grad_out, grads) with grads holding
    W_dec, W_enc, b_enc (and the b_enc part that reaches b_dec) before any ghost term.
    With G the gradient w.r.t. the pre-activation at f's nonzeros (zero elsewhere, ReLU):
      x_hat = f W_dec + b_dec (sparse f);   G = <2e/B, W_dec,col> + c n_col / B (sampled);
      dL/dW_dec = f^T (2e/B) + L1 term;   dL/dW_enc = ((G^T) (x - b_dec))^T;   dL/db_enc = sum_b G.
    """
    batch = x.shape[0]
    code = SparseCode(f)
    f_csr = code.csr(code.values)
    width = block_width(W_dec.shape[0])
    x_hat = _sparse_times_blocks(f_csr, W_dec, b_dec, width)
    err = x_hat - x
    per_token_mse = err.pow(2).sum(-1)
    mse = per_token_mse.mean()
    norms = W_dec.norm(dim=-1)
    f_sum = code.column_sums(code.values)
    l1 = l1_coeff * (f_sum @ norms) / batch
    grad_out = err.mul_(2.0 / batch)
    # dL/df at f's nonzeros only: a sampled product (one dot product of length d_in each).
    g_vals = torch.sparse.sampled_addmm(f_csr, grad_out, W_dec.T, beta=0.0).values()
    g_vals = g_vals + (l1_coeff / batch) * norms[code.cols]
    # f^T (2e/B) with the L1 term riding in as addmm's input.
    l1_dec = W_dec * (l1_coeff * f_sum / (batch * norms))[:, None]
    grad_dec = torch.addmm(l1_dec, code.csr_t(code.values), grad_out)
    grads = {
        "W_dec": grad_dec,
        "W_enc": _transposed_product(code.csr_t(g_vals), x_cent, W_enc, 2 * width),
        "b_enc": code.column_sums(g_vals),
    }
    return code, x_hat, per_token_mse, mse, l1, grad_out, grads


# A block of this many bytes of a [d_sae, width] operand stays in a core's cache while the sparse
# kernel gathers its rows; measured at 2048/16384: decoder forward 1.4x and encoder gradient 1.8x
# faster in blocks (64 and 128 columns) than whole; at 512/4096 (8 MB decoder) no change.
BLOCK_BYTES = 4 * 2**20


def block_width(d_sae: int, itemsize: int = 4) -> int:
    """Columns per block of a [d_sae, d_in] operand: a power of two, at least 8."""
    width = max(BLOCK_BYTES // (itemsize * d_sae), 8)
    return 1 << (width.bit_length() - 1)


def _sparse_times_blocks(sp: Tensor, dense: Tensor, bias: Tensor, width: int) -> Tensor:
    """bias + sp @ dense, `width` columns of `dense` at a time (addmm reaches MKL directly)."""
    if width >= dense.shape[1]:
        return torch.addmm(bias, sp, dense)
    out = torch.empty(sp.shape[0], dense.shape[1], dtype=dense.dtype, device=dense.device)
    for c in range(0, dense.shape[1], width):
        out[:, c : c + width] = torch.addmm(
            bias[c : c + width], sp, dense[:, c : c + width].contiguous()
        )
    return out


def _transposed_product(sp_t: Tensor, dense: Tensor, like: Tensor, width: int) -> Tensor:
    """(sp_t @ dense)^T laid out like `like` (fused Adam wants a gradient laid out like its
    parameter); for a row-major `like`, built `width` rows at a time with no full transpose."""
    if not like.is_contiguous() or width >= dense.shape[1]:
        return torch.empty_like(like).copy_(torch.mm(sp_t, dense).T)
    out = torch.empty_like(like)
    for c in range(0, dense.shape[1], width):
        out[c : c + width] = torch.mm(sp_t, dense[:, c : c + width].contiguous()).T
    return out


def dense_ghost_on_subset(
    x: Tensor,
    x_cent: Tensor,
    x_hat: Tensor,
    pre_dead: Tensor,
    W_dec: Tensor,
    dead_mask: Tensor,
    per_token_mse: Tensor,
    grads: dict[str, Tensor],
) -> Tensor:
    """The ghost-grad loss with its gradients added to `grads` on the dead columns only.

    The ghost path reaches every token through exp(pre) > 0, so it is dense on the (few) dead
    features: [batch, n_dead] products, never [batch, d_sae]. Its b_enc part stays out of b_dec
    (see SAE.loss): `grads["b_enc_for_b_dec"]` keeps the b_enc gradient without it.
    """
    ghost, ghost_pre = ghost_chain(
        x, x_hat, pre_dead, W_dec, dead_mask, per_token_mse, grads["W_dec"]
    )
    grads["W_enc"][:, dead_mask] += x_cent.T @ ghost_pre
    grads["b_enc_for_b_dec"] = grads["b_enc"].clone()
    grads["b_enc"][dead_mask] += ghost_pre.sum(0)
    return ghost


def ghost_chain(
    x: Tensor,
    x_hat: Tensor,
    pre_dead: Tensor,
    W_dec: Tensor,
    dead_mask: Tensor,
    per_token_mse: Tensor,
    grad_dec: Tensor,
) -> tuple[Tensor, Tensor]:
    """The ghost-grad loss and its dL/dpre on the dead columns [batch, n_dead]; adds the
    W_dec[dead] gradient to `grad_dec` in place (the dense and the sparse step share it).

    Only the path through exp(pre_dead) and W_dec[dead] carries gradient: the residual, the
    output scale and the rescale factor are all detached in `ghost_grad_loss`.
    """
    batch = x.shape[0]
    residual = x - x_hat
    exp_pre = torch.exp(pre_dead)
    w_dead = W_dec[dead_mask]
    raw = exp_pre @ w_dead
    scale = residual.norm(dim=-1) / (2 * raw.norm(dim=-1) + 1e-6)
    diff = raw * scale[:, None] - residual
    ghost_mse = diff.pow(2).sum(-1)
    rescale = per_token_mse / (ghost_mse + 1e-6)
    grad_raw = diff * (2.0 * rescale * scale / batch)[:, None]
    grad_dec[dead_mask] += exp_pre.T @ grad_raw
    return (rescale * ghost_mse).mean(), (grad_raw @ w_dead.T).mul_(exp_pre)
