"""Held-out quality of a language model: loss, n-gram baselines, greedy samples (appendix)."""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor


def eval_windows(
    stream: Tensor, n_ctx: int, bos: int, max_windows: int | None = None
) -> Int[Tensor, "n n_ctx"]:
    """Consecutive non-overlapping windows: BOS then n_ctx - 1 stream tokens, as in training."""
    n = len(stream) // (n_ctx - 1)
    if max_windows is not None:
        n = min(n, max_windows)
    if n == 0:
        raise ValueError(f"expected at least {n_ctx - 1} eval tokens, got {len(stream)}")
    body = stream[: n * (n_ctx - 1)].long().reshape(n, n_ctx - 1)
    return torch.cat([torch.full((n, 1), bos), body], dim=1)


@torch.no_grad()
def model_loss(model, windows: Int[Tensor, "n n_ctx"], batch_size: int = 32) -> float:
    """Mean next-token cross-entropy (nats/token) over every position of every window."""
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        batch = windows[i : i + batch_size].to(model.cfg.device)
        per_token = model(batch, return_type="loss", loss_per_token=True)
        total += per_token.double().sum().item()
        count += per_token.numel()
    return total / count


def ngram_losses(
    train_stream: Tensor,
    windows: Int[Tensor, "n n_ctx"],
    d_vocab: int,
    ks: tuple[float, ...] = (1e-3, 1e-2, 0.1, 0.3, 1.0),
) -> dict[str, float]:
    """Unigram and bigram add-k losses (nats/token) on the same targets as `model_loss`.

    Counts come from this language's train stream (a language-aware baseline, stronger than
    one pooled over the mixture); k is the best of `ks` on these very targets, which favours the
    baselines. After BOS (never seen in the counts) the bigram falls back to the unigram.
    """
    train = train_stream.long().numpy()
    uni = np.bincount(train, minlength=d_vocab).astype(np.float64)
    bi = np.bincount(train[:-1] * d_vocab + train[1:], minlength=d_vocab * d_vocab)
    bi = bi.reshape(d_vocab, d_vocab).astype(np.float64)
    prev = windows[:, :-1].reshape(-1).numpy()
    target = windows[:, 1:].reshape(-1).numpy()
    after_bos = prev == windows[0, 0].item()
    out = {}
    best_uni = min(ks, key=lambda k: -np.log((uni[target] + k) / (uni.sum() + k * d_vocab)).mean())
    p_uni = (uni[target] + best_uni) / (uni.sum() + best_uni * d_vocab)
    out["unigram"], out["unigram_k"] = float(-np.log(p_uni).mean()), best_uni

    def bigram(k: float) -> np.ndarray:
        p = (bi[prev, target] + k) / (uni[prev] + k * d_vocab)
        return np.where(after_bos, p_uni, p)

    best_bi = min(ks, key=lambda k: -np.log(bigram(k)).mean())
    out["bigram"], out["bigram_k"] = float(-np.log(bigram(best_bi)).mean()), best_bi
    return out


@torch.no_grad()
def greedy_continuation(model, prompt: str, new_tokens: int = 32) -> str:
    """The model's most likely continuation of `prompt` (BOS prepended), without the prompt."""
    tokens = model.to_tokens(prompt, prepend_bos=True)
    out = model.generate(
        tokens, max_new_tokens=new_tokens, do_sample=False, verbose=False, stop_at_eos=True
    )
    return model.tokenizer.decode(out[0, tokens.shape[1] :], skip_special_tokens=True)
