"""Prompts for causal tracing and ROME from text, with any tokenizer (chapter 8's GPT-2 path).

`build_prompt` tokenizes a prompt, finds the subject's token positions (from the offset mapping
of a fast Hugging Face tokenizer, else by tokenizing the text up to the subject's start and end)
and the target's token id: the target is tokenized as it would follow the prompt, so GPT-2's
leading space is included (" Paris"). Its `FactPrompt` has the fields the tracing and ROME code
read from the fact world's prompts (ids, subject_pos, target, last_subject).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from tutorial_sae.data.facts import batch_prompts
from tutorial_sae.data.known_facts import SUBJECT, KnownFact, KnownFacts


@dataclass(frozen=True)
class FactPrompt:
    """A tokenized prompt: ids (BOS first when prepended), subject tokens [start, end), target id."""

    ids: tuple[int, ...]
    subject_pos: tuple[int, int]
    target: int
    text: str
    subject: str

    @property
    def last_subject(self) -> int:
        return self.subject_pos[1] - 1


def _encode(tokenizer, text: str) -> list[int]:
    """Ids of `text` without special tokens, for HF tokenizers and plain `.encode` ones."""
    if not text:
        return []
    if hasattr(tokenizer, "convert_tokens_to_ids"):  # a Hugging Face tokenizer
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer.encode(text))


def _bos(tokenizer) -> list[int]:
    bos = getattr(tokenizer, "bos_token_id", getattr(tokenizer, "bos_id", None))
    if bos is None:
        raise ValueError("prepend_bos=True needs a tokenizer with a BOS token, got none")
    return [int(bos)]


def subject_span(tokenizer, text: str, start: int, end: int) -> tuple[list[int], int, int]:
    """(ids of `text`, first, last + 1): the tokens covering characters [start, end)."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
        inside = [i for i, (a, b) in enumerate(offsets) if a < end and b > start]
        if not inside:
            raise ValueError(f"no token of {text!r} covers characters {start}..{end}")
        return ids, inside[0], inside[-1] + 1
    ids = _encode(tokenizer, text)
    # The space before the subject belongs to its first token in GPT-2's BPE: cut before it.
    head = _encode(tokenizer, text[:start].rstrip())
    upto = _encode(tokenizer, text[:end])
    if ids[: len(head)] != head or ids[: len(upto)] != upto or len(upto) <= len(head):
        raise ValueError(
            f"the subject's tokens do not line up with the prompt's in {text!r} "
            f"(characters {start}..{end}): this tokenizer merges them with their neighbours"
        )
    return ids, len(head), len(upto)


def target_id(tokenizer, text: str, target: str) -> int:
    """The one token id of `target` as it follows `text` (GPT-2: with its leading space)."""
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"expected a non-empty target string, got {target!r}")
    prompt = _encode(tokenizer, text)
    full = _encode(tokenizer, f"{text} {target.strip()}")
    rest = full[len(prompt) :]
    if full[: len(prompt)] != prompt or len(rest) != 1:
        pieces = _encode(tokenizer, " " + target.strip())
        raise ValueError(
            f"expected the target {target!r} to be one token after {text!r}, got "
            f"{len(pieces)} tokens {pieces}: choose a target that is a single token"
        )
    return rest[0]


def build_prompt(
    tokenizer, prompt: str, subject: str, target: str, prepend_bos: bool = True
) -> FactPrompt:
    """Tokenize `prompt` (a template with {subject}, or text that contains `subject`).

    Returns the ids, the subject's positions [start, end) and the target's token id. Raises
    ValueError when the subject is not in the prompt or the target is not one token.
    """
    if not isinstance(subject, str) or not subject.strip():
        raise ValueError(f"expected a non-empty subject string, got {subject!r}")
    if SUBJECT in prompt:
        before, after = prompt.split(SUBJECT, 1)
        text, start = before + subject + after, len(before)
    else:
        text, start = prompt, prompt.find(subject)
        if start < 0:
            raise ValueError(f"expected the subject {subject!r} in the prompt, got {prompt!r}")
    text = text.rstrip()
    if start + len(subject) >= len(text):
        raise ValueError(f"expected text after the subject {subject!r} in {prompt!r}")
    ids, first, end = subject_span(tokenizer, text, start, start + len(subject))
    head = _bos(tokenizer) if prepend_bos else []
    return FactPrompt(
        tuple(head + ids),
        (first + len(head), end + len(head)),
        target_id(tokenizer, text, target),
        text,
        subject,
    )


