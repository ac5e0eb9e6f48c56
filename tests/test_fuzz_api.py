"""Bad input across the analysis/chapter entry points (issue 14): a Hypothesis fuzz over the
model-free functions and a table over the ones that run the mini model.

The contract for every call: it returns a finite result, or it raises ValueError / TypeError /
IndexError / FileNotFoundError (or a package error type) *from the package's own checks* (the
innermost frame is in tutorial_sae, not deep inside torch, sklearn or TransformerLens), with a
message that names the argument that was bad.
"""

from __future__ import annotations

import math
import re
import traceback
from dataclasses import fields, is_dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tutorial_sae.analysis import (
    ablation,
    activation_stats,
    edit_scores,
    interventions,
    neighbourhoods,
    scripts,
    steering,
    walks,
)
from tutorial_sae.core import metrics
from tutorial_sae.core.sae import SAE, SAEConfig
from tutorial_sae.errors import HubUnavailableError, NonFiniteLossError

pytestmark = pytest.mark.usefixtures("one_thread")

ALLOWED = (ValueError, TypeError, IndexError, FileNotFoundError, HubUnavailableError,
           NonFiniteLossError)  # fmt: skip
NAN, INF = float("nan"), float("inf")


def finite(value) -> bool:
    """True when every number reachable in `value` (tensors, floats, containers, dataclasses) is finite."""
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(finite(v) for v in value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if is_dataclass(value) and not isinstance(value, type):
        return all(finite(getattr(value, f.name)) for f in fields(value))
    return True


def check_error(err: BaseException, arg: str) -> None:
    """`err` is an allowed type, raised by the package's own checks, naming `arg`."""
    assert isinstance(err, ALLOWED), f"{type(err).__name__} for a bad {arg!r}: {err}"
    frame = traceback.extract_tb(err.__traceback__)[-1]
    assert "tutorial_sae" in frame.filename, (
        f"{type(err).__name__} for a bad {arg!r} came from {frame.filename}:{frame.lineno}, "
        f"not from the package's checks: {err}"
    )
    named = re.search(rf"(?<![A-Za-z0-9_]){re.escape(arg)}(?![A-Za-z0-9_])", str(err), re.I)
    assert named, f"the message for a bad {arg!r} does not name it: {err}"


def assert_contract(call, arg: str):
    """Run `call()`; it must return a finite result or raise an allowed error from the package
    whose message names `arg`."""
    try:
        out = call()
    except ALLOWED as err:
        check_error(err, arg)
        return None
    assert finite(out), f"a bad {arg!r} returned a non-finite result: {out!r}"[:300]
    return out


# --- bad values, by the kind of argument they replace -----------------------------------------
NOT_A_TENSOR = st.sampled_from([None, "x", 3, 2.5, [1.0, 2.0], {"a": 1}])
BAD_NUMBER = st.sampled_from([NAN, INF, -INF, None, "1", True, [1.0], torch.ones(2)])
BAD_INT = st.one_of(st.sampled_from([True, False, 1.5, "2", None, NAN]), st.integers(-(10**6), 0))


def bad_tensors(shape: tuple[int, ...], kind: str = "float") -> st.SearchStrategy:
    """Tensors that break one property of a valid one of `shape`: type, dimensions, emptiness,
    dtype, NaN / inf, or a changed last width."""
    base = torch.rand(shape) if kind == "float" else torch.randint(0, 3, shape)

    def with_value(v: float) -> torch.Tensor:
        t = torch.rand(shape)
        t.view(-1)[0] = v
        return t

    options = [
        st.just(base.reshape(-1)[:0].reshape(*shape[:-1], 0) if len(shape) > 1 else base[:0]),
        st.just(base[None]),  # one dimension too many
        st.just(base.flatten()[0]) if base.numel() else st.just(torch.tensor(1.0)),  # 0-d
        st.just(base.to(torch.bool)),
        st.just(torch.rand((*shape[:-1], shape[-1] + 3))),  # another width
        NOT_A_TENSOR,
    ]
    if kind == "float":
        options += [st.sampled_from([NAN, INF, -INF]).map(with_value), st.just(base.long())]
    else:
        options += [st.just(base.float() + 0.5)]
    return st.one_of(*options)


def small_sae(d_in: int = 6, d_sae: int = 10) -> SAE:
    return SAE(SAEConfig(d_in=d_in, d_sae=d_sae, l1_coeff=1.0, seed=0))


# --- entry points: valid arguments, and how each argument can go bad ---------------------------
def _entry_points():
    sae = small_sae()
    x = torch.rand(6)
    top = torch.tensor([[1], [1], [2]])
    dirs = torch.randn(12, 5)
    return {
        # name: (function, valid kwargs, {argument: strategy of bad values})
        "metrics.dead_fraction": (
            metrics.dead_fraction,
            {"f_or_density": torch.rand(8, 5)},
            {"f_or_density": bad_tensors((8, 5))},
        ),
        "metrics.dense_fraction": (
            metrics.dense_fraction,
            {"f_or_density": torch.rand(5), "threshold": 0.1},
            {"threshold": BAD_NUMBER},
        ),
        "metrics.firing_counts": (
            metrics.firing_counts,
            {"f": torch.rand(8, 5)},
            {"f": bad_tensors((8, 5))},
        ),
        "metrics.density_histogram": (
            metrics.density_histogram,
            {"counts": torch.tensor([0, 3, 9]), "n_tokens": 10, "bins": 4},
            {"n_tokens": BAD_INT, "bins": BAD_INT},
        ),
        "metrics.ce_loss_recovered": (
            metrics.ce_loss_recovered,
            {
                "clean": torch.rand(4),
                "reconstructed": torch.rand(4) + 1,
                "ablated": torch.rand(4) + 2,
            },
            {"clean": bad_tensors((4,)), "ablated": bad_tensors((4,))},
        ),
        "ablation.spearman": (
            ablation.spearman,
            {"a": torch.rand(6), "b": torch.rand(6)},
            {"a": bad_tensors((6,)), "b": bad_tensors((6,))},
        ),
        "ablation.top_k_overlap": (
            ablation.top_k_overlap,
            {"features": torch.arange(6), "first": torch.rand(6), "second": torch.rand(6), "k": 3},
            {"first": bad_tensors((6,)), "k": BAD_INT},
        ),
        "ablation.attribute": (
            ablation.attribute,
            {
                "latents": torch.rand(4, 5),
                "grads": torch.rand(4, 5),
                "strength": 1.0,
                "n_scored": 4,
            },
            {"grads": bad_tensors((4, 5)), "strength": BAD_NUMBER, "n_scored": BAD_INT},
        ),
        "interventions.clamp_features": (
            interventions.clamp_features,
            {"features": [1], "value": 2.0},
            {"value": BAD_NUMBER.filter(lambda v: v is not None)},
        ),
        "interventions.mean_ablation": (
            interventions.mean_ablation,
            {"mean": torch.rand(5)},
            {"mean": bad_tensors((5,))},
        ),
        "steering.steering_edit": (
            steering.steering_edit,
            {"feature": 1, "multiple": 2.0, "max_act": 3.0},
            {
                "feature": BAD_INT.filter(lambda v: v is not False and v != 0),
                "multiple": BAD_NUMBER,
                "max_act": BAD_NUMBER,
            },
        ),
        "activation_stats.neighbour_similarity": (
            activation_stats.neighbour_similarity,
            {"acts": torch.rand(2, 6, 4), "skip_first": 1},
            {"acts": bad_tensors((2, 6, 4)), "skip_first": BAD_INT.filter(lambda v: v != 0)},
        ),
        "walks.walk_directions": (
            walks.walk_directions,
            {"n_steps": 3, "n_seeds": 2, "dim": 4},
            {"n_steps": BAD_INT, "dim": BAD_INT},
        ),
        "walks.random_walk": (
            walks.random_walk,
            {"start": x, "n_steps": 3, "step_size": 0.5},
            {"start": bad_tensors((6,)), "step_size": BAD_NUMBER, "n_steps": BAD_INT},
        ),
        "walks.walk": (
            walks.walk,
            {"sae": sae, "x0": x, "kind": "latent", "step_size": 0.5, "n_steps": 2, "n_seeds": 2},
            {"x0": bad_tensors((6,)), "step_size": BAD_NUMBER, "kind": st.text(max_size=5)},
        ),
        "walks.isotropic_cosine": (
            walks.isotropic_cosine,
            {"start_norm": 2.0, "step_size": 0.5, "n_steps": 4},
            {
                "start_norm": BAD_NUMBER,
                "step_size": BAD_NUMBER,
                "n_steps": BAD_INT.filter(lambda v: v is not False and v != 0),
            },
        ),
        "walks.nearest_distance": (
            walks.nearest_distance,
            {"points": torch.rand(3, 4), "bank": torch.rand(5, 4)},
            {"points": bad_tensors((3, 4)), "bank": bad_tensors((5, 4)), "chunk": BAD_INT},
        ),
        "walks.data_radius": (
            walks.data_radius,
            {"bank": torch.rand(5, 4), "held_out": torch.rand(3, 4)},
            {"quantile": BAD_NUMBER},
        ),
        "walks.steps_on_data": (
            walks.steps_on_data,
            {"nearest": torch.rand(3, 5), "radius": 0.5},
            {"nearest": bad_tensors((3, 5)), "radius": BAD_NUMBER},
        ),
        "walks.lerp": (
            walks.lerp,
            {"a": x, "b": x + 1, "alphas": torch.linspace(0, 1, 3)},
            {"a": bad_tensors((6,)), "alphas": bad_tensors((3,))},
        ),
        "walks.slerp": (
            walks.slerp,
            {"a": x, "b": x + 1, "alphas": torch.linspace(0, 1, 3)},
            {"b": bad_tensors((6,)), "alphas": bad_tensors((3,))},
        ),
        "walks.interpolate": (
            walks.interpolate,
            {"sae": sae, "x_a": x, "x_b": x + 1, "n": 3},
            {"x_a": bad_tensors((6,)), "n": BAD_INT},
        ),
        "walks.flip_alpha": (
            walks.flip_alpha,
            {"alphas": torch.linspace(0, 1, 3), "top_tokens": top},
            {"alphas": bad_tensors((3,)), "top_tokens": bad_tensors((3, 1), "int")},
        ),
        "walks.pca_2d": (walks.pca_2d, {"bank": torch.rand(6, 4)}, {"bank": bad_tensors((6, 4))}),
        "neighbourhoods.cosine_neighbours": (
            neighbourhoods.cosine_neighbours,
            {"directions": dirs, "k": 3},
            {"directions": bad_tensors((12, 5)), "k": BAD_INT, "chunk": BAD_INT},
        ),
        "neighbourhoods.knn_agreement": (
            neighbourhoods.knn_agreement,
            {
                "neighbours": torch.tensor([[1], [0], [0]]),
                "labels": torch.tensor([0, 1, 1]),
                "n_shuffles": 3,
            },
            {
                "neighbours": bad_tensors((3, 1), "int"),
                "labels": bad_tensors((3,), "int"),
                "n_shuffles": BAD_INT,
            },
        ),
        "neighbourhoods.project": (
            neighbourhoods.project,
            {"directions": dirs, "n_components": 2},
            {
                "directions": bad_tensors((12, 5)),
                "n_components": BAD_INT,
                "method": st.text(max_size=5),
            },
        ),
        "neighbourhoods.best_matches": (
            neighbourhoods.best_matches,
            {"a": dirs, "b": dirs[:4]},
            {"a": bad_tensors((12, 5)), "b": bad_tensors((4, 5))},
        ),
        "neighbourhoods.splitting_families": (
            neighbourhoods.splitting_families,
            {"small": sae, "large": small_sae(6, 20), "acts": torch.rand(2, 5, 6)},
            {"acts": bad_tensors((2, 5, 6)), "min_cosine": BAD_NUMBER, "min_children": BAD_INT},
        ),
        "scripts.token_scripts": (
            scripts.token_scripts,
            {"text": "ab c", "offsets": [(0, 2)]},
            {"offsets": st.sampled_from([[(2, 1)], [(0, 9)], [(-1, 1)], [1, 2], [(0.5, 1)]])},
        ),
        "edit_scores.counterfact_scores": (
            edit_scores.counterfact_scores,
            {"logits": torch.rand(5, 8), "new_id": 2, "true_id": 1, "n_paraphrase": 2},
            {
                "logits": bad_tensors((5, 8)),
                "new_id": BAD_INT,
                "n_paraphrase": BAD_INT.filter(lambda v: v != 0),
            },
        ),
    }


ENTRY_POINTS = _entry_points()


def test_entry_points_accept_their_valid_arguments():
    """The table's valid arguments do work (else the fuzz below would test nothing)."""
    for name, (fn, kwargs, _) in ENTRY_POINTS.items():
        assert finite(fn(**kwargs)), name


@st.composite
def bad_arguments(draw, name: str):
    _, kwargs, bad = ENTRY_POINTS[name]
    arg = draw(st.sampled_from(sorted(bad)))
    return {**kwargs, arg: draw(bad[arg])}, arg


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_bad_arguments_fail_clearly_or_give_finite_results(name):
    """Per entry point, the "ci" profile's examples of one argument made bad."""

    @settings(max_examples=max(10, settings().max_examples // 4))
    @given(bad_arguments(name))
    def check(call):
        kwargs, arg = call
        assert_contract(lambda: ENTRY_POINTS[name][0](**kwargs), arg)

    check()


# --- the functions that run the model: a table, one mini model for all -------------------------
@pytest.fixture(scope="module")
def mini():
    from tutorial_sae.models.loading import load_model, load_sae

    return load_model("mini", device="cpu"), load_sae("mini/run1", device="cpu")


def _tokens(n: int = 2, pos: int = 6) -> torch.Tensor:
    return torch.randint(1, 400, (n, pos), generator=torch.Generator().manual_seed(0))


MODEL_CASES = [
    # (function, argument made bad, call(model, sae))
    ("run_with_sae", "sae", lambda m, s: interventions.run_with_sae(m, _tokens(), small_sae(64))),
    ("run_with_sae", "hook", lambda m, s: interventions.run_with_sae(m, _tokens(), s, hook="x")),
    (
        "run_with_sae",
        "keep_error",
        lambda m, s: interventions.run_with_sae(m, _tokens(), s, keep_error="yes"),
    ),
    (
        "run_with_sae",
        "edit",
        lambda m, s: interventions.run_with_sae(m, _tokens(), s, edit=lambda f: f),
    ),
    (
        "run_with_sae",
        "feature",
        lambda m, s: interventions.run_with_sae(
            m, _tokens(), s, interventions.zero_features(10**6)
        ),
    ),
    (
        "run_with_intervention",
        "tokens",
        lambda m, s: interventions.run_with_intervention(m, _tokens(0)),
    ),
    (
        "run_with_intervention",
        "token ids",
        lambda m, s: interventions.run_with_intervention(m, _tokens() + 10**6),
    ),
    (
        "run_with_intervention",
        "context",
        lambda m, s: interventions.run_with_intervention(m, _tokens(1, m.cfg.n_ctx + 1)),
    ),
    (
        "run_with_intervention",
        "intervention",
        lambda m, s: interventions.run_with_intervention(m, _tokens(), lambda act: act[..., :3]),
    ),
    (
        "evaluate_sae",
        "batch_size",
        lambda m, s: __import__("tutorial_sae.analysis.evaluation", fromlist=["x"]).evaluate_sae(
            m, s, _tokens(), batch_size=True, progress=False
        ),
    ),
    ("clamp_effects", "feature", lambda m, s: ablation.clamp_effects(m, s, _tokens(), True)),
    ("clamp_effects", "feature", lambda m, s: ablation.clamp_effects(m, s, _tokens(), -1)),
    (
        "ablation_vs_attribution",
        "n_features",
        lambda m, s: ablation.ablation_vs_attribution(m, s, _tokens(), n_features=0),
    ),
    (
        "dose_response",
        "multiples",
        lambda m, s: steering.dose_response(
            m, s, _tokens(), 0, 1.0, [], torch.zeros(m.cfg.d_vocab, dtype=torch.bool)
        ),
    ),
    (
        "dose_response",
        "max_act",
        lambda m, s: steering.dose_response(
            m, s, _tokens(), 0, NAN, [1.0], torch.zeros(m.cfg.d_vocab, dtype=torch.bool)
        ),
    ),
    (
        "generate_with_sae",
        "n_new",
        lambda m, s: steering.generate_with_sae(m, _tokens(), s, n_new=True),
    ),
    ("generate_with_sae", "tokens", lambda m, s: steering.generate_with_sae(m, [[1, 2]], s)),
    (
        "continuations",
        "prompt",
        lambda m, s: steering.continuations(m, s, _tokens(), 0, 1.0, [1.0]),
    ),
    (
        "predict_along",
        "position",
        lambda m, s: walks.predict_along(m, _tokens()[0], True, torch.rand(2, m.cfg.d_mlp)),
    ),
    (
        "predict_along",
        "points",
        lambda m, s: walks.predict_along(m, _tokens()[0], 2, torch.rand(2, 7)),
    ),
    (
        "predict_along",
        "top_k",
        lambda m, s: walks.predict_along(
            m, _tokens()[0], 2, torch.rand(2, m.cfg.d_mlp), top_k=10**7
        ),
    ),
    ("prompt_point", "text", lambda m, s: walks.prompt_point(m, 3)),
    ("prompt_point", "context", lambda m, s: walks.prompt_point(m, "hello " * 400)),
    (
        "time_forward_to_hook",
        "repeats",
        lambda m, s: activation_stats.time_forward_to_hook(m, _tokens(), repeats=True),
    ),
    (
        "final_ln_scale",
        "token ids",
        lambda m, s: __import__("tutorial_sae.analysis.features", fromlist=["x"]).final_ln_scale(
            m, _tokens() + 10**6
        ),
    ),
]


@pytest.mark.parametrize("case", MODEL_CASES, ids=[f"{c[0]}-{c[1]}" for c in MODEL_CASES])
def test_model_entry_points_refuse_bad_input(mini, case):
    _, arg, call = case
    model, sae = mini
    # "token ids" and "context" errors name the vocabulary / context rather than the argument.
    name = {"token ids": "vocabulary", "context": "context"}.get(arg, arg)
    try:
        call(model, sae)
    except Exception as err:  # noqa: BLE001 - check_error says which type it was
        check_error(err, name)
    else:
        pytest.fail(f"a bad {arg!r} was accepted")
