"""Checkers for the exercises of chapter 8 (corrupt the subject, the rank-one update, the scores)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tutorial_sae.analysis.edit_scores import counterfact_scores
from tutorial_sae.analysis.interventions import add_activation
from tutorial_sae.analysis.rome import rank_one_update
from tutorial_sae.exercises.runner import CheckResult, Mistake, run_check


def _corrupt_ref(embed: Tensor, noise: Tensor, start: int, end: int) -> Tensor:
    # The chapter's corruption: the interventions module adds the noise at the subject tokens.
    batch = embed.shape[0]
    rows = torch.arange(batch).repeat_interleave(end - start)
    cols = torch.arange(start, end).repeat(batch)
    return add_activation(noise.reshape(-1, noise.shape[-1]), rows, cols)(embed)


def _corrupt_cases(seed: int) -> list[dict[str, Any]]:
    cases = []
    for i, (batch, pos, d, start, end) in enumerate(
        ((3, 6, 4, 1, 3), (5, 9, 8, 2, 5), (1, 4, 2, 0, 1))
    ):
        g = torch.Generator().manual_seed(seed + i)
        embed = torch.randn(batch, pos, d, generator=g)
        noise = 3 * torch.randn(batch, end - start, d, generator=g)
        cases.append({"embed": embed, "noise": noise, "start": start, "end": end})
    return cases


def check_corrupt_subject(
    student_fn: Callable[[Tensor, Tensor, int, int], Tensor], seed: int = 0
) -> CheckResult:
    """Compare `student_fn(embed, noise, start, end)` with the tracing module's corruption."""

    def everywhere(embed, noise, start, end):
        return embed + noise.mean(1, keepdim=True)

    def one_too_far(embed, noise, start, end):
        out = embed.clone()
        out[:, start + 1 : end + 1] += noise
        return out

    def replaced(embed, noise, start, end):
        out = embed.clone()
        out[:, start:end] = noise
        return out

    return run_check(
        "corrupt_subject",
        student_fn,
        _corrupt_ref,
        _corrupt_cases(seed),
        mistakes=[
            Mistake(everywhere, "add the noise at the subject positions start..end-1 only."),
            Mistake(one_too_far, "Python slices stop before `end`: positions start to end-1."),
            Mistake(replaced, "ROME adds the noise to the embeddings; it does not replace them."),
        ],
        hint="embed[:, start:end] + noise, on a copy of embed; every other position unchanged.",
    )


def _rank_one_cases(seed: int) -> list[dict[str, Any]]:
    cases = []
    for i, (d, d_model) in enumerate(((6, 3), (16, 8), (10, 10))):
        g = torch.Generator().manual_seed(seed + i)
        keys = torch.randn(4 * d, d, generator=g)
        cases.append(
            {
                "W_out": torch.randn(d, d_model, generator=g),
                "b_out": torch.randn(d_model, generator=g),
                "C": keys.T @ keys / len(keys),
                "k_star": torch.randn(d, generator=g),
                "v_star": torch.randn(d_model, generator=g),
            }
        )
    return cases


def check_rank_one_update(student_fn: Callable[..., Tensor], seed: int = 0) -> CheckResult:
    """Compare `student_fn(W_out, b_out, C, k_star, v_star)` with `rome.rank_one_update`."""

    def no_bias(W_out, b_out, C, k_star, v_star):
        return rank_one_update(W_out, torch.zeros_like(b_out), C, k_star, v_star)

    def no_covariance(W_out, b_out, C, k_star, v_star):
        return rank_one_update(W_out, b_out, torch.eye(len(C)), k_star, v_star)

    def no_normaliser(W_out, b_out, C, k_star, v_star):
        u = torch.linalg.solve(C, k_star)
        return torch.outer(u, v_star - (k_star @ W_out + b_out))

    return run_check(
        "rank_one_update",
        student_fn,
        lambda **case: rank_one_update(**case),
        _rank_one_cases(seed),
        mistakes=[
            Mistake(
                no_bias, "the MLP's output includes b_out: the residual is v* - (k* W_out + b_out)."
            ),
            Mistake(
                no_covariance, "use u = C^-1 k* (torch.linalg.solve(C, k_star)), not k* itself."
            ),
            Mistake(
                no_normaliser, "divide by u . k* so that the new weights map k* exactly to v*."
            ),
        ],
        hint="delta = outer(u, v* - (k* W_out + b_out)) / (u . k*) with u = C^-1 k*.",
    )


def _score_cases(seed: int) -> list[dict[str, Any]]:
    cases = []
    for i, (n, vocab, n_para) in enumerate(((8, 12, 2), (15, 30, 3), (4, 5, 1))):
        g = torch.Generator().manual_seed(seed + i)
        new, true = torch.randperm(vocab, generator=g)[:2].tolist()
        logits = torch.randn(n, vocab, generator=g)
        logits[: 1 + n_para, new] += 1.0
        logits[0, :] += 2.0 * (torch.arange(vocab) == (new + 1) % vocab)  # a third token on top
        cases.append({"logits": logits, "new_id": new, "true_id": true, "n_paraphrase": n_para})
    return cases


def check_counterfact_scores(student_fn: Callable[..., Tensor], seed: int = 0) -> CheckResult:
    """Compare `student_fn(logits, new_id, true_id, n_paraphrase)` with the chapter's scores."""

    def neighbours_not_inverted(logits, new_id, true_id, n_paraphrase):
        wins = (logits[:, new_id] > logits[:, true_id]).float()
        return torch.stack(
            [wins[0], wins[1 : 1 + n_paraphrase].mean(), wins[1 + n_paraphrase :].mean()]
        )

    def top1(logits, new_id, true_id, n_paraphrase):
        wins = (logits.argmax(-1) == new_id).float()
        keeps = (logits.argmax(-1) == true_id).float()
        return torch.stack(
            [wins[0], wins[1 : 1 + n_paraphrase].mean(), keeps[1 + n_paraphrase :].mean()]
        )

    return run_check(
        "counterfact_scores",
        student_fn,
        lambda **case: counterfact_scores(**case),
        _score_cases(seed),
        mistakes=[
            Mistake(neighbours_not_inverted, "a neighbour scores when it KEEPS P(true) > P(new)."),
            Mistake(
                top1, "compare P(new) with P(true), not the top-1 token of the whole vocabulary."
            ),
        ],
        hint="wins = P(new) > P(true) per row; rows 0, 1..n_paraphrase, then the neighbours (1 - wins).",
    )
