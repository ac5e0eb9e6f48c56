"""Activations from a model's hook, batched and shuffled for SAE training (chapters 3-8)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

DEFAULT_HOOK = "blocks.0.mlp.hook_post"


class _StopForward(Exception):
    """Raised inside a hook once the activation we need exists: nothing after it runs."""


def _check_tokens(tokens: Tensor) -> None:
    if (
        not isinstance(tokens, Tensor)
        or tokens.ndim != 2
        or tokens.dtype
        not in (
            torch.int64,
            torch.int32,
        )
    ):
        got = (
            f"{tokens.dtype} {tuple(tokens.shape)}" if isinstance(tokens, Tensor) else type(tokens)
        )
        raise ValueError(f"tokens must be an integer tensor of shape [batch, pos], got {got}")


@torch.no_grad()
def run_to_hook(model, tokens: Int[Tensor, "batch pos"], hook: str = DEFAULT_HOOK) -> Tensor:
    """The activation at `hook` for one batch; the forward stops there (no logits)."""
    _check_tokens(tokens)
    if hook not in model.hook_dict:
        raise ValueError(f"hook must be one of the model's hook points, got {hook!r}")
    store: dict[str, Tensor] = {}

    def grab(act: Tensor, hook) -> None:
        store["act"] = act
        raise _StopForward

    try:
        model.run_with_hooks(tokens.to(model.cfg.device), fwd_hooks=[(hook, grab)])
    except _StopForward:
        pass
    finally:
        model.reset_hooks()
    return store["act"]


def collect_activations(
    model,
    tokens: Int[Tensor, "batch pos"],
    hook: str = DEFAULT_HOOK,
    batch_size: int = 32,
    progress: bool = True,
) -> Float[Tensor, "batch pos d"]:
    """Activations at `hook` for every token, computed `batch_size` sequences at a time."""
    _check_tokens(tokens)
    chunks = [
        run_to_hook(model, tokens[i : i + batch_size], hook).cpu()
        for i in tqdm(range(0, len(tokens), batch_size), desc="activations", disable=not progress)
    ]
    return torch.cat(chunks)


def stream_activations(
    model,
    tokens: Int[Tensor, "n_seq pos"],
    batch_size: int = 4096,
    buffer_tokens: int = 65_536,
    hook: str = DEFAULT_HOOK,
    model_batch_size: int = 32,
    seed: int = 0,
) -> Iterator[Float[Tensor, "batch d"]]:
    """Endless shuffled activation batches through a buffer refilled when half drained.

    Mixing tokens from many sequences matters: neighbouring tokens of one sequence have
    correlated activations, and an SAE step on them sees a biased batch (Nanda's run1 kept a
    buffer of 384 batches for this reason).
    """
    _check_tokens(tokens)
    if buffer_tokens < 2 * batch_size:
        raise ValueError(
            f"buffer_tokens must be >= 2 * batch_size = {2 * batch_size}, got {buffer_tokens}"
        )
    gen = torch.Generator().manual_seed(seed)

    def token_batches() -> Iterator[Tensor]:
        while True:
            order = torch.randperm(len(tokens), generator=gen)
            for i in range(0, len(order), model_batch_size):
                yield tokens[order[i : i + model_batch_size]]

    source = token_batches()
    buffer = torch.empty(0)
    while True:
        parts = [buffer]
        n = len(buffer)
        while n < buffer_tokens:
            act = run_to_hook(model, next(source), hook)
            parts.append(act.reshape(-1, act.shape[-1]).float().cpu())
            n += parts[-1].shape[0]
        buffer = torch.cat([p for p in parts if p.numel()])
        buffer = buffer[torch.randperm(len(buffer), generator=gen)]
        while len(buffer) >= buffer_tokens // 2 + batch_size:
            yield buffer[:batch_size]
            buffer = buffer[batch_size:]
