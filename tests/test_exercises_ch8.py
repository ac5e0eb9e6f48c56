"""Chapter 8's checkers pass the reference, fail seeded wrong answers with a hint, never raise."""

import torch
from checker_contract import checker_contract_tests

from tutorial_sae.exercises.ch8 import (
    check_corrupt_subject,
    check_counterfact_scores,
    check_rank_one_update,
)


def corrupt_ref(embed, noise, start, end):
    out = embed.clone()
    out[:, start:end] += noise
    return out


def rank_one_ref(W_out, b_out, C, k_star, v_star):
    u = torch.linalg.solve(C, k_star)
    return torch.outer(u, v_star - (k_star @ W_out + b_out)) / (u @ k_star)


def scores_ref(logits, new_id, true_id, n_paraphrase):
    wins = (logits[:, new_id] > logits[:, true_id]).float()
    return torch.stack(
        [wins[0], wins[1 : 1 + n_paraphrase].mean(), 1 - wins[1 + n_paraphrase :].mean()]
    )


def replaced(embed, noise, start, end):
    out = embed.clone()
    out[:, start:end] = noise
    return out


def not_inverted(logits, new_id, true_id, n_paraphrase):
    wins = (logits[:, new_id] > logits[:, true_id]).float()
    return torch.stack(
        [wins[0], wins[1 : 1 + n_paraphrase].mean(), wins[1 + n_paraphrase :].mean()]
    )


CASES = {
    "corrupt_subject": (
        check_corrupt_subject,
        corrupt_ref,
        [
            (lambda embed, noise, start, end: embed + noise.mean(1, keepdim=True), "only"),
            (replaced, "adds the noise"),
        ],
    ),
    "rank_one_update": (
        check_rank_one_update,
        rank_one_ref,
        [
            (
                lambda W_out, b_out, C, k_star, v_star: rank_one_ref(
                    W_out, 0 * b_out, C, k_star, v_star
                ),
                "b_out",
            ),
            (
                lambda W_out, b_out, C, k_star, v_star: rank_one_ref(
                    W_out, b_out, torch.eye(len(C)), k_star, v_star
                ),
                "C^-1 k*",
            ),
            (
                lambda W_out, b_out, C, k_star, v_star: torch.outer(
                    torch.linalg.solve(C, k_star), v_star - (k_star @ W_out + b_out)
                ),
                "divide by u . k*",
            ),
        ],
    ),
    "counterfact_scores": (
        check_counterfact_scores,
        scores_ref,
        [
            (not_inverted, "KEEPS"),
            (
                lambda logits, new_id, true_id, n_paraphrase: torch.stack(
                    [
                        (logits[0].argmax() == new_id).float(),
                        (logits[1 : 1 + n_paraphrase].argmax(-1) == new_id).float().mean(),
                        (logits[1 + n_paraphrase :].argmax(-1) == true_id).float().mean(),
                    ]
                ),
                "top-1",
            ),
        ],
    ),
}


(
    test_checker_passes_the_reference,
    test_checker_fails_a_wrong_implementation_with_its_hint,
    test_checker_reports_not_implemented_and_crashes_without_raising,
) = checker_contract_tests(CASES)
