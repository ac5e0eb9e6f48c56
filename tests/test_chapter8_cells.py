"""Chapter 8's cell helpers against the cells' old inline code: the fact model's sizes and
answers, the SAE request direction and scale sweep, and the online section's numbers and
paragraph on a synthetic trace (GPT-2 never loads here)."""

import statistics

import pytest
import torch

from tutorial_sae.analysis import edit_scores, sae_edit
from tutorial_sae.analysis.fact_overview import fact_model_sizes, held_out_answers
from tutorial_sae.analysis.known_fact_tracing import (
    NUMBER_KEYS,
    KnownFactTrace,
    known_fact_numbers,
    known_fact_paragraph,
)
from tutorial_sae.analysis.tracing import CATEGORIES, AverageTrace
from tutorial_sae.models.facts import load_fact_model, load_fact_sae
from tutorial_sae.plots.glue import glue_all


@pytest.fixture(scope="module")
def fm():
    torch.set_num_threads(1)
    return load_fact_model()


def test_sizes_and_answers_equal_the_cells_old_code(fm):
    world, model = fm.world, fm.model
    assert fact_model_sizes(fm) == {
        "n_subjects": len(world.subjects),
        "n_relations": len(world.relations),
        "n_objects": world.cfg.n_objects,
        "n_layers": 3,
        "d_model": 128,
        "d_mlp": model.cfg.d_mlp,
    }
    old = []
    for r in range(len(world.relations)):
        p = world.prompt(7, r, world.frames(r, "held_out")[0])
        answer = int(model(torch.tensor([p.ids]))[0, -1].argmax())
        vocab = world.tokenizer.vocab
        prompt = world.tokenizer.decode(p.ids[1:])
        old.append(f"{prompt:42s} true: {vocab[p.target]:9s} model: {vocab[answer]}")
    lines = held_out_answers(model, world, 7)
    assert lines == old and len(lines) == 5
    # the shipped model knows subject 7's facts, held-out frames included
    assert all(line.split("true: ")[1].split()[0] == line.split()[-1] for line in lines)
    with pytest.raises(TypeError, match="expected a FactModel"):
        fact_model_sizes(world)
    with pytest.raises(ValueError, match="subject must be"):
        held_out_answers(model, world, len(world.subjects))


def test_request_direction_and_scale_sweep_equal_the_cells_old_code(fm):
    model, world, layer = fm.model, fm.world, fm.edit_layer
    sae = load_fact_sae()
    codes = sae_edit.subject_codes(model, sae, world, layer)
    req = edit_scores.sample_requests(world, 2, seed=3)
    idx, change = sae_edit.request_direction(codes, world, req[0])
    old_idx, old_change = sae_edit.attribute_direction(
        codes, world, req[0].relation, req[0].true_obj, req[0].new_obj, 64
    )
    assert torch.equal(idx, old_idx) and torch.equal(change, old_change) and len(idx) == 64
    with pytest.raises(TypeError, match="expected an EditRequest"):
        sae_edit.request_direction(codes, world, (7, 0, 1, 2))

    old = []
    for scale in (1.0, 4.0):
        editor = sae_edit.sae_editor(model, sae, world, layer, sae_edit.SAEEditConfig(scale=scale))
        row = edit_scores.evaluate_editor(f"x{scale:g}", editor, model, world, req).as_row()
        old.append({"scale": scale, **{k: row[k] for k in sae_edit.SWEEP_METRICS}})
    rows = sae_edit.sae_scale_sweep(model, sae, world, layer, req, (1.0, 4.0))
    assert rows == old and [r["scale"] for r in rows] == [1.0, 4.0]
    assert all(0 <= r[k] <= 1 for r in rows for k in sae_edit.SWEEP_METRICS)
    with pytest.raises(ValueError, match="at least one scale"):
        sae_edit.sae_scale_sweep(model, sae, world, layer, req, ())


def _fake_trace(n_layers=12, n_shipped=7):
    g = torch.Generator().manual_seed(0)
    indirect = torch.rand(n_layers, len(CATEGORIES), generator=g) * 0.3
    avg = AverageTrace({"mlp": indirect}, total_effect=0.4321, n_facts=3)
    ranks = torch.tensor([0, 4, 0, 1, 0, 9, 2])[:n_shipped]
    layer = int(indirect[:, 1].argmax())
    shipped = [f"fact {i}" for i in range(n_shipped)]  # stand-ins: only their number is read
    return KnownFactTrace(shipped, ranks, shipped, 0.1, avg, layer)


