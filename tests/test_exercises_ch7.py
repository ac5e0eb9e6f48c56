"""Chapter 7's checkers pass the reference, fail seeded wrong answers with a hint, never raise."""

import torch
from checker_contract import checker_contract_tests

from tutorial_sae.analysis.walks import isotropic_cosine, slerp, walk_directions
from tutorial_sae.exercises import check_isotropic_cosine, check_random_walk, check_slerp


def walk_ref(start, n_steps, step_size, n_seeds, seed, clip):
    z = start.expand(n_seeds, -1)
    states = [z]
    for u in walk_directions(n_steps, n_seeds, start.shape[0], seed):
        z = z + step_size * u
        z = torch.relu(z) if clip else z
        states.append(z)
    return torch.stack(states, 1)


def walk_no_start(start, n_steps, step_size, n_seeds, seed, clip):
    return walk_ref(start, n_steps, step_size, n_seeds, seed, clip)[:, 1:]


def walk_other_noise(start, n_steps, step_size, n_seeds, seed, clip):
    return walk_ref(start, n_steps, step_size, n_seeds, seed + 1, clip)


def slerp_lerp(a, b, alphas):
    w = alphas[:, None]
    return (1 - w) * a + w * b


def slerp_unit(a, b, alphas):
    return slerp(a / a.norm(), b / b.norm(), alphas)


def cosine_no_sqrt(start_norm, step_size, n_steps):
    return isotropic_cosine(start_norm, step_size, n_steps) ** 2


def cosine_from_one(start_norm, step_size, n_steps):
    return isotropic_cosine(start_norm, step_size, n_steps)[1:]


CASES = {
    "random_walk": (
        check_random_walk,
        walk_ref,
        [(walk_no_start, "n_steps + 1 states"), (walk_other_noise, "walk_directions(")],
    ),
    "slerp": (
        check_slerp,
        lambda a, b, alphas: slerp(a, b, alphas),
        [(slerp_lerp, "great circle"), (slerp_unit, "(1 - alpha)|a| + alpha|b|")],
    ),
    "isotropic_cosine": (
        check_isotropic_cosine,
        lambda start_norm, step_size, n_steps: isotropic_cosine(start_norm, step_size, n_steps),
        [(cosine_no_sqrt, "square root"), (cosine_from_one, "include step 0")],
    ),
}


def _divide_by_zero(**kwargs):
    return 1 / 0


(
    test_checker_passes_the_reference,
    test_checker_fails_a_wrong_implementation_with_its_hint,
    test_checker_reports_not_implemented_and_crashes_without_raising,
) = checker_contract_tests(CASES, crash=_divide_by_zero, error="ZeroDivisionError")
