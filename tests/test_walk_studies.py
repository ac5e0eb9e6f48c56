"""Chapter 7's one-call steps (sizes, data, studies, prompt interpolation) equal the chapter's old
inline computations on mini/run1."""

import math

import matplotlib.pyplot as plt
import pytest
import torch

import tutorial_sae as ts
from tutorial_sae.analysis import interpolation as I
from tutorial_sae.analysis import walk_setup as S
from tutorial_sae.analysis import walk_studies as WS
from tutorial_sae.analysis import walks as W

STEP = 2.0


@pytest.fixture(scope="module")
def mini():
    torch.set_num_threads(1)
    model = ts.load_model("mini", device="cpu")
    sae = ts.load_sae("mini/run1", device="cpu")
    return model, sae, S.load_walk_data(model, "mini", 512, n_starts=2, seed=0)


@pytest.fixture(scope="module")
def sizes():
    return S.WalkSizes(n_steps=6, n_seeds=4, bank_tokens=512)


def test_walk_sizes_are_unchanged_on_mini_and_checked(mini):
    model, _, _ = mini
    for fast in (True, False):
        assert S.walk_sizes(model, fast, 30, 32, 4096) == S.WalkSizes(30, 32, 4096)
    with pytest.raises(ValueError, match="fast must be True or False"):
        S.walk_sizes(model, "yes", 30, 32, 4096)
    with pytest.raises(ValueError, match="n_seeds must be an int >= 1"):
        S.walk_sizes(model, True, 30, 0, 4096)


def test_load_walk_data_is_walk_data_on_the_models_own_text(mini):
    model, _, data = mini
    train = ts.load_tokens("mini", "train", 512, tokenizer=model.tokenizer)
    held = ts.load_tokens("mini", "eval", 512, tokenizer=model.tokenizer)
    ref = W.walk_data(model, train, held, n_starts=2, seed=0)
    for name in ("bank", "held_out", "starts", "start_tokens", "start_positions"):
        assert torch.equal(getattr(data, name), getattr(ref, name)), name
    assert data.summary() == (
        f"bank {tuple(ref.bank.shape)}, held out {tuple(ref.held_out.shape)}, starts 2"
    )
    assert W.WalkData is S.WalkData and ts.walk_data is S.walk_data
    with pytest.raises(ValueError, match="n_tokens must be an int"):
        S.load_walk_data(model, "mini", 0)


def test_study_walks_is_run_walks_on_the_data(mini, sizes):
    _, sae, data = mini
    study = WS.study_walks(sae, data, sizes, ("latent", "decoder"), (1.0, STEP), seed=3)
    ref = W.run_walks(
        sae, data.starts, data.bank, data.held_out, kinds=("latent", "decoder"),
        step_sizes=(1.0, STEP), n_steps=6, n_seeds=4, seed=3,
    )  # fmt: skip
    assert study.radius == ref.radius and study.kinds == ref.kinds
    for kind in ref.kinds:
        for name in ("cosine", "l0", "nearest"):
            assert torch.equal(study.curve(kind, STEP, name), ref.curve(kind, STEP, name))
    with pytest.raises(TypeError, match="WalkSizes"):
        WS.study_walks(sae, data, (6, 4), ("latent",), (STEP,))
    with pytest.raises(TypeError, match="WalkData"):
        WS.study_walks(sae, data.starts, sizes, ("latent",), (STEP,))


def test_study_values_equal_the_chapters_inline_numbers(mini, sizes):
    _, sae, data = mini
    kinds = ("latent", "decoder", "relu", "active", "reprojected")
    study = WS.study_walks(sae, data, sizes, kinds, (1.0, STEP), seed=0)
    gaps = {
        kind: max(
            float(
                ((study.curve(kind, s, "cosine").mean(0) - ts.closed_form(study, s)).abs()
                 / ts.closed_form(study, s)).max()
            )
            for s in (1.0, STEP)
        )
        for kind in ("decoder", "latent")
    }  # fmt: skip
    assert WS.closed_form_gaps(study, ("decoder", "latent")) == gaps
    assert 0 < gaps["decoder"] < 0.2
    cos_end = study.curve("latent", STEP, "cosine")[:, -1]
    values = WS.end_cosine_values(study, STEP)
    assert values == {"step": STEP, "cos_end": cos_end.mean(), "cos_end_std": cos_end.std()}
    assert list(WS.walk_kind_values(study, STEP)) == [
        "radius",
        *[f"{m}_{k}" for k in kinds for m in ("on_data", "l0_end")],
        "l0_start",
    ]
    got = WS.walk_kind_values(study, STEP)
    assert got["radius"] == study.radius
    for kind in kinds:
        assert got[f"on_data_{kind}"] == study.steps_on_data(kind, STEP)
        assert got[f"l0_end_{kind}"] == study.curve(kind, STEP, "l0")[:, -1].mean()
    assert got["l0_start"] == study.curve("latent", STEP, "l0")[:, 0].mean()
    with pytest.raises(ValueError, match="step sizes"):
        WS.walk_kind_values(study, 0.5)
    with pytest.raises(ValueError, match="kinds"):
        WS.closed_form_gaps(study, ("levy",))
    with pytest.raises(TypeError, match="WalkStudy"):
        WS.closed_form_gaps({}, ("latent",))


def test_interpolate_prompts_equals_the_inline_experiment(mini):
    model, sae, _ = mini
    result = I.interpolate_prompts(model, sae, "The cat sat on the", "def main():", n=6)
    tokens_a, x_a = I.prompt_point(model, "The cat sat on the")
    _, x_b = I.prompt_point(model, "def main():")
    path = I.interpolate(sae, x_a, x_b, n=6)
    with torch.no_grad():
        ends = sae.decode(sae.encode(torch.stack([x_a, x_b])))
    gap = (path.points["lerp"] - I.lerp(ends[0], ends[1], path.alphas)).abs().max()
    assert result.affine_gap == float(gap) and result.affine_gap < 1e-5
    inter = {
        m: I.predict_along(model, tokens_a, len(tokens_a) - 1, p) for m, p in path.points.items()
    }
    top_b = int(inter["lerp"].top_tokens[-1, 0])
    assert result.top_a == int(inter["lerp"].top_tokens[0, 0]) and result.top_b == top_b
    assert list(result.predictions) == ["lerp", "slerp", "reencoded"]
    for m, p in inter.items():
        assert torch.equal(result.predictions[m].probs, p.probs)
        flip = I.flip_alpha(path.alphas, p.top_tokens, to=top_b)
        assert result.flips[m] == flip or (math.isnan(flip) and math.isnan(result.flips[m]))
    assert result.flips["lerp"] <= 1.0  # lerp ends at B's code, so it flips by alpha 1
    assert torch.equal(result.alphas, torch.linspace(0, 1, 6))
    fig = ts.plot_prompt_interpolation(result, model.tokenizer)
    assert len(fig.axes) == 2
    plt.close(fig)
    with pytest.raises(TypeError, match="PromptInterpolation"):
        ts.plot_prompt_interpolation(path, model.tokenizer)
    with pytest.raises(ValueError, match="prompt_b must be a non-empty str"):
        I.interpolate_prompts(model, sae, "The cat", "")
