"""Sentences for the paper-style specificity table, and a table of features on them (chapter 5).

PAPER_PROMPTS quotes the nine sentences of the seed paper's figure 8 ("An Exploration of Sparse
Autoencoders and Random Walks in Latent Space"), as data. OWN_PROMPTS were written for this book
(so no model has seen them): five sentences with the same meanings in English, Chinese and
Arabic, and five short Python snippets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from tutorial_sae.data.activations import DEFAULT_HOOK, run_to_hook
from tutorial_sae.utils import check_hook, check_sae, check_strings

PAPER_PROMPTS = {
    "en": ("This is a sentence in English.", "English is a rich language.", "Writing in English."),
    "zh": ("这是中文句子。", "使用中文写作。", "中文有很多词汇。"),
    "ar": ("هذه جملة باللغة العربية.", "اللغة العربية غنية بالمفردات.", "الكتابة باللغة العربية."),
}

OWN_PROMPTS = {
    "en": (
        "I saw a small cat in the park this morning.",
        "This book tells the story of an old fisherman and the sea.",
        "Please send me the report before you leave work.",
        "Winter in Beijing is cold, but it rarely snows.",
        "We will meet at the library at three tomorrow afternoon.",
    ),
    "zh": (
        "今天早上我在公园里看见一只小猫。",
        "这本书讲的是一个老渔夫和大海的故事。",
        "请在下班之前把报告发给我。",
        "北京的冬天很冷，但是很少下雪。",
        "我们明天下午三点在图书馆见面。",
    ),
    "ar": (
        "رأيت قطة صغيرة في الحديقة هذا الصباح.",
        "هذا الكتاب يحكي قصة صياد عجوز والبحر.",
        "من فضلك أرسل لي التقرير قبل نهاية الدوام.",
        "الشتاء في بكين بارد، لكن الثلج نادر.",
        "سنلتقي غدا في المكتبة الساعة الثالثة بعد الظهر.",
    ),
    "code": (
        "def mean(values):\n    return sum(values) / len(values)",
        "for i, line in enumerate(lines):\n    print(i, line.strip())",
        'import os\npath = os.path.join(root, "data.txt")',
        "class Point:\n    def __init__(self, x, y):\n        self.x = x",
        "with open(path) as handle:\n    text = handle.read()",
    ),
}


@dataclass(frozen=True)
class PromptRow:
    """One prompt and one feature: its max and mean activation over the prompt's tokens (BOS
    excluded) and the share of those tokens it fires on, as in the seed paper's figure 8."""

    lang: str
    prompt: str
    feature: int
    max_act: float
    mean_act: float
    active: float


def _tokens(model, text: str) -> Tensor:
    # Not truncated: a prompt longer than the context is refused by run_to_hook, not cut.
    tokens = model.to_tokens(text, prepend_bos=True, truncate=False)
    if tokens.shape[1] < 2:
        raise ValueError(f"expected a prompt of at least one token, got {text!r}")
    return tokens


@torch.no_grad()
def prompt_table(
    model,
    sae,
    prompts: Mapping[str, Sequence[str]],
    features: Sequence[int],
    hook: str = DEFAULT_HOOK,
) -> list[PromptRow]:
    """A PromptRow for every (language, prompt, feature), in that order."""
    check_sae(sae)
    check_hook(model, hook)
    if not isinstance(prompts, Mapping):
        raise ValueError(f"prompts must map a language to a list of str, got {prompts!r}"[:200])
    for lang, texts in prompts.items():
        check_strings(texts, f"prompts[{lang!r}]")
    if isinstance(features, int) or not features:
        raise ValueError(f"expected a non-empty list of feature indices, got {features!r}")
    bad = [f for f in features if isinstance(f, bool) or not isinstance(f, int)]
    bad += [f for f in features if f not in bad and not 0 <= f < sae.cfg.d_sae]
    if bad:
        raise ValueError(f"expected feature indices in [0, {sae.cfg.d_sae}), got {bad}")
    index = torch.as_tensor(list(features))
    rows = []
    for lang, texts in prompts.items():
        for text in texts:
            tokens = _tokens(model, text)
            acts = sae.encode(run_to_hook(model, tokens, hook)[0, 1:])[:, index]
            for j, feature in enumerate(features):
                col = acts[:, j]
                rows.append(
                    PromptRow(
                        lang,
                        text,
                        int(feature),
                        float(col.max()),
                        float(col.mean()),
                        float((col > 0).float().mean()),
                    )
                )
    return rows


def mean_by_language(rows: Sequence[PromptRow], feature: int) -> dict[str, float]:
    """The feature's mean activation per language, averaged over that language's prompts."""
    out: dict[str, list[float]] = {}
    for row in rows:
        if row.feature == feature:
            out.setdefault(row.lang, []).append(row.mean_act)
    if not out:
        raise ValueError(f"expected rows for feature {feature}, got none")
    return {lang: sum(v) / len(v) for lang, v in out.items()}


@dataclass(frozen=True)
class SharedFeature:
    """The feature that fires most on every one of a few prompts (its weakest max is largest)."""

    index: int
    max_acts: list[float]


@torch.no_grad()
def shared_feature(model, sae, texts: Sequence[str], hook: str = DEFAULT_HOOK) -> SharedFeature:
    """Search all features for the one whose smallest max activation over `texts` is largest:
    how the seed paper's feature 42 ("fires on the English and the Chinese sentence") is found."""
    check_sae(sae)
    check_hook(model, hook)
    check_strings(texts, "texts")
    maxima = torch.stack(
        [
            sae.encode(run_to_hook(model, _tokens(model, t), hook)[0, 1:]).max(0).values
            for t in texts
        ]
    )
    index = int(maxima.min(0).values.argmax())
    return SharedFeature(index, maxima[:, index].tolist())
