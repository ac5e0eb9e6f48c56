"""Chapter 7's walks: seeded and exact where they must be, and the issue's targets on mini/run1."""

import math

import pytest
import torch

from tutorial_sae.analysis import walks as W

STEP = 2.0


def test_seeded_walks_are_bit_identical_and_seeds_differ():
    start = torch.relu(torch.randn(50))
    a = W.random_walk(start, 10, 0.7, n_seeds=4, seed=3)
    assert torch.equal(a, W.random_walk(start, 10, 0.7, n_seeds=4, seed=3))
    assert not torch.equal(a, W.random_walk(start, 10, 0.7, n_seeds=4, seed=4))
    assert a.shape == (4, 11, 50) and torch.equal(a[:, 0], start.expand(4, -1))


def test_every_step_has_the_step_size_before_any_clip():
    start = torch.relu(torch.randn(64))
    dirs = W.walk_directions(12, 5, 64, seed=1)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(12, 5))
    raw = W.random_walk(start, 12, 1.5, n_seeds=5, seed=1)
    torch.testing.assert_close(raw.diff(dim=1).norm(dim=-1), torch.full((5, 12), 1.5))
    clipped = W.random_walk(start, 12, 1.5, n_seeds=5, seed=1, project=torch.relu)
    for t in range(12):
        assert torch.equal(clipped[:, t + 1], torch.relu(clipped[:, t] + 1.5 * dirs[t]))


def test_restricted_walk_keeps_the_start_support():
    start = torch.tensor([0.0, 2.0, 0.0, 1.0, 0.5])
    walk = W.random_walk(start, 20, 0.3, n_seeds=3, support=start > 0, project=torch.relu)
    assert (walk[..., start == 0] == 0).all()


def test_bad_input_says_what_was_expected():
    with pytest.raises(ValueError, match="step size"):
        W.random_walk(torch.ones(3), 2, 0.0)
    with pytest.raises(ValueError, match="one start vector"):
        W.random_walk(torch.ones(2, 3), 2, 1.0)
    with pytest.raises(ValueError, match="support"):
        W.walk_directions(2, 2, 3, support=torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="walk kind"):
        W.walk(None, torch.ones(3), "levy", 1.0)
    with pytest.raises(ValueError, match="start norm"):
        W.isotropic_cosine(0.0, 1.0, 3)


def test_closed_form_starts_at_one_and_follows_the_formula():
    c = W.isotropic_cosine(4.0, 2.0, 3)
    torch.testing.assert_close(c, torch.tensor([1.0, 1.25, 1.5, 1.75]).rsqrt())


def test_slerp_ends_at_its_endpoints_and_interpolates_norms():
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 1.0])
    path = W.slerp(a, b, torch.linspace(0, 1, 5))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    torch.testing.assert_close(path.norm(dim=-1), torch.linspace(3, 1, 5))
    # Halfway along the quarter circle: 45 degrees.
    torch.testing.assert_close(path[2] / path[2].norm(), torch.tensor([1.0, 1.0]) / 2**0.5)
    parallel = W.slerp(a, 2 * a, torch.tensor([0.5]))
    torch.testing.assert_close(parallel[0], torch.tensor([4.5, 0.0]))


def test_steps_on_data_counts_steps_before_the_first_exit():
    nearest = torch.tensor([[1.0, 1.0, 5.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    assert W.steps_on_data(nearest, 2.0).tolist() == [2.0, 3.0]


def test_flip_alpha_is_nan_without_a_flip():
    alphas = torch.linspace(0, 1, 3)
    assert W.flip_alpha(alphas, torch.tensor([[5], [5], [7]])) == 1.0
    assert math.isnan(W.flip_alpha(alphas, torch.tensor([[5], [5], [5]])))
    assert W.flip_alpha(alphas, torch.tensor([[5], [6], [7]]), to=7) == 1.0


@pytest.fixture(scope="module")
def mini():
    import tutorial_sae as ts

    model = ts.load_model("mini", device="cpu")
    sae = ts.load_sae("mini/run1", device="cpu")
    train = ts.load_tokens("mini", "train", 2048, tokenizer=model.tokenizer)
    held = ts.load_tokens("mini", "eval", 2048, tokenizer=model.tokenizer)
    return model, sae, W.walk_data(model, train, held, n_starts=2, seed=0)


def test_decoding_a_lerp_of_codes_is_the_lerp_of_decodings(mini):
    model, sae, data = mini
    path = W.interpolate(sae, data.starts[0], data.starts[1])
    with torch.no_grad():
        ends = sae.decode(sae.encode(data.starts))
    gap = (path.points["lerp"] - W.lerp(ends[0], ends[1], path.alphas)).abs().max()
    assert gap < 1e-5
    assert (path.codes["reencoded"] >= 0).all()


def test_decoder_walk_cosine_within_5_percent_of_the_closed_form(mini):
    _, sae, data = mini
    for step in (0.5, 1.0, STEP, 2 * STEP):
        for x0 in data.starts:
            w = W.walk(sae, x0, "decoder", step, n_steps=30, n_seeds=32)
            cosine = W.walk_metrics(sae, x0, w, names=("cosine",))["cosine"].mean(0)
            closed = W.isotropic_cosine(float(w.points[0, 0].norm()), step, 30)
            assert ((cosine - closed).abs() / closed).max() < 0.05


def test_every_walk_kind_reports_its_steps_on_the_data(mini):
    _, sae, data = mini
    study = W.run_walks(sae, data.starts, data.bank, data.held_out, step_sizes=(STEP,), n_steps=30)
    for kind in W.WALK_KINDS:
        assert 0 <= study.steps_on_data(kind, STEP) <= 30
    # The issue hoped the re-projected walk would stay on the data longer than the raw latent
    # walk at the same step size. Measured on mini/run1 it does not, and the chapter shows why:
    # re-encoding an off-data point switches silent features on, so L0 grows and the walk drifts.
    assert study.steps_on_data("reprojected", STEP) < study.steps_on_data("latent", STEP)
    l0 = study.curve("reprojected", STEP, "l0")
    assert l0[:, -1].mean() > 5 * l0[:, 0].mean()
    assert (
        study.curve("reprojected", STEP, "consistency").mean()
        < 0.2 * study.curve("latent", STEP, "consistency").mean()
    )
    # Clipping leaves soonest: each clipped step keeps a positive bias.
    assert study.steps_on_data("relu", STEP) == min(
        study.steps_on_data(k, STEP) for k in W.WALK_KINDS
    )


def test_predictions_along_a_walk_start_from_the_clean_model(mini):
    model, sae, data = mini
    from tutorial_sae.analysis.interventions import run_with_intervention

    pos = int(data.start_positions[0])
    tokens = data.start_tokens[0]
    w = W.walk(sae, data.starts[0], "latent", STEP, n_steps=4, n_seeds=1)
    preds = W.predict_along(model, tokens, pos, w.points[0], start=w.points[0, 0], top_k=3)
    clean = run_with_intervention(model, tokens[None, : pos + 1])[0, pos].softmax(-1)
    torch.testing.assert_close(preds.probs[0], clean, atol=1e-5, rtol=1e-4)
    assert preds.kl[0] == 0 and (preds.kl[1:] > 0).all()
    assert preds.top_tokens.shape == (5, 3)
    with pytest.raises(ValueError, match="position"):
        W.predict_along(model, tokens, len(tokens), w.points[0])
