"""ROME's algebra, the v* optimisation, and the edit scores on the shipped fact model."""

import pytest
import torch

from tutorial_sae.analysis import edit_scores, rome, sae_edit
from tutorial_sae.data.facts import FactWorld
from tutorial_sae.models.facts import facts_dir, load_fact_model, load_fact_sae

SHIPPED = (facts_dir() / "model.safetensors").is_file()


def _problem(seed=0, d=12, d_model=6):
    g = torch.Generator().manual_seed(seed)
    keys = torch.randn(200, d, generator=g).double()
    C = keys.T @ keys / 200
    W, b = torch.randn(d, d_model, generator=g).double(), torch.randn(d_model, generator=g).double()
    return C, W, b, torch.randn(d, generator=g).double(), torch.randn(d_model, generator=g).double()


def test_the_rank_one_update_maps_the_key_to_the_value():
    C, W, b, k, v = _problem()
    delta = rome.rank_one_update(W, b, C, k, v)
    torch.testing.assert_close(k @ (W + delta) + b, v)
    assert torch.linalg.matrix_rank(delta) == 1


def test_keys_orthogonal_to_c_inverse_k_star_are_unchanged():
    C, W, b, k, v = _problem(1)
    delta = rome.rank_one_update(W, b, C, k, v)
    u = torch.linalg.solve(C, k)
    other = torch.randn(12, dtype=torch.double)
    other = other - (other @ u) / (u @ u) * u  # now (C^-1 k*)^T other = 0
    torch.testing.assert_close(other @ (W + delta), other @ W)
    with pytest.raises(ValueError, match="one d"):
        rome.rank_one_update(W, b, C[:5, :5], k, v)


@pytest.fixture(scope="module")
def fact_model():
    torch.set_num_threads(1)
    return load_fact_model()


@pytest.mark.skipif(not SHIPPED, reason="fact model not built")
def test_weights_edited_restores_the_model_exactly(fact_model):
    model, layer = fact_model.model, fact_model.edit_layer
    before = model.blocks[layer].mlp.W_out.detach().clone()
    edit = rome.RomeEdit(layer, torch.randn_like(before))
    with rome.weights_edited(model, edit):
        assert not torch.equal(model.blocks[layer].mlp.W_out, before)
    assert torch.equal(model.blocks[layer].mlp.W_out, before)


@pytest.mark.skipif(not SHIPPED, reason="fact model not built")
def test_rome_meets_its_targets_over_100_edits_and_beats_fine_tuning_on_neighbours(fact_model):
    model, world, layer = fact_model.model, fact_model.world, fact_model.edit_layer
    C = rome.world_key_covariance(fact_model)
    requests = edit_scores.sample_requests(world, 100)
    scores = edit_scores.evaluate_editor(
        "ROME", rome.rome_editor(model, world, layer, C), model, world, requests
    )
    row = scores.as_row()
    assert row["efficacy"] >= 0.95 and row["paraphrase"] >= 0.8
    assert row["neighbourhood"] >= 0.9 and row["score"] >= 0.85
    assert row["other_relations"] >= 0.95
    assert row["seconds per edit"] < 2
    ft = edit_scores.evaluate_editor(
        "FT", rome.finetune_editor(model, world, layer), model, world, requests[:30]
    )
    assert ft.mean("neighbourhood") < row["neighbourhood"]


def test_requests_and_their_prompts_are_seeded_and_well_formed():
    world = FactWorld()
    reqs = edit_scores.sample_requests(world, 20, seed=3)
    assert reqs == edit_scores.sample_requests(world, 20, seed=3)
    assert all(r.new_obj != r.true_obj == int(world.facts[r.subject, r.relation]) for r in reqs)
    rewrite, essence = edit_scores.request_prompts(world, reqs[0])
    new_id = world.object_id(reqs[0].relation, reqs[0].new_obj)
    assert len(rewrite) == len(essence) == 10 and all(p.target == new_id for p in rewrite)
    assert all(p.relation != reqs[0].relation and p.subject == reqs[0].subject for p in essence)
    _, is_a = edit_scores.request_prompts(world, reqs[0], essence="is a")
    assert world.tokenizer.decode(is_a[0].ids).endswith("is a")
    with pytest.raises(ValueError, match="essence"):
        edit_scores.request_prompts(world, reqs[0], essence="who")


@pytest.mark.skipif(not SHIPPED, reason="fact model not built")
def test_the_sae_edit_only_touches_tokens_that_look_like_the_subject(fact_model):
    model, world, layer = fact_model.model, fact_model.world, fact_model.edit_layer
    sae = load_fact_sae()
    codes = sae_edit.subject_codes(model, sae, world, layer)
    req = edit_scores.sample_requests(world, 1, seed=5)[0]
    edit = sae_edit.sae_fact_edit(codes, world, req)
    others = codes[[s for s in range(len(world.subjects)) if s != req.subject][:50]]
    cos = torch.nn.functional.cosine_similarity(others, codes[req.subject][None], dim=-1)
    untouched = others[cos < sae_edit.SAEEditConfig().threshold]
    torch.testing.assert_close(edit(untouched), untouched)
    assert not torch.equal(edit(codes[req.subject][None]), codes[req.subject][None])
