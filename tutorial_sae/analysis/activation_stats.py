"""What hook activations cost and look like: forward-to-hook timing, neighbour similarity (chapter 3)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.data.activations import DEFAULT_HOOK, check_tokens, run_to_hook
from tutorial_sae.utils import check_hook, check_int, check_tensor


@dataclass(frozen=True)
class ForwardTiming:
    """Best-of-`repeats` seconds of a full forward and of a forward stopped at the hook."""

    full_s: float
    to_hook_s: float
    unembed_macs_per_token: int
    mlp_macs_per_token: int

    @property
    def speedup(self) -> float:
        return self.full_s / self.to_hook_s

    @property
    def unembed_over_mlp(self) -> float:
        return self.unembed_macs_per_token / self.mlp_macs_per_token


def time_forward_to_hook(
    model, tokens: Int[Tensor, "batch pos"], hook: str = DEFAULT_HOOK, repeats: int = 5
) -> ForwardTiming:
    """Time a full forward against `run_to_hook` on the same batch, interleaved, best of each.

    Interleaving and taking the minimum keeps other work on the machine from deciding which
    way looks faster. Multiply-adds per token: the unembedding d_model x d_vocab, the MLP
    2 x d_model x d_mlp.
    """
    check_tokens(tokens, model)
    check_hook(model, hook)
    check_int(repeats, "repeats")
    tokens = tokens.to(model.cfg.device)
    times: dict[str, list[float]] = {"full": [], "to_hook": []}
    runs = {"full": lambda: model(tokens), "to_hook": lambda: run_to_hook(model, tokens, hook)}
    with torch.no_grad():
        for _ in range(repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    cfg = model.cfg
    return ForwardTiming(
        full_s=min(times["full"]),
        to_hook_s=min(times["to_hook"]),
        unembed_macs_per_token=cfg.d_model * cfg.d_vocab,
        mlp_macs_per_token=2 * cfg.d_model * cfg.d_mlp,
    )


@dataclass(frozen=True)
class NeighbourSimilarity:
    """Mean cosine similarity of activations: neighbouring positions vs random pairs."""

    neighbours: float
    random_pairs: float


def neighbour_similarity(
    acts: Float[Tensor, "batch pos d"], seed: int = 0, skip_first: int = 1
) -> NeighbourSimilarity:
    """How much more alike neighbouring tokens' activations are than random tokens' ones.

    The first `skip_first` positions (the BOS token) are left out. Random pairs pair each
    token with a random permutation of all tokens of the batch.
    """
    check_tensor(acts, "acts", 3)
    check_int(skip_first, "skip_first", 0)
    check_int(seed, "seed", 0)
    if acts.shape[1] < skip_first + 2:
        raise ValueError(
            f"expected activations [batch, pos, d] with pos >= {skip_first + 2}, "
            f"got {tuple(acts.shape)}"
        )
    unit = torch.nn.functional.normalize(acts[:, skip_first:].float(), dim=-1)
    neighbours = (unit[:, 1:] * unit[:, :-1]).sum(-1).mean()
    flat = unit.reshape(-1, unit.shape[-1])
    pairs = torch.randperm(len(flat), generator=torch.Generator().manual_seed(seed))
    random_pairs = (flat * flat[pairs]).sum(-1).mean()
    return NeighbourSimilarity(float(neighbours), float(random_pairs))
