"""Causal tracing: restoring states undoes the corruption, and the fact model recalls at the subject."""

import random

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from tutorial_sae.analysis import tracing
from tutorial_sae.models.facts import facts_dir, load_fact_model

SHIPPED = (facts_dir() / "model.safetensors").is_file()


@pytest.fixture(scope="module")
def model():
    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=16,
        d_head=8,
        n_heads=2,
        d_mlp=32,
        d_vocab=30,
        n_ctx=10,
        act_fn="gelu",
        normalization_type="LN",
        device="cpu",
        seed=0,
    )
    return HookedTransformer(cfg)


TOKENS = torch.tensor([1, 5, 7, 9, 11, 13])


def test_restoring_the_last_residual_state_gives_the_clean_probability(model):
    trace = tracing.trace_fact(model, TOKENS, (1, 3), target=4, noise_std=1.0, n_samples=4)
    assert trace.p_clean != pytest.approx(trace.p_corrupt, abs=1e-4)
    assert trace.restored["resid"][-1, -1].item() == pytest.approx(trace.p_clean, rel=1e-5)
    # The noise never reaches positions before the subject: nothing to restore there.
    for kind in tracing.KINDS:
        assert torch.all(trace.indirect_effect(kind)[:, :1] == 0)
    assert trace.categories() == [-1, 0, 1, 2, 3, 4]


def test_without_noise_every_restoration_is_the_clean_run(model):
    trace = tracing.trace_fact(model, TOKENS, (1, 3), target=4, noise_std=0.0, n_samples=2)
    for kind in tracing.KINDS:
        torch.testing.assert_close(trace.restored[kind], torch.full((2, 6), trace.p_clean))


def test_traces_are_seeded_and_average_by_category(model):
    a = tracing.trace_fact(model, TOKENS, (1, 3), 4, 1.0, 3, seed=5)
    b = tracing.trace_fact(model, TOKENS, (1, 3), 4, 1.0, 3, seed=5)
    torch.testing.assert_close(a.restored["mlp"], b.restored["mlp"])
    avg = tracing.average_traces([a, b])
    assert avg.indirect["mlp"].shape == (2, len(tracing.CATEGORIES))
    torch.testing.assert_close(avg.indirect["attn"][:, 1], a.indirect_effect("attn")[:, 2])
    with pytest.raises(ValueError, match="kinds from"):
        tracing.trace_fact(model, TOKENS, (1, 3), 4, 1.0, kinds=("embed",))
    with pytest.raises(ValueError, match="start < end"):
        tracing.trace_fact(model, TOKENS, (3, 3), 4, 1.0)


@pytest.mark.skipif(not SHIPPED, reason="fact model not built")
def test_the_fact_model_recalls_at_an_early_mlp_on_the_last_subject_token():
    torch.set_num_threads(1)
    fm = load_fact_model()
    world, model = fm.world, fm.model
    layer = fm.edit_layer
    rng = random.Random(0)
    facts = rng.sample([(s, r) for s in range(len(world.subjects)) for r in range(5)], 200)
    std = tracing.subject_noise_std(model, world)
    avg = tracing.average_traces(
        tracing.trace_prompts(model, [world.prompt(s, r) for s, r in facts], std, n_samples=5)
    )
    mlp = avg.indirect["mlp"]
    assert layer < model.cfg.n_layers - 1
    assert mlp[layer, 1] >= 0.3 * avg.total_effect
    assert mlp[layer, 1] > mlp[:, 4].max()


def test_a_large_vocabulary_is_traced_in_chunks_with_the_same_result(model, monkeypatch):
    whole = tracing.trace_fact(model, TOKENS, (1, 3), 4, 1.0, 4, seed=2)
    monkeypatch.setattr(tracing, "LOGITS_BUDGET", 4 * 6 * 30 * 3)  # 3 sites per forward pass
    chunked = tracing.trace_fact(model, TOKENS, (1, 3), 4, 1.0, 4, seed=2)
    for kind in tracing.KINDS:
        torch.testing.assert_close(chunked.restored[kind], whole.restored[kind])
    assert chunked.p_corrupt == whole.p_corrupt
