"""Chapter 4's checkers pass the reference, fail seeded wrong answers with a hint, never raise."""

from checker_contract import checker_contract_tests

from tutorial_sae.exercises.ch4 import (
    check_best_match_cosine,
    check_cosine_neighbours,
    check_knn_agreement,
)


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def neighbours_ref(directions, k):
    sims = unit(directions) @ unit(directions).T
    sims.fill_diagonal_(-float("inf"))
    return sims.topk(k, dim=-1).indices


def best_ref(small, large):
    return (unit(small) @ unit(large).T).max(-1).values


def agreement_ref(neighbours, labels):
    return (labels[neighbours] == labels[:, None]).float().mean()


CASES = {
    "cosine_neighbours": (
        check_cosine_neighbours,
        neighbours_ref,
        [
            (
                lambda directions, k: (unit(directions) @ unit(directions).T).topk(k).indices,
                "diagonal",
            ),
            (
                lambda directions, k: (
                    (directions @ directions.T).fill_diagonal_(-float("inf")).topk(k).indices
                ),
                "normalise",
            ),
            (lambda directions, k: neighbours_ref(directions, k).float(), "integer indices"),
        ],
    ),
    "best_match_cosine": (
        check_best_match_cosine,
        best_ref,
        [
            (lambda small, large: (small @ large.T).max(-1).values, "normalise"),
            (lambda small, large: (unit(small) @ unit(large).T).max(0).values, "LARGE"),
            (lambda small, large: (unit(small) @ unit(large).T).abs().max(-1).values, "absolute"),
        ],
    ),
    "knn_agreement": (
        check_knn_agreement,
        agreement_ref,
        [
            (
                lambda neighbours, labels: (labels[neighbours[:, 0]] == labels).float().mean(),
                "all k",
            ),
            (
                lambda neighbours, labels: (
                    (labels[neighbours] == labels[:, None]).float().sum(-1).mean()
                ),
                "not a count",
            ),
        ],
    ),
}


(
    test_checker_passes_the_reference,
    test_checker_fails_a_wrong_implementation_with_its_hint,
    test_checker_reports_not_implemented_and_crashes_without_raising,
) = checker_contract_tests(CASES)
