"""The fact world of chapter 8, the fact model's training, and the shipped fact model."""

import time

import pytest
import torch

from tutorial_sae.data.facts import FRAMES, FactWorld, FactWorldConfig, batch_prompts
from tutorial_sae.models.facts import FactModelConfig, facts_dir, load_fact_model, torch_state_equal
from tutorial_sae.training.lm import LMTrainConfig, fact_accuracy, train_fact_model

SHIPPED = (facts_dir() / "model.safetensors").is_file()
TINY_WORLD = FactWorldConfig(n_subjects=60, n_relations=2, n_objects=5)
TINY_MODEL = FactModelConfig(n_layers=2, d_model=32, n_heads=2, d_mlp=128)


def test_the_world_is_seeded_and_its_names_share_words():
    a, b = FactWorld(), FactWorld()
    assert a.subjects == b.subjects and torch.equal(a.facts, b.facts)
    assert FactWorld(FactWorldConfig(seed=1)).subjects != a.subjects
    assert len(set(a.subjects)) == 600 and a.facts.shape == (600, 5)
    firsts = [s.split()[0] for s in a.subjects]
    assert max(firsts.count(f) for f in set(firsts)) >= 10  # no word alone names a subject
    counts = torch.bincount(a.facts[:, 0], minlength=20)
    assert counts.min() == counts.max() == 30


def test_each_relation_holds_out_two_frames_and_every_frame_is_trained_somewhere():
    world = FactWorld()
    trained = set()
    for r in range(5):
        train, held = world.frames(r, "train"), world.frames(r, "held_out")
        assert train[0] == 0 and len(held) == 2 and not set(train) & set(held)
        trained |= set(train)
    assert trained == set(range(len(FRAMES)))


def test_prompts_mark_the_subject_and_ask_for_the_object():
    world = FactWorld()
    p = world.prompt(3, 1, 4, "today we")
    words = world.tokenizer.decode(p.ids).split()
    assert words[:3] == ["<bos>", "today", "we"]
    assert " ".join(words[p.subject_pos[0] : p.subject_pos[1]]) == world.subjects[3]
    assert world.tokenizer.vocab[p.target] == world.objects[1][int(world.facts[3, 1])]
    tokens, last, targets = batch_prompts([p, world.prompt(0, 0)])
    assert tokens.shape == (2, len(p.ids)) and last.tolist() == [len(p.ids) - 1, 4]
    assert all(world.facts[n, 1] == world.facts[3, 1] for n in world.neighbours(3, 1))


def test_bad_input_says_what_was_expected():
    world = FactWorld()
    with pytest.raises(ValueError, match="vocabulary"):
        world.tokenizer.encode("ada smith likes")
    with pytest.raises(ValueError, match="n_subjects"):
        FactWorldConfig(n_subjects=1)
    with pytest.raises(ValueError, match="split"):
        world.frames(0, "test")
    with pytest.raises(ValueError, match="subject <"):
        world.prompt(600, 0)


def test_a_tiny_fact_model_trains_in_under_a_minute_and_reproduces_bit_for_bit():
    torch.set_num_threads(1)
    world = FactWorld(TINY_WORLD)
    start = time.perf_counter()
    run = train_fact_model(
        world,
        TINY_MODEL,
        LMTrainConfig(n_steps=300, batch_size=64, lr=1e-2, warmup=20),
        progress=False,
    )
    assert time.perf_counter() - start < 60
    assert run.train_accuracy >= 0.9 and run.losses[-1] < run.losses[0] / 10
    short = LMTrainConfig(n_steps=5, batch_size=16)
    one = train_fact_model(world, TINY_MODEL, short, progress=False)
    two = train_fact_model(world, TINY_MODEL, short, progress=False)
    assert torch_state_equal(one.fact_model.model, two.fact_model.model)


@pytest.mark.skipif(not SHIPPED, reason="fact model not built")
def test_the_shipped_fact_model_knows_its_facts():
    fm = load_fact_model()
    assert fact_accuracy(fm.model, fm.world, "train") >= 0.99
    assert fact_accuracy(fm.model, fm.world, "held_out") >= 0.90
    size = sum(f.stat().st_size for f in facts_dir().rglob("*") if f.is_file())
    assert size <= 5 * 2**20
