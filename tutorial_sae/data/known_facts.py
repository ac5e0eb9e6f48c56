"""Well-known facts shipped for chapter 8's online path (GPT-2 small): load and validate them.

`assets/facts/known_facts.json` holds a few dozen facts written for this book in the format of
CounterFact (Meng et al. 2022): a prompt template with {subject}, the true object and a new one
to edit towards, paraphrase templates and neighbourhood prompts (other subjects that share the
true object). Also here: the English text whose MLP keys give ROME's covariance for GPT-2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tutorial_sae.paths import package_dir

SUBJECT = "{subject}"


def known_facts_path() -> Path:
    """The shipped file."""
    return package_dir() / "assets" / "facts" / "known_facts.json"


@dataclass(frozen=True)
class Neighbour:
    """Another subject asked with `prompt`; its true object is the fact's `target_true`."""

    prompt: str
    subject: str


@dataclass(frozen=True)
class KnownFact:
    """One CounterFact-style record (objects are written without their leading space)."""

    relation: str
    prompt: str
    subject: str
    target_true: str
    target_new: str
    paraphrases: tuple[str, ...]
    neighbourhood: tuple[Neighbour, ...]

    @property
    def text(self) -> str:
        """The rewrite prompt with the subject filled in."""
        return self.prompt.replace(SUBJECT, self.subject, 1)


@dataclass(frozen=True)
class KnownFacts:
    """The facts, the context prefixes ROME averages k* over, and the essence template."""

    facts: tuple[KnownFact, ...]
    context_prefixes: tuple[str, ...]
    essence: str

    def __len__(self) -> int:
        return len(self.facts)


def _str(record: dict, key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: expected a non-empty string under {key!r}, got {value!r}")
    if value != value.strip():
        raise ValueError(f"{where}: expected {key!r} without outer spaces, got {value!r}")
    return value


def _template(record: dict, key: str, where: str, value: str | None = None) -> str:
    value = _str(record, key, where) if value is None else value
    if value.count(SUBJECT) != 1:
        raise ValueError(f"{where}: expected {key!r} to hold {SUBJECT} once, got {value!r}")
    if value.endswith(SUBJECT):
        raise ValueError(f"{where}: expected text after {SUBJECT} in {key!r}, got {value!r}")
    return value


def _strings(record: dict, key: str, where: str) -> list:
    value = record.get(key)
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: expected a non-empty list under {key!r}, got {value!r}")
    return value


def parse_fact(record: dict, where: str = "fact") -> KnownFact:
    """A validated KnownFact from one JSON record; errors name the record and the field."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected an object, got {type(record).__name__}")
    true, new = _str(record, "target_true", where), _str(record, "target_new", where)
    if true == new:
        raise ValueError(f"{where}: expected target_new to differ from target_true, got {new!r}")
    paraphrases = []
    for p in _strings(record, "paraphrases", where):
        if not isinstance(p, str):
            raise ValueError(f"{where}: expected paraphrase templates (strings), got {p!r}")
        paraphrases.append(_template(record, "paraphrases", where, p))
    neighbours = []
    for i, n in enumerate(_strings(record, "neighbourhood", where)):
        at = f"{where}, neighbour {i}"
        if not isinstance(n, dict):
            raise ValueError(f"{at}: expected an object, got {type(n).__name__}")
        neighbours.append(Neighbour(_template(n, "prompt", at), _str(n, "subject", at)))
    subject = _str(record, "subject", where)
    if any(n.subject == subject for n in neighbours):
        raise ValueError(f"{where}: expected neighbours other than the subject {subject!r}")
    return KnownFact(
        _str(record, "relation", where),
        _template(record, "prompt", where),
        subject,
        true,
        new,
        tuple(paraphrases),
        tuple(neighbours),
    )


def parse_known_facts(data: dict) -> KnownFacts:
    """Validate the whole file's JSON (facts, context_prefixes, essence)."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    facts = tuple(parse_fact(r, f"fact {i}") for i, r in enumerate(_strings(data, "facts", "file")))
    seen: set[tuple[str, str]] = set()
    for f in facts:
        if (f.subject, f.relation) in seen:
            raise ValueError(f"expected one fact per (subject, relation), {f.subject!r} repeats")
        seen.add((f.subject, f.relation))
    prefixes = _strings(data, "context_prefixes", "file")
    if not all(isinstance(p, str) for p in prefixes) or prefixes[0] != "":
        raise ValueError(f"expected context_prefixes of strings, the first empty, got {prefixes}")
    essence = _template(data, "essence", "file")
    return KnownFacts(facts, tuple(prefixes), essence)


def load_known_facts(path: str | Path | None = None) -> KnownFacts:
    """The shipped known facts (or those in `path`), validated."""
    path = known_facts_path() if path is None else Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"expected JSON in {path}, got: {err}") from err
    try:
        return parse_known_facts(data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def prose_key_tokens(tokenizer, n_rows: int = 96, seq_len: int = 128, seed: int = 0):
    """[n_rows, seq_len] windows (BOS first) of the offline corpus's English prose under any
    tokenizer: the text whose MLP keys give ROME's covariance C for a pretrained model
    (Meng et al. use Wikipedia; the prose here stands in for it)."""
    import numpy as np
    import torch

    from tutorial_sae.data import corpus
    from tutorial_sae.data.tokens import stream_of, windows_of

    texts = corpus.load_texts("train", "en")
    bos = tokenizer.bos_token_id
    if bos is None:
        raise ValueError("expected a tokenizer with a BOS token (bos_token_id), got None")
    stream, used = np.zeros(0, dtype=np.int32), 0
    while len(stream) < n_rows * seq_len and used < len(texts):
        stream = np.concatenate([stream, stream_of(tokenizer, texts[used : used + 64])])
        used += 64
    windows = windows_of(stream, seq_len, bos)
    if len(windows) < n_rows:
        raise ValueError(f"expected >= {n_rows} windows of English prose, got {len(windows)}")
    gen = torch.Generator().manual_seed(seed)
    return windows[torch.randperm(len(windows), generator=gen)[:n_rows]]
