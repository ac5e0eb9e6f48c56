"""The real activations chapter 7's walks start from and are measured against, and their sizes.

Split out of `tutorial_sae.analysis.walks`, which re-exports `WalkData` and `walk_data`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from tutorial_sae.utils import check_bool, check_int, check_str


@dataclass
class WalkData:
    """Real activations: a bank to measure distances to, held-out ones, and the walks' starts."""

    bank: Tensor
    held_out: Tensor
    starts: Tensor
    start_tokens: Tensor  # [n_starts, pos]: each start's sequence
    start_positions: Tensor  # [n_starts]: the start token's position in it

    def summary(self) -> str:
        """One line: the shapes of the bank and the held-out activations, and how many starts."""
        return (
            f"bank {tuple(self.bank.shape)}, held out {tuple(self.held_out.shape)}, "
            f"starts {len(self.starts)}"
        )


def walk_data(
    model,
    train_tokens: Int[Tensor, "n_seq pos"],
    eval_tokens: Int[Tensor, "n_seq pos"],
    n_starts: int = 4,
    seed: int = 0,
) -> WalkData:
    """Activations of every non-BOS token: train ones as the bank, eval ones held out, starts drawn
    from eval positions >= 8 (some context before them)."""
    from tutorial_sae.data.activations import collect_activations

    check_int(n_starts, "n_starts")
    if n_starts > len(eval_tokens) or eval_tokens.ndim != 2 or eval_tokens.shape[1] <= 8:
        raise ValueError(f"eval_tokens must hold >= n_starts={n_starts} rows of > 8 tokens, got "
                         f"shape {tuple(eval_tokens.shape)}")  # fmt: skip
    bank = collect_activations(model, train_tokens, progress=False)[:, 1:].flatten(0, 1)
    acts = collect_activations(model, eval_tokens, progress=False)
    gen = torch.Generator().manual_seed(seed)
    seqs = torch.randperm(len(eval_tokens), generator=gen)[:n_starts]
    pos = torch.randint(8, eval_tokens.shape[1], (len(seqs),), generator=gen)
    return WalkData(bank, acts[:, 1:].flatten(0, 1), acts[seqs, pos], eval_tokens[seqs], pos)


def load_walk_data(
    model, model_name: str, n_tokens: int, n_starts: int = 4, seed: int = 0
) -> WalkData:
    """`walk_data` on `n_tokens` of the model's own train text (the bank) and as many of its eval
    text (held out, and the starts), both from `load_tokens(model_name, ...)`."""
    from tutorial_sae.models.loading import load_tokens

    check_str(model_name, "model_name", allow_empty=False)
    check_int(n_tokens, "n_tokens")
    train = load_tokens(model_name, "train", n_tokens, tokenizer=model.tokenizer)
    held = load_tokens(model_name, "eval", n_tokens, tokenizer=model.tokenizer)
    return walk_data(model, train, held, n_starts=n_starts, seed=seed)


@dataclass(frozen=True)
class WalkSizes:
    """How long and how many walks, and how many tokens of real activations to compare with."""

    n_steps: int
    n_seeds: int
    bank_tokens: int


def walk_sizes(model, fast: bool, n_steps: int, n_seeds: int, bank_tokens: int) -> WalkSizes:
    """The chapter's sizes, or in FAST mode the loaded model's share of them (`ModelPreset.
    fast_size`): at least 5 steps, 4 seeds and 256 bank tokens. On mini they are unchanged."""
    from tutorial_sae.training.presets import preset_for

    check_bool(fast, "fast")
    for name, n in (("n_steps", n_steps), ("n_seeds", n_seeds), ("bank_tokens", bank_tokens)):
        check_int(n, name)
    preset = preset_for(model)
    return WalkSizes(
        preset.fast_size(n_steps, fast, minimum=5),
        preset.fast_size(n_seeds, fast, minimum=4),
        preset.fast_size(bank_tokens, fast, minimum=256),
    )
