"""Chapter 3's checkers pass the reference, fail seeded wrong answers with a hint, never raise."""

import torch
from checker_contract import checker_contract_tests

from tutorial_sae.core.sae import ghost_grad_loss
from tutorial_sae.exercises import (
    check_ce_loss_recovered,
    check_dead_feature_mask,
    check_ghost_grad_loss,
)


def dead_mask_ref(steps_since_fired, feature_acts, dead_window):
    fired = (feature_acts > 0).any(0)
    return torch.where(fired, 0, steps_since_fired + 1) >= dead_window


def ghost_ref(x, x_hat, pre_acts, W_dec, dead_mask):
    return ghost_grad_loss(x, x_hat, pre_acts, W_dec, dead_mask, (x_hat - x).pow(2).sum(-1))


def ghost_written_out(x, x_hat, pre_acts, W_dec, dead_mask, half=True, detach=True, exp=True):
    residual = (x - x_hat).detach() if detach else x - x_hat
    acts = torch.exp(pre_acts[:, dead_mask]) if exp else torch.relu(pre_acts[:, dead_mask])
    g = acts @ W_dec[dead_mask]
    target = residual.norm(dim=-1) / (2 if half else 1)
    g = g * (target / g.norm(dim=-1)).detach()[:, None]
    err = (g - residual).pow(2).sum(-1)
    return (err * ((x_hat - x).pow(2).sum(-1) / err).detach()).mean()


def recovered_ref(clean, reconstructed, zero_ablated):
    return (zero_ablated - reconstructed) / (zero_ablated - clean)


CASES = {
    "dead_feature_mask": (
        check_dead_feature_mask,
        dead_mask_ref,
        [
            (
                lambda steps_since_fired, feature_acts, dead_window: (
                    steps_since_fired >= dead_window
                ),
                "update the counters",
            ),
            (
                lambda steps_since_fired, feature_acts, dead_window: dead_mask_ref(
                    steps_since_fired, feature_acts, dead_window + 1
                ),
                "use >=",
            ),
            (
                lambda steps_since_fired, feature_acts, dead_window: (
                    torch.where((feature_acts > 0).all(0), 0, steps_since_fired + 1) >= dead_window
                ),
                "ANY token",
            ),
        ],
    ),
    "ghost_grad_loss": (
        check_ghost_grad_loss,
        ghost_ref,
        [
            (lambda **kw: ghost_written_out(**kw, half=False), "HALF"),
            (lambda **kw: ghost_written_out(**kw, detach=False), "detach the residual"),
            (lambda **kw: ghost_written_out(**kw, exp=False), "exp(pre_acts)"),
            (
                lambda x, x_hat, pre_acts, W_dec, dead_mask: (x_hat - x).pow(2).sum(-1).mean(),
                "gradient w.r.t. pre_acts",
            ),
        ],
    ),
    "ce_loss_recovered": (
        check_ce_loss_recovered,
        recovered_ref,
        [
            (
                lambda clean, reconstructed, zero_ablated: (
                    1 - recovered_ref(clean, reconstructed, zero_ablated)
                ),
                "LOST",
            ),
            (
                lambda clean, reconstructed, zero_ablated: (
                    (zero_ablated - reconstructed) / zero_ablated
                ),
                "gap",
            ),
        ],
    ),
}


(
    test_checker_passes_the_reference,
    test_checker_fails_a_wrong_implementation_with_its_hint,
    test_checker_reports_not_implemented_and_crashes_without_raising,
) = checker_contract_tests(CASES)


def test_ghost_checker_tells_a_value_only_answer_from_the_right_gradients():
    # The ghost term's value equals the main MSE, so a loss with the right value and no ghost
    # gradient must still fail: the checker compares gradients w.r.t. pre_acts too.
    result = check_ghost_grad_loss(
        lambda x, x_hat, pre_acts, W_dec, dead_mask: (
            (x_hat - x).pow(2).sum(-1).mean() + 0 * pre_acts.sum()
        )
    )
    assert not result.passed
    assert "gradient w.r.t. pre_acts" in result.message


def test_dead_mask_checker_rejects_a_float_mask():
    result = check_dead_feature_mask(lambda **kw: dead_mask_ref(**kw).float())
    assert not result.passed
    assert "bool" in result.message
