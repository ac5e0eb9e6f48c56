"""Chapter 4's checkers pass the reference, fail seeded wrong answers with a hint, never raise."""

import pytest
import torch

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


@pytest.mark.parametrize("name", CASES)
def test_checker_passes_the_reference(name, capsys):
    checker, reference, _ = CASES[name]
    result = checker(reference)
    assert result.passed, result.message
    assert capsys.readouterr().out.strip() == result.message


@pytest.mark.parametrize(
    ("name", "index"),
    [(name, i) for name, (_, _, wrong) in CASES.items() for i in range(len(wrong))],
)
def test_checker_fails_a_wrong_implementation_with_its_hint(name, index):
    checker, _, wrong = CASES[name]
    fn, words = wrong[index]
    result = checker(fn)
    assert not result.passed
    assert "Hint:" in result.message
    assert words in result.message


@pytest.mark.parametrize("name", CASES)
def test_checker_reports_not_implemented_and_crashes_without_raising(name):
    checker, _, _ = CASES[name]

    def stub(**kwargs):
        raise NotImplementedError

    def crashing(**kwargs):
        return next(iter(kwargs.values())).float() @ torch.ones(999, 999)

    assert "not implemented yet" in checker(stub).message
    crashed = checker(crashing)
    assert not crashed.passed and "RuntimeError" in crashed.message
