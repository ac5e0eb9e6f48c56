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


def check_tokens(tokens: Tensor, model=None) -> None:
    """Raise a ValueError unless `tokens` is an int32/int64 tensor of shape [batch, pos].

    With `model`, also that every id is in its vocabulary and no row is longer than its
    context (TransformerLens would fail deep inside the embedding, or silently wrap).
    """
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
    if model is None:
        return
    if tokens.numel() == 0:
        raise ValueError(
            f"tokens must hold at least one token to run the model on, got shape {tuple(tokens.shape)}"
        )
    cfg = model.cfg
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= cfg.d_vocab:
        raise ValueError(
            f"token ids must be in [0, {cfg.d_vocab}) (the model's vocabulary), got ids from "
            f"{low} to {high}"
        )
    if tokens.shape[1] > cfg.n_ctx:
        raise ValueError(
            f"sequences may be at most {cfg.n_ctx} tokens (the model's context), got "
            f"{tokens.shape[1]}"
        )


@torch.no_grad()
def run_to_hook(model, tokens: Int[Tensor, "batch pos"], hook: str = DEFAULT_HOOK) -> Tensor:
    """The activation at `hook` for one batch; the forward stops there (no logits)."""
    check_tokens(tokens, model)
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
    check_tokens(tokens, model)
    chunks = [
        run_to_hook(model, tokens[i : i + batch_size], hook).cpu()
        for i in tqdm(range(0, len(tokens), batch_size), desc="activations", disable=not progress)
    ]
    return torch.cat(chunks)


class ActivationStream:
    """Endless shuffled activation batches through a buffer refilled when half drained.

    Mixing tokens from many sequences matters: neighbouring tokens of one sequence have
    correlated activations, and an SAE step on them sees a biased batch (Nanda's run1 kept a
    buffer of 384 batches for this reason). The whole position of the stream (generator state,
    sequence order, buffer) is exposed by `state_dict` so a training checkpoint can resume it.
    """

    def __init__(
        self,
        model,
        tokens: Int[Tensor, "n_seq pos"],
        batch_size: int = 4096,
        buffer_tokens: int = 65_536,
        hook: str = DEFAULT_HOOK,
        model_batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        check_tokens(tokens, model)
        if buffer_tokens < 2 * batch_size:
            raise ValueError(
                f"buffer_tokens must be >= 2 * batch_size = {2 * batch_size}, got {buffer_tokens}"
            )
        self.model, self.tokens, self.hook = model, tokens, hook
        self.batch_size, self.buffer_tokens = batch_size, buffer_tokens
        self.model_batch_size = model_batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(tokens), generator=self.gen)
        self.position = 0
        self.buffer = torch.empty(0)

    def _next_tokens(self) -> Tensor:
        if self.position >= len(self.order):
            self.order = torch.randperm(len(self.tokens), generator=self.gen)
            self.position = 0
        rows = self.order[self.position : self.position + self.model_batch_size]
        self.position += len(rows)
        return self.tokens[rows]

    def _refill(self) -> None:
        """Top the buffer up to `buffer_tokens` with new activations, then shuffle all of it.

        The rows not served yet come first, then the new ones, written into one staging tensor
        (no list of parts to concatenate); the shuffle gathers them into the new buffer and the
        stage is freed. Peak memory: two buffers while refilling, one between refills (the
        trainer drops its last batch before asking for the next).
        """
        kept, stage = len(self.buffer), None
        n = kept
        while n < self.buffer_tokens:
            act = run_to_hook(self.model, self._next_tokens(), self.hook)
            act = act.reshape(-1, act.shape[-1])
            if stage is None:
                rows = self.buffer_tokens + self.model_batch_size * self.tokens.shape[1]
                stage = torch.empty(rows, act.shape[-1])
                if kept:
                    stage[:kept] = self.buffer
                self.buffer = torch.empty(0)  # the old buffer's memory is free from here
            stage[n : n + len(act)] = act
            n += len(act)
        if stage is None:
            return
        self.buffer = stage[:n][torch.randperm(n, generator=self.gen)]

    def __iter__(self) -> ActivationStream:
        return self

    def __next__(self) -> Float[Tensor, "batch d"]:
        if len(self.buffer) < self.buffer_tokens // 2 + self.batch_size:
            self._refill()
        batch, self.buffer = self.buffer[: self.batch_size], self.buffer[self.batch_size :]
        return batch

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors that pin the stream's position (the buffer is copied: it is small to redo)."""
        return {
            "gen": self.gen.get_state(),
            "order": self.order.clone(),
            "position": torch.tensor(self.position),
            "buffer": self.buffer.clone(),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Continue exactly where the stream that wrote `state` stood."""
        if len(state["order"]) != len(self.tokens):
            raise ValueError(
                f"stream state is for {len(state['order'])} sequences, got {len(self.tokens)}"
            )
        self.gen.set_state(state["gen"])
        self.order = state["order"].clone()
        self.position = int(state["position"])
        self.buffer = state["buffer"].clone()


def stream_activations(
    model,
    tokens: Int[Tensor, "n_seq pos"],
    batch_size: int = 4096,
    buffer_tokens: int = 65_536,
    hook: str = DEFAULT_HOOK,
    model_batch_size: int = 32,
    seed: int = 0,
) -> Iterator[Float[Tensor, "batch d"]]:
    """Endless shuffled activation batches (see `ActivationStream`, which also checkpoints)."""
    return ActivationStream(model, tokens, batch_size, buffer_tokens, hook, model_batch_size, seed)


class TensorBatches:
    """Shuffled minibatches forever from an [n_tokens, d_in] tensor; its position checkpoints."""

    def __init__(self, activations: Tensor, batch_size: int, seed: int) -> None:
        if activations.ndim != 2:
            raise ValueError(
                f"activations must have shape [n_tokens, d_in], got {tuple(activations.shape)}"
            )
        if activations.shape[0] < batch_size:
            raise ValueError(
                f"need at least batch_size={batch_size} activations, got {activations.shape[0]}"
            )
        self.activations, self.batch_size = activations, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(activations), generator=self.gen)
        self.position = 0

    def __iter__(self) -> TensorBatches:
        return self

    def __next__(self) -> Tensor:
        if self.position + self.batch_size > len(self.order):
            self.order = torch.randperm(len(self.activations), generator=self.gen)
            self.position = 0
        rows = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self.activations[rows]

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "gen": self.gen.get_state(),
            "order": self.order.clone(),
            "position": torch.tensor(self.position),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.gen.set_state(state["gen"])
        self.order = state["order"].clone()
        self.position = int(state["position"])
