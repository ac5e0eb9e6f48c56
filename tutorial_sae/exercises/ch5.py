"""Checkers for the exercises of chapter 5 (script labels from offsets, the LLR proxy,
specificity and sensitivity)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tutorial_sae.analysis.scripts import SCRIPTS, char_scripts, log_ratio_of_counts, token_scripts
from tutorial_sae.analysis.specificity import specificity_sensitivity
from tutorial_sae.exercises.runner import CheckResult, Mistake, compare_tensors, run_check

# Characters the seeded texts are drawn from: Han, Arabic, Latin, digits, spaces, punctuation.
_ALPHABET = "中文句子词汇北京猫" + "هذهجملةالعربية" + "abcdefXYZé" + "0123 .,。،!"


def _label_cases(seed: int) -> list[dict[str, Any]]:
    cases = []
    for i in range(4):
        rng = random.Random(seed + i)
        text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(8, 30)))
        offsets, start = [], 0
        while start < len(text):
            end = min(len(text), start + rng.randint(1, 4))
            if rng.random() < 0.3:
                # A multi-byte character split over two tokens: both get the character's span.
                offsets += [(start, start + 1), (start, start + 1)]
                end = start + 1
            else:
                offsets.append((start, end))
            start = end
        cases.append({"text": text, "offsets": offsets})
    return cases


def _compare_labels(got: Any, expected: list[str]) -> str | None:
    if not isinstance(got, (list, tuple)):
        return f"expected a list of script names, got {type(got).__name__}"
    if len(got) != len(expected):
        return f"{len(got)} labels for {len(expected)} tokens: return one label per token"
    wrong = [i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e]
    if not wrong:
        return None
    i = wrong[0]
    return f"{len(wrong)} of {len(expected)} labels wrong; token {i}: got {got[i]!r}, expected {expected[i]!r}"


def _first_char(text, offsets):
    per_char = char_scripts(text)
    return [SCRIPTS[per_char[s]] if e > s else "none" for s, e in offsets]


def _all_vote(text, offsets):
    per_char = char_scripts(text)
    return [
        SCRIPTS[int(np.bincount(per_char[s:e], minlength=len(SCRIPTS)).argmax())]
        if e > s
        else "none"
        for s, e in offsets
    ]


def _from_bytes(text, offsets):
    # Decoding each token's own bytes: a piece of a multi-byte character decodes to nothing.
    labels = token_scripts(text, offsets)
    return [
        "none" if i and offsets[i] == offsets[i - 1] else label for i, label in enumerate(labels)
    ]


def check_token_scripts(student_fn: Callable[[str, list], list], seed: int = 0) -> CheckResult:
    """Compare `student_fn(text, offsets)` with `tutorial_sae.analysis.scripts.token_scripts`."""
    return run_check(
        "token_scripts",
        student_fn,
        token_scripts,
        _label_cases(seed),
        compare=_compare_labels,
        mistakes=[
            Mistake(
                _all_vote,
                "spaces, digits and punctuation have no script: leave them out of the vote "
                'and return "none" only when no other character is in the span.',
            ),
            Mistake(
                _first_char,
                "count every character of the span text[start:end], not only the first one.",
            ),
            Mistake(
                _from_bytes,
                "two tokens with the same span are two byte pieces of one character: both take "
                "that character's script (use the offsets, not the token's own bytes).",
            ),
        ],
        hint="per_char = char_scripts(text); for each (start, end), count the scripts of "
        "per_char[start:end] other than 0 ('none') and take the most common.",
    )


def _llr_cases(seed: int) -> list[dict[str, Any]]:
    cases = []
    for i, (d_vocab, alpha) in enumerate(((12, 1.0), (50, 0.5), (200, 2.0))):
        gen = torch.Generator().manual_seed(seed + i)
        all_counts = torch.randint(0, 40, (d_vocab,), generator=gen).double()
        concept = (all_counts * torch.rand(d_vocab, generator=gen)).floor()
        concept[:3] = 0  # tokens never seen in the concept's text: smoothing must keep them finite
        cases.append({"concept_counts": concept, "all_counts": all_counts, "alpha": alpha})
    return cases


def _compare_llr(got: Any, expected: Tensor) -> str | None:
    if isinstance(got, Tensor) and got.shape == expected.shape and not torch.isfinite(got).all():
        return (
            "some entries are -inf or nan (a count of 0 gives log 0): add alpha to every count "
            "before normalising"
        )
    return compare_tensors(got, expected)


def check_llr(student_fn: Callable[[Tensor, Tensor, float], Tensor], seed: int = 0) -> CheckResult:
    """Compare `student_fn(concept_counts, all_counts, alpha)` with `log_ratio_of_counts`."""
    return run_check(
        "llr",
        student_fn,
        log_ratio_of_counts,
        _llr_cases(seed),
        compare=_compare_llr,
        mistakes=[
            Mistake(
                lambda concept_counts, all_counts, alpha: (
                    ((concept_counts + alpha) / concept_counts.sum()).log()
                    - ((all_counts + alpha) / all_counts.sum()).log()
                ),
                "normalise the smoothed counts: divide by the sum of (counts + alpha), so each "
                "distribution sums to 1.",
            ),
            Mistake(
                lambda concept_counts, all_counts, alpha: (
                    -log_ratio_of_counts(concept_counts, all_counts, alpha)
                ),
                "the ratio is P(t | concept) / P(t): positive for tokens typical of the concept.",
            ),
        ],
        hint="p_c = (c + alpha) / (c + alpha).sum(); p = (a + alpha) / (a + alpha).sum(); "
        "return p_c.log() - p.log().",
    )


def _spec_ref(acts: Tensor, concept: Tensor) -> Tensor:
    s = specificity_sensitivity(acts, concept)
    return torch.tensor([s.specificity, s.sensitivity], dtype=torch.float64)


def _spec_cases(seed: int) -> list[dict[str, Any]]:
    cases = []
    for i, n in enumerate((20, 300, 1000)):
        gen = torch.Generator().manual_seed(seed + i)
        concept = torch.rand(n, generator=gen) < 0.3
        # A feature that fires mostly, and more strongly, on the concept.
        on = torch.rand(n, generator=gen) < torch.where(concept, 0.6, 0.1)
        size = torch.rand(n, generator=gen) * torch.where(concept, 3.0, 1.0)
        cases.append({"acts": (on * size).double(), "concept": concept})
    return cases


def _as_pair(fn: Callable[..., Any]) -> Callable[..., Any]:
    def run(acts, concept):
        out = fn(acts=acts, concept=concept)
        return torch.as_tensor(out, dtype=torch.float64) if isinstance(out, (tuple, list)) else out

    return run


def check_specificity_sensitivity(
    student_fn: Callable[[Tensor, Tensor], Tensor], seed: int = 0
) -> CheckResult:
    """Compare `student_fn(acts, concept)` -> tensor([specificity, sensitivity]) with
    `tutorial_sae.analysis.specificity.specificity_sensitivity`."""

    def precision_not_mass(acts, concept):
        on = acts > 0
        return torch.stack(
            [(on & concept).sum() / on.sum(), (on & concept).sum() / concept.sum()]
        ).double()

    def over_firings(acts, concept):
        on = acts > 0
        spec = acts[concept].sum() / acts.sum()
        return torch.stack([spec, (on & concept).sum() / on.sum()]).double()

    def over_all_tokens(acts, concept):
        on = acts > 0
        spec = acts[concept].sum() / acts.sum()
        return torch.stack([spec, (on & concept).sum() / len(acts)]).double()

    return run_check(
        "specificity_sensitivity",
        _as_pair(student_fn) if callable(student_fn) else student_fn,
        _spec_ref,
        _spec_cases(seed),
        compare=lambda got, expected: compare_tensors(
            got.double() if isinstance(got, Tensor) else got, expected
        ),
        mistakes=[
            Mistake(
                precision_not_mass,
                "specificity weighs each token by the activation: sum acts over the concept "
                "and divide by the sum of all acts (counting firings gives precision).",
            ),
            Mistake(
                over_firings,
                "sensitivity divides by the number of CONCEPT tokens: of the concept's tokens, "
                "what share does the unit fire on?",
            ),
            Mistake(
                over_all_tokens,
                "sensitivity divides by the number of concept tokens, not by all tokens.",
            ),
        ],
        hint="on = acts > 0; specificity = acts[concept].sum() / acts.sum(); "
        "sensitivity = (on & concept).sum() / concept.sum().",
    )
