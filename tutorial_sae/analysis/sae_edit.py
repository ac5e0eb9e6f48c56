"""Edit a fact with SAE features instead of weights: the contrast to ROME in chapter 8.

An SAE on the edit layer's MLP activations (`blocks.L.mlp.hook_post`) reads the key ROME
rewrites. At the last subject token the code depends on the subject alone, so: the subject's
features are its code there; the attribute's features are the mean code of subjects holding
the new object minus that of subjects holding the true one (the `n_features` largest
changes). The edit is conditional and lives at inference: wherever a token's code looks like
the subject's (cosine >= `threshold`), add `scale` x the attribute change, through the
interventions module's SAE splice (error term kept, so nothing else moves).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from tutorial_sae.analysis.edit_scores import EditRequest, evaluate_editor
from tutorial_sae.analysis.interventions import LatentEdit, edit_latents, run_with_sae
from tutorial_sae.core.sae import SAE
from tutorial_sae.data.facts import FactWorld, batch_prompts
from tutorial_sae.utils import check_index, check_int, check_real, check_sae, check_tensor


@dataclass(frozen=True)
class SAEEditConfig:
    """How many attribute features to move, how much, and when a token counts as the subject."""

    n_features: int = 64
    scale: float = 4.0
    threshold: float = 0.6

    def __post_init__(self) -> None:
        check_int(self.n_features, "n_features")
        check_real(self.scale, "scale")
        check_real(self.threshold, "threshold", -1.0, 1.0)


@torch.no_grad()
def subject_codes(
    model, sae: SAE, world: FactWorld, layer: int
) -> Float[Tensor, "n_subjects d_sae"]:
    """The SAE code at every subject's last token, read from "<bos> {subject}"."""
    check_sae(sae)
    check_index(layer, "layer", model.cfg.n_layers)
    prompts = [world.prompt(s, 0, -1) for s in range(len(world.subjects))]
    tokens, _, _ = batch_prompts(prompts)
    hook = f"blocks.{layer}.mlp.hook_post"
    _, cache = model.run_with_cache(tokens, names_filter=hook, stop_at_layer=layer + 1)
    last = torch.tensor([p.last_subject for p in prompts])
    return sae.encode(cache[hook][torch.arange(len(prompts)), last])


def attribute_direction(
    codes: Tensor, world: FactWorld, relation: int, true_obj: int, new_obj: int, n_features: int
) -> tuple[Tensor, Tensor]:
    """(feature indices, change) of the `n_features` largest |mean code(new) - mean code(true)|."""
    check_tensor(codes, "codes", 2)
    if len(codes) != len(world.subjects):
        raise ValueError(f"codes must have one row per subject ({len(world.subjects)}), got "
                         f"{tuple(codes.shape)}")  # fmt: skip
    check_index(relation, "relation", len(world.relations))
    check_index(true_obj, "true_obj", world.cfg.n_objects)
    check_index(new_obj, "new_obj", world.cfg.n_objects)
    check_int(n_features, "n_features")
    if n_features > codes.shape[1]:
        raise ValueError(f"n_features must be <= d_sae={codes.shape[1]}, got {n_features}")
    column = world.facts[:, relation]
    for obj in (true_obj, new_obj):
        if not (column == obj).any():
            raise ValueError(f"no subject has object {obj} for relation {relation}: no mean code")
    diff = codes[column == new_obj].mean(0) - codes[column == true_obj].mean(0)
    idx = diff.abs().topk(n_features).indices
    return idx, diff[idx]


def request_direction(
    codes: Tensor, world: FactWorld, req: EditRequest, n_features: int = SAEEditConfig.n_features
) -> tuple[Tensor, Tensor]:
    """`attribute_direction` of `req`'s relation from its true object to its new one."""
    if not isinstance(req, EditRequest):
        raise TypeError(f"expected an EditRequest, got {type(req).__name__}")
    return attribute_direction(codes, world, req.relation, req.true_obj, req.new_obj, n_features)


def sae_fact_edit(
    codes: Tensor, world: FactWorld, req: EditRequest, cfg: SAEEditConfig = SAEEditConfig()
) -> LatentEdit:
    """The latent edit that rewrites `req` where the subject's code appears."""
    idx, change = request_direction(codes, world, req, cfg.n_features)
    signature = codes[req.subject] / codes[req.subject].norm().clamp(min=1e-8)

    def edit(f: Tensor) -> Tensor:
        match = (f @ signature) / f.norm(dim=-1).clamp(min=1e-8) >= cfg.threshold
        out = f.clone()
        rows = match.nonzero()[:, 0]
        out[rows[:, None], idx] = (f[rows[:, None], idx] + cfg.scale * change).clamp(min=0)
        return out

    return edit_latents(edit)


def sae_editor(model, sae: SAE, world: FactWorld, layer: int, cfg: SAEEditConfig = SAEEditConfig()):
    """An editor for `edit_scores.evaluate_editor`: request -> logits with the feature edit."""
    check_index(layer, "layer", model.cfg.n_layers)
    codes = subject_codes(model, sae, world, layer)
    hook = f"blocks.{layer}.mlp.hook_post"

    def editor(req: EditRequest):
        edit = sae_fact_edit(codes, world, req, cfg)
        return lambda tokens: run_with_sae(model, tokens, sae, edit, keep_error=True, hook=hook)

    return editor


SWEEP_METRICS = ("efficacy", "neighbourhood", "other_relations")


def sae_scale_sweep(
    model,
    sae: SAE,
    world: FactWorld,
    layer: int,
    requests: list[EditRequest],
    scales: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0),
) -> list[dict]:
    """`evaluate_editor` of the SAE edit at each scale (how far the attribute features move, in
    mean differences): rows of scale, efficacy, neighbourhood and other_relations."""
    if not scales:
        raise ValueError("expected at least one scale, got none")
    rows = []
    for scale in scales:
        editor = sae_editor(model, sae, world, layer, SAEEditConfig(scale=scale))
        row = evaluate_editor(f"x{scale:g}", editor, model, world, requests).as_row()
        rows.append({"scale": scale, **{k: row[k] for k in SWEEP_METRICS}})
    return rows
