"""Chapter 6's inputs: the model, its SAE, held-out tokens and text per language (chapter 6)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jaxtyping import Int
from torch import Tensor

from tutorial_sae.analysis.prompts import OWN_PROMPTS, PAPER_PROMPTS
from tutorial_sae.core.sae import SAE
from tutorial_sae.models.loading import load_model, load_sae, load_tokens, pretrained_sae_name
from tutorial_sae.training.presets import preset_for
from tutorial_sae.utils import check_int

SEQ_LEN = 128  # the rows of load_tokens: BOS + 127 tokens
LANGS = ("en", "code", "zh", "ar")


@dataclass(frozen=True)
class AblationSetup:
    """The model, its pretrained SAE, `n_seq` rows of held-out tokens and the chapter's sizes
    (FAST on gelu-1l: the preset's share of FAST's sizes, `ModelPreset.fast_size`)."""

    model: object  # a HookedTransformer
    sae: SAE
    tokens: Int[Tensor, "n_seq seq_len"]
    model_name: str  # "mini" or "gelu-1l"
    n_features: int
    n_clamp_seq: int
    n_prompts: int
    n_new: int

    def __str__(self) -> str:
        return (
            f"{self.model_name}: d_mlp {self.model.cfg.d_mlp}, SAE {self.sae.cfg.d_sae:,} "
            f"features, tokens {tuple(self.tokens.shape)}"
        )


def load_ablation_setup(
    model: str, fast: bool, n_seq: int, n_features: int, n_clamp_seq: int, n_prompts: int,
    n_new: int,
) -> AblationSetup:  # fmt: skip
    """Load `model` ("mini", "gelu-1l" or "auto"), its run1 SAE and `n_seq` held-out rows.

    In FAST mode on a model whose preset has a `fast_share` below 1 (gelu-1l) each count shrinks
    to that share, at least 2 (`n_features` at least 12: section 6.3's top-10 sets need them).
    """
    if not isinstance(fast, bool):
        raise TypeError(f"expected fast to be a bool (the chapter's FAST), got {fast!r}")
    counts = {
        "n_seq": n_seq, "n_features": n_features, "n_clamp_seq": n_clamp_seq,
        "n_prompts": n_prompts, "n_new": n_new,
    }  # fmt: skip
    for name, value in counts.items():
        check_int(value, name, 1)
    loaded = load_model(model)
    preset = preset_for(loaded)
    n_seq, n_clamp_seq, n_prompts, n_new = (
        preset.fast_size(n, fast, minimum=2) for n in (n_seq, n_clamp_seq, n_prompts, n_new)
    )
    n_features = preset.fast_size(n_features, fast, minimum=12)
    sae = load_sae(pretrained_sae_name(model), device=loaded.cfg.device)
    tokens = load_tokens(model, "eval", n_seq * SEQ_LEN, tokenizer=loaded.tokenizer)
    return AblationSetup(
        loaded, sae, tokens, preset.model, n_features, n_clamp_seq, n_prompts, n_new
    )


def language_tokens(
    model, model_name: str, langs: Sequence[str] = LANGS, n_seq: int = 16
) -> dict[str, Int[Tensor, "n pos"]]:
    """Tokens of text in each of `langs`, for `find_script_feature`.

    On mini: `n_seq` held-out rows of each language's stream. On gelu-1l (whose text is one
    mixed stream) or "auto" choosing it: chapter 5's prompts in that language (`PAPER_PROMPTS`
    then `OWN_PROMPTS`), joined by newlines into one row.
    """
    check_int(n_seq, "n_seq", 1)
    if isinstance(langs, str) or not langs or any(lang not in OWN_PROMPTS for lang in langs):
        raise ValueError(
            f"expected a sequence of languages from {tuple(OWN_PROMPTS)}, got {langs!r}"
        )
    if preset_for(model).model == "mini":
        return {
            lang: load_tokens(
                model_name, "eval", n_seq * SEQ_LEN, tokenizer=model.tokenizer, lang=lang
            )
            for lang in langs
        }
    texts = {lang: PAPER_PROMPTS.get(lang, ()) + OWN_PROMPTS[lang] for lang in langs}
    return {lang: model.to_tokens("\n".join(t)) for lang, t in texts.items()}
