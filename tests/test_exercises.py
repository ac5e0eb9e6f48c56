"""Every checker passes the reference, fails seeded wrong answers with a hint, survives a crash."""

import pytest
import torch

from tutorial_sae.core.math_toys import Norms, gelu_exact, gelu_tanh, norms, soft_threshold
from tutorial_sae.core.sae import SAE, SAEConfig
from tutorial_sae.exercises import (
    CheckResult,
    check_encode,
    check_gelu,
    check_norms,
    check_remove_parallel_grad,
    check_sae_loss,
    check_soft_threshold,
)


def _sae(W_enc, b_enc, W_dec, b_dec, l1_coeff=1.0):
    sae = SAE(SAEConfig(d_in=W_enc.shape[0], d_sae=W_enc.shape[1], l1_coeff=l1_coeff))
    sae.load_state_dict({"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec})
    return sae


def encode_ref(x, W_enc, b_enc, b_dec):
    return torch.relu((x - b_dec) @ W_enc + b_enc)


def loss_ref(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    return _sae(W_enc, b_enc, W_dec, b_dec, l1_coeff).loss(x).total


def projection_ref(W_dec, grad):
    w = W_dec / W_dec.norm(dim=-1, keepdim=True)
    return grad - (grad * w).sum(-1, keepdim=True) * w


def loss_unweighted(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    f = encode_ref(x, W_enc, b_enc, b_dec)
    return (f @ W_dec + b_dec - x).pow(2).sum(-1).mean() + l1_coeff * f.sum(-1).mean()


def loss_mean_mse(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    f = encode_ref(x, W_enc, b_enc, b_dec)
    l1 = (f * W_dec.norm(dim=-1)).sum(-1).mean()
    return (f @ W_dec + b_dec - x).pow(2).mean() + l1_coeff * l1


# (checker, reference, [(wrong implementation, words the hint must contain), ...])
CASES = {
    "gelu": (
        check_gelu,
        gelu_exact,
        [
            (gelu_tanh, "tanh approximation"),
            (torch.relu, "ReLU"),
            (lambda x: x * torch.sigmoid(1.702 * x), "sigmoid"),
        ],
    ),
    "norms": (
        check_norms,
        norms,
        [
            (lambda x: Norms((x != 0).float().sum(-1), x.sum(-1), x.norm(dim=-1)), "absolute"),
            (lambda x: Norms((x > 0).float().sum(-1), x.abs().sum(-1), x.norm(dim=-1)), "x != 0"),
            (
                lambda x: Norms((x != 0).float().sum(-1), x.abs().sum(-1), x.pow(2).sum(-1)),
                "square root",
            ),
        ],
    ),
    "soft_threshold": (
        check_soft_threshold,
        soft_threshold,
        [
            (lambda x, threshold: torch.relu(x - threshold), "negative"),
            (lambda x, threshold: x * (x.abs() > threshold), "hard thresholding"),
        ],
    ),
    "encode": (
        check_encode,
        encode_ref,
        [
            (
                lambda x, W_enc, b_enc, b_dec: torch.relu(x @ W_enc + b_enc),
                "subtract the decoder bias",
            ),
            (lambda x, W_enc, b_enc, b_dec: (x - b_dec) @ W_enc + b_enc, "ReLU"),
        ],
    ),
    "sae_loss": (
        check_sae_loss,
        loss_ref,
        [
            (loss_unweighted, "decoder row"),
            (loss_mean_mse, "summed over d_in"),
        ],
    ),
    "remove_parallel_grad": (
        check_remove_parallel_grad,
        projection_ref,
        [
            (lambda W_dec, grad: grad - (grad * W_dec).sum(-1, keepdim=True) * W_dec, "normalise"),
            (lambda W_dec, grad: grad - projection_ref(W_dec, grad), "parallel part"),
            (lambda W_dec, grad: projection_ref(W_dec.T, grad.T).T, "ROW"),
        ],
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_checker_passes_the_reference(name, capsys):
    checker, reference, _ = CASES[name]
    result = checker(reference)
    assert isinstance(result, CheckResult)
    assert result.passed, result.message
    assert capsys.readouterr().out.strip() == result.message
    assert result.message.startswith("✓")


@pytest.mark.parametrize(
    ("name", "index"),
    [(name, i) for name, (_, _, wrong) in CASES.items() for i in range(len(wrong))],
)
def test_checker_fails_a_wrong_implementation_with_its_hint(name, index, capsys):
    checker, _, wrong = CASES[name]
    fn, hint_words = wrong[index]
    result = checker(fn)
    assert not result.passed
    assert result.message.startswith("✗")
    assert hint_words in result.message
    assert "Hint:" in capsys.readouterr().out


@pytest.mark.parametrize("name", CASES)
def test_checker_reports_not_implemented_without_raising(name):
    checker, _, _ = CASES[name]

    def stub(*args, **kwargs):
        raise NotImplementedError

    result = checker(stub)
    assert not result.passed
    assert "not implemented yet" in result.message


@pytest.mark.parametrize("name", CASES)
def test_checker_summarises_a_crashing_function(name):
    checker, _, _ = CASES[name]

    def crashing(*args, **kwargs):
        first = next(iter(kwargs.values()))  # the checkers pass arguments by name
        return first @ torch.ones(999, 999)

    result = checker(crashing)
    assert not result.passed
    assert "RuntimeError" in result.message
    assert "first @ torch.ones(999, 999)" in result.message


def test_checker_rejects_a_non_function():
    result = check_gelu(42)
    assert not result.passed
    assert "expected a function" in result.message


def test_wrong_return_type_is_reported_not_raised():
    result = check_norms(lambda x: (x.sum(-1), x.sum(-1), x.sum(-1)))
    assert not result.passed
    assert "Norms" in result.message


def test_wrong_shape_is_reported():
    result = check_gelu(lambda x: gelu_exact(x).reshape(-1)[:1])
    assert not result.passed
    assert "shape" in result.message


def test_checker_does_not_let_the_student_mutate_its_inputs():
    def in_place(x):
        return x.mul_(0.5 * (1 + torch.erf(x / 2**0.5)))

    assert check_gelu(in_place).passed


def test_a_looping_or_exiting_student_function_is_stopped_and_reported(capsys):
    import time

    from tutorial_sae.exercises import check_gelu, set_time_limit
    from tutorial_sae.exercises.runner import run_check

    def forever(x):
        while True:
            time.sleep(0.01)

    start = time.perf_counter()
    result = run_check("gelu", forever, lambda x: x, [{"x": torch.ones(2)}], time_limit=0.3)
    assert not result.passed and "stopped" in result.message and "0.3 s" in result.message
    assert time.perf_counter() - start < 3

    def leaves(x):
        raise SystemExit(1)

    result = check_gelu(leaves)
    assert not result.passed and "SystemExit" in result.message

    set_time_limit(0.2)
    try:
        result = check_gelu(forever)
        assert not result.passed and "0.2 s" in result.message
    finally:
        set_time_limit(5.0)
    with pytest.raises(ValueError, match="time limit > 0"):
        set_time_limit(0)
