"""CounterFact-style scores of a fact edit in the fact world (chapter 8; Meng et al. 2022, sec. 3.2).

For a request (subject, relation, true object -> new object): efficacy = P(new) > P(true) on
the rewrite prompt; paraphrase = the same on the held-out templates; neighbourhood = other
subjects sharing the true object keep P(true) > P(new); score = their harmonic mean. Added
here: the subject's other relations keep their top-1 prediction.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from tutorial_sae.data.facts import FactWorld, Prompt, batch_prompts
from tutorial_sae.utils import check_index, check_int, check_tensor

LogitsFn = Callable[[Tensor], Tensor]
Editor = Callable[["EditRequest"], LogitsFn]
METRICS = ("efficacy", "paraphrase", "neighbourhood", "other_relations")


@dataclass(frozen=True)
class EditRequest:
    """Rewrite (subject, relation) from object index `true_obj` to `new_obj`."""

    subject: int
    relation: int
    true_obj: int
    new_obj: int

    def __post_init__(self) -> None:
        for name in ("subject", "relation", "true_obj", "new_obj"):
            check_int(getattr(self, name), name, 0)
        if self.new_obj == self.true_obj:
            raise ValueError(f"new_obj must differ from true_obj, both are {self.new_obj}")


def sample_requests(world: FactWorld, n: int, seed: int = 0) -> list[EditRequest]:
    """n distinct seeded requests, each to a random object other than the true one."""
    n_pairs = len(world.subjects) * len(world.relations)
    check_int(n, "n", 0)
    if n > n_pairs:
        raise ValueError(f"n must be <= {n_pairs} (subject, relation) pairs, got {n}")
    rng = random.Random(seed)
    pairs = rng.sample(
        [(s, r) for s in range(len(world.subjects)) for r in range(len(world.relations))], n
    )
    out = []
    for s, r in pairs:
        true = int(world.facts[s, r])
        new = rng.choice([o for o in range(world.cfg.n_objects) if o != true])
        out.append(EditRequest(s, r, true, new))
    return out


def request_prompts(
    world: FactWorld, req: EditRequest, n_prefixes: int = 10, seed: int = 0, essence: str = "facts"
) -> tuple[list[Prompt], list[Prompt]]:
    """ROME's inputs: the rewrite prompt after `n_prefixes` filler prefixes (the first empty),
    asking for the new object, and the "essence" prompts whose next-token distribution the KL
    term keeps. ROME's essence prompt is "{subject} is a" (`essence="is a"`); this world has no
    such sentence, so by default (`"facts"`) the essence is the subject's other facts, asked
    with training frames other than the rewrite frame (which the scores use)."""
    check_int(n_prefixes, "n_prefixes")
    rng = random.Random(seed)
    prefixes = [""] + [
        world.random_prefix(rng, max_len=world.cfg.max_prefix) or "well"
        for _ in range(n_prefixes - 1)
    ]
    rewrite = [world.prompt(req.subject, req.relation, 0, p, obj=req.new_obj) for p in prefixes]
    if essence == "is a":
        return rewrite, [world.prompt(req.subject, req.relation, -1, p) for p in prefixes]
    if essence != "facts":
        raise ValueError(f"expected essence 'facts' or 'is a', got {essence!r}")
    others = [r for r in range(len(world.relations)) if r != req.relation] or [req.relation]
    essence_prompts = []
    for i, p in enumerate(prefixes):
        r = others[i % len(others)]
        frame = rng.choice(world.frames(r, "train")[1:])
        essence_prompts.append(world.prompt(req.subject, r, frame, p))
    return rewrite, essence_prompts


@dataclass
class EditScores:
    """Per-request scores of one editing method, and their means."""

    method: str
    per_request: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METRICS})
    seconds: list[float] = field(default_factory=list)

    def mean(self, metric: str) -> float:
        return statistics.fmean(self.per_request[metric])

    @property
    def score(self) -> float:
        """Harmonic mean of efficacy, paraphrase and neighbourhood (CounterFact's S)."""
        parts = [self.mean(m) for m in METRICS[:3]]
        return statistics.harmonic_mean(parts) if min(parts) > 0 else 0.0

    def as_row(self) -> dict:
        row = {"method": self.method, **{m: self.mean(m) for m in METRICS}, "score": self.score}
        row["seconds per edit"] = statistics.fmean(self.seconds) if self.seconds else 0.0
        return row


def _probe_prompts(world: FactWorld, req: EditRequest, n_neighbours: int, seed: int):
    s, r = req.subject, req.relation
    probes = [world.prompt(s, r, 0)] + [world.prompt(s, r, f) for f in world.frames(r, "held_out")]
    neighbours = world.neighbours(s, r)
    neighbours = random.Random(seed).sample(neighbours, min(n_neighbours, len(neighbours)))
    probes += [world.prompt(n, r, 0) for n in neighbours]
    others = [r2 for r2 in range(len(world.relations)) if r2 != r]
    probes += [world.prompt(s, r2, 0) for r2 in others]
    return probes, len(neighbours), len(others)


def score_request(
    logits_fn: LogitsFn,
    clean_fn: LogitsFn,
    world: FactWorld,
    req: EditRequest,
    n_neighbours: int = 10,
    seed: int = 0,
) -> dict[str, float]:
    """The four scores of one request, from the edited model's logits (and the clean ones)."""
    probes, n_nb, n_other = _probe_prompts(world, req, n_neighbours, seed)
    tokens, last, _ = batch_prompts(probes)
    rows = torch.arange(len(probes))
    with torch.no_grad():
        edited = logits_fn(tokens)[rows, last].float()
        clean = clean_fn(tokens[-n_other:])[torch.arange(n_other), last[-n_other:]]
    new = world.object_id(req.relation, req.new_obj)
    true = world.object_id(req.relation, req.true_obj)
    n_para = len(world.frames(req.relation, "held_out"))
    main = counterfact_scores(edited[: 1 + n_para + n_nb], new, true, n_para)
    kept = (edited[len(probes) - n_other :].argmax(-1) == clean.argmax(-1)).float()
    return {
        "efficacy": main[0].item(),
        "paraphrase": main[1].item(),
        "neighbourhood": main[2].item(),
        "other_relations": kept.mean().item() if n_other else 1.0,
    }


def counterfact_scores(
    logits: Float[Tensor, "n d_vocab"], new_id: int, true_id: int, n_paraphrase: int
) -> Float[Tensor, " 3"]:
    """(efficacy, paraphrase, neighbourhood) from next-token logits of the probe prompts.

    Row 0 is the rewrite prompt, the next `n_paraphrase` rows the paraphrases, the rest
    neighbour subjects. A rewrite or paraphrase wins when P(new) > P(true); a neighbour
    wins when it keeps P(true) > P(new) (Meng et al. 2022, CounterFact's ES, PS, NS).
    """
    check_tensor(logits, "logits", 2)
    check_int(n_paraphrase, "n_paraphrase", 0)
    check_index(new_id, "new_id", logits.shape[1])
    check_index(true_id, "true_id", logits.shape[1])
    if new_id == true_id:
        raise ValueError(f"new_id and true_id must differ, both are {new_id}")
    if len(logits) < 2 + n_paraphrase:
        raise ValueError(
            f"expected logits [n >= {2 + n_paraphrase}, d_vocab], got {tuple(logits.shape)}"
        )
    wins = (logits[:, new_id] > logits[:, true_id]).float()
    return torch.stack(
        [wins[0], wins[1 : 1 + n_paraphrase].mean(), (1 - wins[1 + n_paraphrase :]).mean()]
    )


def evaluate_editor(
    method: str,
    editor: Editor,
    model,
    world: FactWorld,
    requests: Sequence[EditRequest],
    n_neighbours: int = 10,
) -> EditScores:
    """Score `editor` (request -> logits function of the edited model) on every request."""
    if not callable(editor):
        raise ValueError(f"editor must be callable (request -> logits function), got {editor!r}")
    if isinstance(requests, EditRequest) or not requests:
        raise ValueError(f"requests must be a non-empty list of EditRequest, got {requests!r}")
    check_int(n_neighbours, "n_neighbours", 0)
    scores = EditScores(method)

    def clean(tokens: Tensor) -> Tensor:
        return model(tokens, return_type="logits")

    for i, req in enumerate(requests):
        start = time.perf_counter()
        logits_fn = editor(req)
        scores.seconds.append(time.perf_counter() - start)
        for k, v in score_request(logits_fn, clean, world, req, n_neighbours, seed=i).items():
            scores.per_request[k].append(v)
    return scores


def probe_table(
    logits_fn: LogitsFn, model, world: FactWorld, req: EditRequest, n_neighbours: int = 2
):
    """A DataFrame of probe prompts: P(true), P(new) (edited relation only) and top-1, before/after."""
    import pandas as pd

    probes, n_nb, n_other = _probe_prompts(world, req, n_neighbours, seed=0)
    tokens, last, _ = batch_prompts(probes)
    rows = torch.arange(len(probes))
    kinds = ["rewrite"] + ["paraphrase"] * (len(probes) - 1 - n_nb - n_other)
    kinds += ["neighbour"] * n_nb + ["other relation"] * n_other
    new = world.object_id(req.relation, req.new_obj)
    true = world.object_id(req.relation, req.true_obj)
    with torch.no_grad():
        before = model(tokens, return_type="logits")[rows, last].softmax(-1)
        after = logits_fn(tokens)[rows, last].softmax(-1)
    same = torch.tensor([k != "other relation" for k in kinds])
    nan = torch.tensor(float("nan"))
    vocab = world.tokenizer.vocab
    return pd.DataFrame(
        {
            "probe": kinds,
            "prompt": [world.tokenizer.decode(p.ids[1:]) for p in probes],
            "P(true) before": torch.where(same, before[:, true], nan).tolist(),
            "P(true) after": torch.where(same, after[:, true], nan).tolist(),
            "P(new) after": torch.where(same, after[:, new], nan).tolist(),
            "top-1 before": [vocab[i] for i in before.argmax(-1).tolist()],
            "top-1 after": [vocab[i] for i in after.argmax(-1).tolist()],
        }
    )
