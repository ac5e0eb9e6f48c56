"""Chapter 8's opening: the fact model's sizes and its answers to one subject's held-out prompts."""

from __future__ import annotations

import torch

from tutorial_sae.data.facts import FactWorld
from tutorial_sae.utils import check_index


def fact_model_sizes(fact_model) -> dict[str, int]:
    """The sizes chapter 8 glues: subjects, relations and objects of the world, and the model's
    n_layers, d_model and d_mlp."""
    world, model = getattr(fact_model, "world", None), getattr(fact_model, "model", None)
    if not isinstance(world, FactWorld) or not hasattr(model, "cfg"):
        raise TypeError(
            f"expected a FactModel (a world and a model), got {type(fact_model).__name__}"
        )
    return {
        "n_subjects": len(world.subjects),
        "n_relations": len(world.relations),
        "n_objects": world.cfg.n_objects,
        "n_layers": model.cfg.n_layers,
        "d_model": model.cfg.d_model,
        "d_mlp": model.cfg.d_mlp,
    }


@torch.no_grad()
def held_out_answers(model, world: FactWorld, subject: int) -> list[str]:
    """One line per relation: `subject`'s prompt in the relation's first held-out frame, the
    true object and the model's top-1 next token (greedy answer at the last position)."""
    if not isinstance(world, FactWorld):
        raise TypeError(f"expected a FactWorld, got {type(world).__name__}")
    check_index(subject, "subject", len(world.subjects))
    vocab = world.tokenizer.vocab
    lines = []
    for r in range(len(world.relations)):
        p = world.prompt(subject, r, world.frames(r, "held_out")[0])
        answer = int(model(torch.tensor([p.ids]))[0, -1].argmax())
        prompt = world.tokenizer.decode(p.ids[1:])
        lines.append(f"{prompt:42s} true: {vocab[p.target]:9s} model: {vocab[answer]}")
    return lines
