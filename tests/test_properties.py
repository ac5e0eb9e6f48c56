"""Property-based: any input to the public SAE maths gives well-shaped finite output or a
documented error (ValueError), never a NaN, a silent wrong shape or a cryptic torch error."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tutorial_sae import (
    SAE,
    SAEConfig,
    TrainConfig,
    explained_variance,
    feature_density,
    l0,
    loss_and_grads,
    mse,
)

D_IN, D_SAE = 4, 8
SAE_ = SAE(SAEConfig(d_in=D_IN, d_sae=D_SAE, seed=0))
DOCUMENTED = (ValueError,)

VALUES = st.one_of(
    st.floats(-10, 10, allow_nan=False),
    st.sampled_from([0.0, float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 1e-30, 3e14]),
)
DTYPES = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64, torch.bool])


@st.composite
def valid_shaped(draw, last=(D_IN, D_SAE)):
    """[n, d] float32 tensors: the shape a call expects, with hostile values."""
    n, d = draw(st.integers(1, 4)), draw(st.sampled_from(last))
    values = draw(st.lists(VALUES, min_size=n * d, max_size=n * d))
    return torch.tensor(values, dtype=torch.float32).reshape(n, d)


@st.composite
def any_tensors(draw, last=(D_IN, D_SAE, 3, 0)):
    shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=2))
    shape = [*shape, draw(st.sampled_from(last))]
    n = 1
    for s in shape:
        n *= s
    values = draw(st.lists(VALUES, min_size=n, max_size=n))
    dtype = draw(DTYPES)
    t = torch.tensor(values, dtype=torch.float64).reshape(shape)
    if dtype.is_floating_point:
        return t.to(dtype)
    return t.nan_to_num(0.0, 0.0, 0.0).clamp(-5, 5).to(dtype)


@st.composite
def finite_shaped(draw, last=(D_IN, D_SAE)):
    """[n, d] float32 tensors of any finite float32 values, tiny to enormous."""
    n, d = draw(st.integers(1, 4)), draw(st.sampled_from(last))
    floats = st.floats(allow_nan=False, allow_infinity=False, width=32)
    return torch.tensor(draw(st.lists(floats, min_size=n * d, max_size=n * d))).reshape(n, d)


def tensors(last=(D_IN, D_SAE, 3, 0)):
    shaped = [d for d in last if d in (D_IN, D_SAE)]
    return st.one_of(valid_shaped(shaped), finite_shaped(shaped), any_tensors(last))


def outcome(fn, *args):
    """('ok', result) or ('error', exception): only documented errors are allowed out."""
    try:
        return "ok", fn(*args)
    except DOCUMENTED as err:
        assert str(err), "an error must say what was expected and what came"
        return "error", err


def finite(value) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    return value == value and abs(value) != float("inf")


@given(tensors())
def test_encode_and_decode(x):
    kind, f = outcome(SAE_.encode, x)
    if kind == "ok":
        assert f.shape == (*x.shape[:-1], D_SAE) and finite(f) and (f >= 0).all()
    kind, x_hat = outcome(SAE_.decode, x)
    if kind == "ok":
        assert x_hat.shape == (*x.shape[:-1], D_IN) and finite(x_hat)


@given(tensors(), st.one_of(st.none(), tensors(last=(D_SAE, 3))))
def test_loss_and_the_fast_step(x, mask):
    if mask is not None:
        mask = mask.reshape(-1)
    for fn in (lambda: SAE_.loss(x, mask), lambda: loss_and_grads(SAE_, x, mask)):
        kind, out = outcome(fn)
        if kind == "ok":
            assert x.ndim == 2 and x.shape[1] == D_IN and x.shape[0] > 0
            assert finite(out.total) and out.x_hat.shape == (x.shape[0], D_IN)
            assert mask is None or mask.dtype == torch.bool


@given(tensors(), tensors())
def test_metrics(x, x_hat):
    for fn, args in (
        (l0, (x,)),
        (feature_density, (x,)),
        (mse, (x, x_hat)),
        (explained_variance, (x, x_hat)),
    ):
        kind, value = outcome(fn, *args)
        if kind == "ok":
            assert finite(value)


CONFIG_VALUES = st.one_of(
    st.integers(-3, 5000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=4),
)


@given(
    st.sampled_from(
        [
            "n_steps",
            "batch_size",
            "lr",
            "dead_window",
            "resample_density",
            "seed",
            "device",
            "betas",
        ]
    ),
    CONFIG_VALUES,
)
def test_train_config_fields(field, value):
    kind, cfg = outcome(lambda: TrainConfig(**{field: value}))
    if kind == "ok":
        assert getattr(cfg, field) == value


@given(st.sampled_from(["d_in", "d_sae", "l1_coeff", "seed"]), CONFIG_VALUES)
def test_sae_config_fields(field, value):
    kind, cfg = outcome(lambda: SAEConfig(**{field: value}))
    if kind == "ok":
        assert getattr(cfg, field) == value


def test_the_suite_sees_documented_errors():
    with pytest.raises(ValueError, match="must be finite"):
        SAE_.encode(torch.full((2, D_IN), float("nan")))
    with pytest.raises(ValueError, match="magnitude <= 1e\\+15, got 1e\\+30"):
        SAE_.loss(torch.full((2, D_IN), 1e30))


@given(finite_shaped(last=(D_IN,)))
def test_any_finite_float32_activations_give_a_finite_loss_or_an_error(x):
    for fn in (SAE_.encode, lambda x: SAE_.loss(x).total, lambda x: loss_and_grads(SAE_, x).total):
        kind, out = outcome(fn, x)
        if kind == "ok":
            assert finite(out)
    kind, value = outcome(mse, x, torch.zeros_like(x))
    if kind == "ok":
        assert finite(value)
