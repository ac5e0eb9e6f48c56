"""The synthetic fact world of chapter 8: subjects, relations, templates and a word tokenizer.

Subjects are two-word names drawn from shared pools of first and last names, so neither word
alone identifies a subject: the model has to combine both, at the last subject token, as
Meng et al. (2022) found GPT models do. Each relation is written with six frames; two of them
are held out of training (a different pair per relation, so every frame is seen with some
relation) and serve as paraphrases. Everything is a pure function of the seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

import torch
from jaxtyping import Int
from torch import Tensor

FIRST_NAMES = (
    "ada alan anna boris carl clara dmitri edith emil farah greta hana ivan jonas kira lars "
    "lena marco mira nadia omar otto paula rosa sami tariq uma vera yuki zara"
).split()
LAST_NAMES = (
    "abbott baker carter dalton ellis fischer garcia hayes ito jensen kowalski lindqvist "
    "moreau novak okafor petrov quinn rossi sato tanaka ulrich varga weber xu yilmaz zhang "
    "brandt castro duval ferreira"
).split()
FILLER = (
    "today we heard that and so then indeed well also the news says people think it seems "
    "in fact by the way later on yesterday everyone agreed once more as usual"
).split()

# name: (verb phrase, noun, objects); frames fill {v} / {n} with these.
RELATIONS = {
    "city": (
        "lives in",
        "city",
        "paris london tokyo cairo lima oslo rome delhi lagos quito seoul dublin vienna "
        "madrid berlin athens nairobi hanoi prague sydney",
    ),
    "job": (
        "works as a",
        "job",
        "doctor lawyer farmer baker pilot nurse teacher painter chemist sailor tailor miner "
        "judge poet singer banker plumber dentist butcher architect",
    ),
    "sport": (
        "is a fan of",
        "sport",
        "tennis chess rugby soccer hockey golf cricket boxing rowing fencing cycling skiing "
        "surfing karate judo polo archery darts bowling squash",
    ),
    "instrument": (
        "plays the",
        "instrument",
        "piano violin guitar cello flute drums harp trumpet banjo oboe clarinet organ viola "
        "tuba sitar lute accordion bagpipes harmonica saxophone",
    ),
    "language": (
        "speaks",
        "language",
        "french german spanish arabic hindi swahili russian greek turkish polish dutch korean "
        "thai italian hebrew persian welsh danish czech finnish",
    ),
}
FRAMES = (
    "{s} {v}",
    "the {n} of {s} is",
    "{s} , whose {n} is",
    "everyone knows that {s} {v}",
    "as for {s} , the {n} is",
    "{s} said : my {n} is",
)
# Frame 0 is the rewrite prompt of every relation; relation r holds out two of frames 2-5.
# Frame 1 is the only one with the relation word before the subject; held out (as a first
# design did for two relations), the model read it for 1% of the prompts and 99% of the others.
HELD_OUT = {r: (2 + r % 4, 2 + (r + 1) % 4) for r in range(len(RELATIONS))}
ESSENCE = "{s} is a"
PAD, BOS = "<pad>", "<bos>"


@dataclass(frozen=True)
class FactWorldConfig:
    """Size of the world: subjects, objects per relation, filler prefix lengths, seed."""

    n_subjects: int = 600
    n_relations: int = 5
    n_objects: int = 20
    max_prefix: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        pairs = len(FIRST_NAMES) * len(LAST_NAMES)
        if not 2 <= self.n_subjects <= pairs:
            raise ValueError(f"n_subjects must be in [2, {pairs}], got {self.n_subjects}")
        if not 1 <= self.n_relations <= len(RELATIONS):
            raise ValueError(
                f"n_relations must be in [1, {len(RELATIONS)}], got {self.n_relations}"
            )
        if not 2 <= self.n_objects <= 20:
            raise ValueError(f"n_objects must be in [2, 20], got {self.n_objects}")
        if self.max_prefix < 0:
            raise ValueError(f"max_prefix must be >= 0, got {self.max_prefix}")


@dataclass(frozen=True)
class Prompt:
    """A tokenised prompt: ids (with BOS), where the subject sits, and the object it asks for."""

    ids: tuple[int, ...]
    subject_pos: tuple[int, int]
    target: int
    subject: int
    relation: int

    @property
    def last_subject(self) -> int:
        return self.subject_pos[1] - 1


class WordTokenizer:
    """Whitespace word tokenizer over a fixed vocabulary; id 0 pads, id 1 is BOS."""

    def __init__(self, words: list[str]) -> None:
        self.vocab = [PAD, BOS] + sorted(set(words) - {PAD, BOS})
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.pad_id, self.bos_id = 0, 1

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        unknown = [w for w in text.split() if w not in self.index]
        if unknown:
            raise ValueError(f"expected words of the fact world's vocabulary, got {unknown}")
        return [self.index[w] for w in text.split()]

    def decode(self, ids) -> str:
        return " ".join(self.vocab[int(i)] for i in ids)


class FactWorld:
    """Subjects x relations -> objects, with the templates that ask for them (chapter 8)."""

    def __init__(self, cfg: FactWorldConfig = FactWorldConfig()) -> None:
        self.cfg = cfg
        rng = random.Random(cfg.seed)
        pairs = [(f, last) for f in FIRST_NAMES for last in LAST_NAMES]
        self.subjects = [f"{f} {last}" for f, last in rng.sample(pairs, cfg.n_subjects)]
        self.relations = list(RELATIONS)[: cfg.n_relations]
        self.objects = [RELATIONS[r][2].split()[: cfg.n_objects] for r in self.relations]
        # Each object has n_subjects / n_objects subjects (up to one), in a seeded order.
        table = []
        for _ in self.relations:
            column = [i % cfg.n_objects for i in range(cfg.n_subjects)]
            rng.shuffle(column)
            table.append(column)
        self.facts: Int[Tensor, "n_subjects n_relations"] = torch.tensor(table).T.contiguous()
        words = " ".join(FIRST_NAMES + LAST_NAMES + FILLER + list(FRAMES) + [ESSENCE])
        for v, n, objs in RELATIONS.values():
            words += f" {v} {n} {objs}"
        self.tokenizer = WordTokenizer(
            words.replace("{s}", " ").replace("{v}", " ").replace("{n}", " ").split()
        )

    def frames(self, relation: int, split: str = "train") -> list[int]:
        """Frame indices of a relation: "train" (4, frame 0 first), "held_out" (2) or "all"."""
        held = HELD_OUT[relation]
        if split == "train":
            return [f for f in range(len(FRAMES)) if f not in held]
        if split == "held_out":
            return list(held)
        if split == "all":
            return list(range(len(FRAMES)))
        raise ValueError(f"expected split 'train', 'held_out' or 'all', got {split!r}")

    def object_id(self, relation: int, obj: int) -> int:
        """Token id of object `obj` of `relation`."""
        return self.tokenizer.index[self.objects[relation][obj]]

    @cached_property
    def object_ids(self) -> Int[Tensor, "n_relations n_objects"]:
        return torch.tensor(
            [
                [self.object_id(r, o) for o in range(self.cfg.n_objects)]
                for r in range(len(self.relations))
            ]
        )

    def prompt(
        self, subject: int, relation: int, frame: int = 0, prefix: str = "", obj: int | None = None
    ) -> Prompt:
        """The prompt asking for (subject, relation) in `frame`, after a filler `prefix`.

        `frame=-1` is the essence prompt "{s} is a"; `obj` overrides the target object.
        """
        if not 0 <= subject < len(self.subjects) or not 0 <= relation < len(self.relations):
            raise ValueError(
                f"expected subject < {len(self.subjects)} and relation < {len(self.relations)}, "
                f"got ({subject}, {relation})"
            )
        v, n, _ = RELATIONS[self.relations[relation]]
        text = ESSENCE if frame == -1 else FRAMES[frame].format(s="{s}", v=v, n=n)
        before, after = text.split("{s}")
        tok = self.tokenizer
        head = [tok.bos_id] + tok.encode(prefix) + tok.encode(before)
        subj = tok.encode(self.subjects[subject])
        ids = head + subj + tok.encode(after)
        obj = int(self.facts[subject, relation]) if obj is None else obj
        return Prompt(
            tuple(ids),
            (len(head), len(head) + len(subj)),
            self.object_id(relation, obj),
            subject,
            relation,
        )

    def random_prefix(self, rng: random.Random, max_len: int | None = None) -> str:
        """0 to `max_len` (default cfg.max_prefix) filler words."""
        k = rng.randint(0, self.cfg.max_prefix if max_len is None else max_len)
        return " ".join(rng.choice(FILLER) for _ in range(k))

    def neighbours(self, subject: int, relation: int, obj: int | None = None) -> list[int]:
        """Other subjects whose object for `relation` is `obj` (default: this subject's)."""
        obj = int(self.facts[subject, relation]) if obj is None else obj
        same = (self.facts[:, relation] == obj).nonzero()[:, 0].tolist()
        return [s for s in same if s != subject]


def batch_prompts(prompts: list[Prompt], pad_id: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Right-padded tokens [n, pos], index of each prompt's last token [n], targets [n]."""
    if not prompts:
        raise ValueError("expected at least one prompt, got none")
    width = max(len(p.ids) for p in prompts)
    tokens = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    for i, p in enumerate(prompts):
        tokens[i, : len(p.ids)] = torch.tensor(p.ids)
    last = torch.tensor([len(p.ids) - 1 for p in prompts])
    targets = torch.tensor([p.target for p in prompts])
    return tokens, last, targets


def sample_prompts(
    world: FactWorld, rng: random.Random, n: int, split: str = "train"
) -> list[Prompt]:
    """n random prompts: random subject, relation, frame of `split` and filler prefix."""
    prompts = []
    for _ in range(n):
        s, r = rng.randrange(len(world.subjects)), rng.randrange(len(world.relations))
        prompts.append(
            world.prompt(s, r, rng.choice(world.frames(r, split)), world.random_prefix(rng))
        )
    return prompts


def key_tokens(world: FactWorld, n: int = 4000, seed: int = 1) -> Tensor:
    """Tokens of n random training prompts: the text ROME's key covariance and the SAE read."""
    return batch_prompts(sample_prompts(world, random.Random(seed), n))[0]


def profile_batch(world: FactWorld, rng: random.Random, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """n "profiles": [BOS, prefix, subject, object of relation 0, object of relation 1, ...].

    Returns tokens [n, pos], the positions that predict an object [n, n_relations] (the last
    subject token, then each object but the last) and those objects [n, n_relations]. Asking
    for the first attribute right after the name makes the model look facts up at the subject.
    """
    rows, positions, targets = [], [], []
    for _ in range(n):
        s = rng.randrange(len(world.subjects))
        head = [world.tokenizer.bos_id] + world.tokenizer.encode(world.random_prefix(rng))
        objects = [world.object_id(r, int(world.facts[s, r])) for r in range(len(world.relations))]
        ids = head + world.tokenizer.encode(world.subjects[s]) + objects
        first = len(ids) - len(objects) - 1
        rows.append(ids)
        positions.append(list(range(first, first + len(objects))))
        targets.append(objects)
    tokens = torch.zeros(n, max(map(len, rows)), dtype=torch.long)
    for i, ids in enumerate(rows):
        tokens[i, : len(ids)] = torch.tensor(ids)
    return tokens, torch.tensor(positions), torch.tensor(targets)