@dataclass(frozen=True)
class KnownFactPrompts:
    """One known fact, tokenized: the prompts tracing, ROME and the scores need."""

    fact: KnownFact
    clean: FactPrompt  # asks for the true object
    rewrite: tuple[FactPrompt, ...]  # after each context prefix, asking for the new object
    essence: tuple[FactPrompt, ...]  # "{subject} is a" after each prefix (ROME's KL term)
    paraphrases: tuple[FactPrompt, ...]
    neighbours: tuple[FactPrompt, ...]
    new_id: int


def known_fact_prompts(
    tokenizer, facts: KnownFacts, fact: KnownFact, prepend_bos: bool = True
) -> KnownFactPrompts:
    """Every prompt of `fact` under `tokenizer` (errors name the fact)."""

    def make(template: str, subject: str, target: str) -> FactPrompt:
        try:
            return build_prompt(tokenizer, template, subject, target, prepend_bos)
        except ValueError as err:
            raise ValueError(f"known fact {fact.subject!r} ({fact.relation}): {err}") from err

    def after(prefix: str, template: str) -> str:
        return f"{prefix} {template}" if prefix else template

    prefixes = facts.context_prefixes
    essence_target = fact.target_true  # any one-token word: the KL term reads every logit
    return KnownFactPrompts(
        fact,
        make(fact.prompt, fact.subject, fact.target_true),
        tuple(make(after(p, fact.prompt), fact.subject, fact.target_new) for p in prefixes),
        tuple(make(after(p, facts.essence), fact.subject, essence_target) for p in prefixes),
        tuple(make(t, fact.subject, fact.target_true) for t in fact.paraphrases),
        tuple(make(n.prompt, n.subject, fact.target_true) for n in fact.neighbourhood),
        make(fact.prompt, fact.subject, fact.target_new).target,
    )


def all_known_fact_prompts(
    tokenizer, facts: KnownFacts, prepend_bos: bool = True
) -> list[KnownFactPrompts]:
    """`known_fact_prompts` of every fact."""
    return [known_fact_prompts(tokenizer, facts, f, prepend_bos) for f in facts.facts]


@torch.no_grad()
def known_edit_scores(logits_fn, kp: KnownFactPrompts) -> dict[str, float]:
    """CounterFact's efficacy, paraphrase and neighbourhood scores of one edit (Meng et al.
    2022): P(new) > P(true) on the rewrite prompt and the paraphrases; neighbours keep
    P(true) > P(new). `logits_fn` maps right-padded tokens to the edited model's logits."""
    probes = [kp.clean, *kp.paraphrases, *kp.neighbours]
    tokens, last, _ = batch_prompts(list(probes))
    logits = logits_fn(tokens)[torch.arange(len(probes)), last]
    wins = (logits[:, kp.new_id] > logits[:, kp.clean.target]).float()
    n_para = len(kp.paraphrases)
    return {
        "efficacy": wins[0].item(),
        "paraphrase": wins[1 : 1 + n_para].mean().item(),
        "neighbourhood": (1 - wins[1 + n_para :]).mean().item(),
    }


def true_object_ranks(model, prompts: Sequence[FactPrompt]) -> Tensor:
    """Rank (0 = top-1) of each prompt's target among the next-token logits: which facts the
    model knows before we trace or edit them."""
    tokens, last, targets = batch_prompts(list(prompts))
    with torch.no_grad():
        logits = model(tokens, return_type="logits")[torch.arange(len(prompts)), last]
    return (logits > logits.gather(-1, targets[:, None])).sum(-1)


def rome_known_facts(model, layer: int, C: Tensor, prompts: Sequence[KnownFactPrompts], cfg=None):
    """One ROME edit per known fact at `layer` (ROME's own settings by default), each scored
    alone: rows of subject, true and new object, efficacy, paraphrase, neighbourhood, seconds."""
    from tutorial_sae.analysis.rome import ROME_PAPER, edited_logits_fn, rome_edit

    cfg = ROME_PAPER if cfg is None else cfg
    rows = []
    for kp in prompts:
        edit = rome_edit(model, layer, C, kp.rewrite, kp.essence, cfg)
        scores = known_edit_scores(edited_logits_fn(model, edit), kp)
        rows.append(
            {
                "subject": kp.fact.subject,
                "true": kp.fact.target_true,
                "new": kp.fact.target_new,
                **scores,
                "seconds": edit.seconds,
            }
        )
    return rows