ROWS = [
    {"subject": "A", "efficacy": 1.0, "paraphrase": 0.5, "neighbourhood": 1.0, "seconds": 2.0},
    {"subject": "B", "efficacy": 0.0, "paraphrase": 1.0, "neighbourhood": 0.75, "seconds": 3.5},
]


def _old_numbers(traced, rows):
    """Cell 40's old inline gathering (before the prefix)."""
    gpt2_avg, gpt2_layer, ranks = traced.avg, traced.layer, traced.ranks
    mlp_subject = gpt2_avg.indirect["mlp"][:, 1]
    return {
        "n_shipped": len(traced.shipped),
        "n_top1": int((ranks == 0).sum()),
        "n_traced": gpt2_avg.n_facts,
        "total_effect": gpt2_avg.total_effect,
        "mlp_layer": gpt2_layer,
        "mlp_peak": float(mlp_subject[gpt2_layer]),
        "mlp_last_token": float(gpt2_avg.indirect["mlp"][:, 4].max()),
        **{
            m: statistics.fmean(r[m] for r in rows)
            for m in ("efficacy", "paraphrase", "neighbourhood", "seconds")
        },
    }


def test_online_numbers_equal_the_cells_old_code_and_glue_the_same_keys():
    traced = _fake_trace()
    numbers = known_fact_numbers(traced, ROWS)
    assert numbers == _old_numbers(traced, ROWS)
    assert (numbers["n_shipped"], numbers["n_top1"], numbers["n_traced"]) == (7, 3, 3)
    assert numbers["efficacy"] == 0.5 and numbers["seconds"] == 2.75
    assert numbers["mlp_peak"] == float(traced.avg.indirect["mlp"][:, 1].max())
    glued = glue_all(numbers, prefix="gpt2_")
    assert sorted(glued) == sorted(
        "gpt2_" + k
        for k in (
            "n_shipped n_top1 n_traced total_effect mlp_layer mlp_peak mlp_last_token "
            "efficacy paraphrase neighbourhood seconds"
        ).split()
    )
    assert tuple(numbers) == NUMBER_KEYS
    with pytest.raises(TypeError, match="expected a KnownFactTrace"):
        known_fact_numbers(traced.avg, ROWS)
    with pytest.raises(ValueError, match="at least one ROME row"):
        known_fact_numbers(traced, [])
    with pytest.raises(ValueError, match=r"missing \['seconds'\]"):
        known_fact_numbers(traced, [{k: v for k, v in ROWS[0].items() if k != "seconds"}])


def test_online_paragraph_is_the_cells_old_sentence():
    traced = _fake_trace()
    numbers = known_fact_numbers(traced, ROWS)
    label, n_layers, n_edits = "GPT-2 small (openai-community/gpt2, TransformerLens)", 12, 2
    g = {"gpt2_" + k: v for k, v in numbers.items()}
    old = (
        f"On **{label}**: it answers {g['gpt2_n_top1']} "
        f"of the {g['gpt2_n_shipped']} shipped facts top-1. Over "
        f"the {g['gpt2_n_traced']} it answers best, the "
        f"corruption removes {g['gpt2_total_effect']:.2f} of the "
        "true object's probability; restoring one MLP output at "
        "the last subject token brings back the most at "
        f"**layer {g['gpt2_mlp_layer']}** of {n_layers} "
        f"({g['gpt2_mlp_peak']:.2f}), while no MLP at the last "
        f"token brings back more than {g['gpt2_mlp_last_token']:.2f}. "
        f"ROME at that layer, over {n_edits} edits: "
        f"efficacy {g['gpt2_efficacy']:.0%}, "
        f"paraphrase {g['gpt2_paraphrase']:.0%}, "
        f"neighbourhood {g['gpt2_neighbourhood']:.0%}, "
        f"{g['gpt2_seconds']:.1f} s per edit."
    )
    text = known_fact_paragraph(label, numbers, n_layers, n_edits)
    assert text == old
    assert "it answers 3 of the 7 shipped facts top-1" in text
    assert "removes 0.43 of" in text and "efficacy 50%, paraphrase 75%" in text
    assert text.endswith("neighbourhood 88%, 2.8 s per edit.")
    with pytest.raises(ValueError, match=r"missing \['mlp_peak'\]"):
        known_fact_paragraph(label, {k: v for k, v in numbers.items() if k != "mlp_peak"}, 12, 2)
    with pytest.raises(ValueError, match="n_edits must be an int"):
        known_fact_paragraph(label, numbers, 12, 0)
