"""Chapter 6's checkers pass the reference, fail seeded wrong answers with a hint, never raise."""

import torch
from checker_contract import checker_contract_tests

from tutorial_sae.analysis.interventions import zero_features
from tutorial_sae.exercises import check_ablated_activation, check_attribution, check_jaccard_top_k


def ablated_ref(x, sae, feature):
    f = sae.encode(x)
    return x - f[:, feature, None] * sae.W_dec[feature]


def attribution_ref(latents, grads, strength, n_scored):
    return -strength * (latents * grads).sum(0) / n_scored


def jaccard_ref(first, second, k):
    a, b = set(first.topk(k).indices.tolist()), set(second.topk(k).indices.tolist())
    return len(a & b) / len(a | b)


CASES = {
    "ablated_activation": (
        check_ablated_activation,
        ablated_ref,
        [
            (
                lambda x, sae, feature: sae.decode(zero_features(feature)(sae.encode(x))),
                "error term",
            ),
            (lambda x, sae, feature: x - sae.W_dec[feature], "scale the decoder row"),
            (
                lambda x, sae, feature: x - sae.encode(x)[:, feature, None] * sae.W_enc[:, feature],
                "encoder column",
            ),
        ],
    ),
    "attribution": (
        check_attribution,
        attribution_ref,
        [
            (
                lambda latents, grads, strength, n_scored: (
                    -attribution_ref(latents, grads, strength, n_scored)
                ),
                "sign",
            ),
            (
                lambda latents, grads, strength, n_scored: -strength * grads.sum(0) / n_scored,
                "activation",
            ),
            (
                lambda latents, grads, strength, n_scored: (
                    -strength * (latents * grads).abs().sum(0) / n_scored
                ),
                "opposite sign",
            ),
        ],
    ),
    "jaccard_top_k": (
        check_jaccard_top_k,
        jaccard_ref,
        [
            (
                lambda first, second, k: (
                    len(set(first.topk(k).indices.tolist()) & set(second.topk(k).indices.tolist()))
                    / k
                ),
                "UNION",
            ),
            (
                lambda first, second, k: jaccard_ref(-first, -second, k),
                "LARGEST",
            ),
        ],
    ),
}


(
    test_checker_passes_the_reference,
    test_checker_fails_a_wrong_implementation_with_its_hint,
    test_checker_reports_not_implemented_and_crashes_without_raising,
) = checker_contract_tests(CASES)


def test_jaccard_checker_accepts_a_float_or_a_tensor():
    assert check_jaccard_top_k(
        lambda first, second, k: torch.tensor(jaccard_ref(first, second, k))
    ).passed
