"""The sparse autoencoder of chapters 2-8: encoder, decoder, loss with optional ghost grads."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from jaxtyping import Bool, Float
from safetensors.torch import save
from torch import Tensor, nn

from tutorial_sae.paths import atomic_write_bytes
from tutorial_sae.utils import (
    check_activations,
    check_dead_mask,
    check_int,
    check_number,
    read_json_object,
    read_safetensors,
)

WEIGHTS_FILE = "sae.safetensors"
CONFIG_FILE = "cfg.json"


@dataclass(frozen=True)
class SAEConfig:
    """Shape and sparsity penalty of an SAE.

    `l1_coeff` multiplies the per-token penalty sum_i f_i ||W_dec,i|| (mean over the batch).
    Neel Nanda's run1 used 3e-4 summed over a batch of 4096, i.e. about 1.23 per token here.
    """

    d_in: int = 512
    d_sae: int = 4096
    l1_coeff: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self.d_in, "d_in")
        check_int(self.d_sae, "d_sae")
        check_number(self.l1_coeff, "l1_coeff", low=0.0)
        check_int(self.seed, "seed", minimum=0)

    @property
    def expansion(self) -> float:
        return self.d_sae / self.d_in


@dataclass
class SAELoss:
    """Named parts of the loss: total = mse + l1 + ghost (ghost is 0 when no feature is dead)."""

    total: Tensor
    mse: Tensor
    l1: Tensor
    ghost: Tensor
    feature_acts: Float[Tensor, "batch d_sae"]
    x_hat: Float[Tensor, "batch d_in"]


class SAE(nn.Module):
    """f = ReLU(W_enc (x - b_dec) + b_enc),  x_hat = W_dec f + b_dec  (Bricken et al. 2023).

    Weights follow TransformerLens / Nanda shapes: W_enc [d_in, d_sae], W_dec [d_sae, d_in],
    so row i of W_dec is feature i's decoder direction, kept at unit norm during training.
    """

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(cfg.seed)
        w_dec = torch.randn(cfg.d_sae, cfg.d_in, generator=gen)
        w_dec /= w_dec.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)
        # The transpose of the decoder is a good starting encoder: each feature starts by
        # reading the direction it writes (used by SAELens and Anthropic's later recipes).
        self.W_enc = nn.Parameter(w_dec.T.contiguous())
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))

    def pre_acts(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """The encoder's pre-activation W_enc (x - b_dec) + b_enc."""
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """Feature activations f(x) = ReLU(pre_acts(x)); x is cast to the SAE's dtype."""
        check_activations(x, self.cfg.d_in)
        return torch.relu(self.pre_acts(x.to(self.W_enc.dtype)))

    def decode(self, f: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_in"]:
        """Reconstruction x_hat = f W_dec + b_dec; f is cast to the SAE's dtype."""
        check_activations(f, self.cfg.d_sae, name="f")
        return f.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_in"]:
        """Reconstruct x through the sparse code."""
        return self.decode(self.encode(x))

    def loss(
        self,
        x: Float[Tensor, "batch d_in"],
        dead_mask: Bool[Tensor, " d_sae"] | None = None,
    ) -> SAELoss:
        """L2 (sum over d_in, mean over batch) + l1_coeff * sum_i f_i ||W_dec,i|| (mean over batch).

        With `dead_mask`, adds the ghost-grad term of Anthropic's January 2024 update.
        """
        check_activations(x, self.cfg.d_in, batch=True)
        check_dead_mask(dead_mask, self.cfg.d_sae)
        x = x.to(self.W_enc.dtype)
        pre = self.pre_acts(x)
        f = torch.relu(pre)
        x_hat = f @ self.W_dec + self.b_dec
        per_token_mse = (x_hat - x).pow(2).sum(-1)
        mse = per_token_mse.mean()
        l1 = self.cfg.l1_coeff * (f * self.W_dec.norm(dim=-1)).sum(-1).mean()
        ghost = torch.zeros((), device=x.device, dtype=mse.dtype)
        if dead_mask is not None:
            if dead_mask.any():
                # The ghost term is for dead features only: cut its path into the shared b_dec
                # (same value; b_dec's gradient through pre cancels). Left in, that gradient moved
                # every live feature and more than half the dictionary died (chapter 3).
                ghost_pre = pre + (self.b_dec - self.b_dec.detach()) @ self.W_enc.detach()
                ghost = ghost_grad_loss(x, x_hat, ghost_pre, self.W_dec, dead_mask, per_token_mse)
        return SAELoss(mse + l1 + ghost, mse, l1, ghost, f, x_hat)

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Project out the part of each W_dec row's gradient that would change its norm."""
        if self.W_dec.grad is None:
            return
        w = self.W_dec / self.W_dec.norm(dim=-1, keepdim=True)
        parallel = (self.W_dec.grad * w).sum(-1, keepdim=True)
        self.W_dec.grad -= parallel * w

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale every decoder direction to unit norm (the step after the optimiser's)."""
        self.W_dec /= self.W_dec.norm(dim=-1, keepdim=True)

    def save(self, path: str | Path) -> Path:
        """Write `path/sae.safetensors` and `path/cfg.json` atomically; returns the folder."""
        path = Path(path)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        atomic_write_bytes(path / WEIGHTS_FILE, save(tensors))
        atomic_write_bytes(path / CONFIG_FILE, json.dumps(asdict(self.cfg), indent=2).encode())
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> SAE:
        """Read an SAE written by `save` (safetensors: no pickle is ever executed)."""
        path = Path(path)
        weights, cfg_file = path / WEIGHTS_FILE, path / CONFIG_FILE
        if not weights.is_file() or not cfg_file.is_file():
            raise FileNotFoundError(f"expected {WEIGHTS_FILE} and {CONFIG_FILE} in {path}")
        try:
            raw = read_json_object(cfg_file, "SAE config")
            known = {f.name for f in fields(SAEConfig)}
            cfg = SAEConfig(**{k: v for k, v in raw.items() if k in known})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{cfg_file} is not a valid SAE config: {err}") from err
        sae = cls(cfg)
        # Names, shapes, float dtype and finiteness checked, naming the file; never unpickled.
        expected = {k: tuple(v.shape) for k, v in sae.state_dict().items()}
        state, _ = read_safetensors(weights, expected, name="SAE weights")
        sae.load_state_dict({k: v.float() for k, v in state.items()})
        return sae.to(device)


def ghost_grad_loss(
    x: Float[Tensor, "batch d_in"],
    x_hat: Float[Tensor, "batch d_in"],
    pre_acts: Float[Tensor, "batch d_sae"],
    W_dec: Float[Tensor, "d_sae d_in"],
    dead_mask: Bool[Tensor, " d_sae"],
    per_token_mse: Float[Tensor, " batch"],
) -> Tensor:
    """Ghost-grad term (Anthropic, "Circuits Updates", January 2024).

    Dead features decode exp(pre-activation), scaled to half the norm of the residual
    x - x_hat; their MSE against the detached residual is rescaled to the size of the main
    MSE so the term gives dead features a gradient without changing the loss's scale.
    """
    check_dead_mask(dead_mask, W_dec.shape[0])
    residual = (x - x_hat).detach()
    ghost_out = torch.exp(pre_acts[:, dead_mask]) @ W_dec[dead_mask]
    scale = residual.norm(dim=-1) / (2 * ghost_out.norm(dim=-1) + 1e-6)
    ghost_out = ghost_out * scale.detach()[:, None]
    ghost_mse = (ghost_out - residual).pow(2).sum(-1)
    rescale = (per_token_mse / (ghost_mse + 1e-6)).detach()
    return (rescale * ghost_mse).mean()


def train_step(
    sae: SAE, optimizer: torch.optim.Optimizer, x: Tensor, dead_mask: Tensor | None
) -> SAELoss:
    """One plain autograd step: loss, backward, keep decoder norms fixed, update, renormalise."""
    out = sae.loss(x, dead_mask=dead_mask)
    optimizer.zero_grad(set_to_none=True)
    out.total.backward()
    sae.remove_parallel_decoder_grad()
    optimizer.step()
    sae.normalize_decoder()
    return out
