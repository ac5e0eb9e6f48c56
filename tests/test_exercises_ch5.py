"""Chapter 5's checkers pass the reference, fail seeded wrong answers with a hint, never raise."""

import torch
from checker_contract import checker_contract_tests

from tutorial_sae.analysis.scripts import SCRIPTS, char_scripts
from tutorial_sae.exercises.ch5 import (
    check_llr,
    check_specificity_sensitivity,
    check_token_scripts,
)


def labels_ref(text, offsets):
    per_char = char_scripts(text)
    out = []
    for start, end in offsets:
        votes = [int((per_char[start:end] == k).sum()) for k in range(1, len(SCRIPTS))]
        out.append(SCRIPTS[1 + votes.index(max(votes))] if max(votes) else "none")
    return out


def llr_ref(concept_counts, all_counts, alpha):
    p_c = (concept_counts + alpha) / (concept_counts + alpha).sum()
    p = (all_counts + alpha) / (all_counts + alpha).sum()
    return torch.log(p_c / p)


def spec_ref(acts, concept):
    on = acts > 0
    return torch.stack([acts[concept].sum() / acts.sum(), (on & concept).sum() / concept.sum()])


CASES = {
    "token_scripts": (
        check_token_scripts,
        labels_ref,
        [
            (
                lambda text, offsets: [SCRIPTS[char_scripts(text)[s]] for s, _ in offsets],
                "every character",
            ),
            (lambda text, offsets: ["han"] * len(offsets), "Hint:"),
            (
                lambda text, offsets: [
                    "none" if i and offsets[i] == offsets[i - 1] else lab
                    for i, lab in enumerate(labels_ref(text, offsets))
                ],
                "byte pieces",
            ),
        ],
    ),
    "llr": (
        check_llr,
        llr_ref,
        [
            (
                lambda concept_counts, all_counts, alpha: llr_ref(concept_counts, all_counts, 0.0),
                "add alpha",
            ),
            (
                lambda concept_counts, all_counts, alpha: llr_ref(
                    all_counts, concept_counts, alpha
                ),
                "positive",
            ),
            (
                lambda concept_counts, all_counts, alpha: (
                    ((concept_counts + alpha) / concept_counts.sum()).log()
                    - ((all_counts + alpha) / all_counts.sum()).log()
                ),
                "normalise",
            ),
        ],
    ),
    "specificity_sensitivity": (
        check_specificity_sensitivity,
        spec_ref,
        [
            (
                lambda acts, concept: torch.stack(
                    [((acts > 0) & concept).sum() / (acts > 0).sum(), spec_ref(acts, concept)[1]]
                ),
                "weighs each token",
            ),
            (
                lambda acts, concept: torch.stack(
                    [spec_ref(acts, concept)[0], ((acts > 0) & concept).sum() / (acts > 0).sum()]
                ),
                "CONCEPT tokens",
            ),
            (
                lambda acts, concept: torch.stack(
                    [spec_ref(acts, concept)[0], ((acts > 0) & concept).sum() / len(acts)]
                ),
                "not by all tokens",
            ),
        ],
    ),
}


def _boom(**kwargs):
    # The first argument is a string here, so a torch shape bug cannot be provoked from it.
    raise RuntimeError("boom")


(
    test_checker_passes_the_reference,
    test_checker_fails_a_wrong_implementation_with_its_hint,
    test_checker_reports_not_implemented_and_crashes_without_raising,
) = checker_contract_tests(CASES, crash=_boom)


def test_specificity_checker_accepts_a_tuple_of_floats():
    result = check_specificity_sensitivity(
        lambda acts, concept: tuple(spec_ref(acts, concept).tolist())
    )
    assert result.passed, result.message
