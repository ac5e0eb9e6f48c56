"""Steering with an SAE feature: find a script feature, dose-response, continuations (chapter 6).

Every model run goes through `tutorial_sae.analysis.interventions`. Token scripts come from
chapter 5's character labels (`tutorial_sae.analysis.scripts.char_scripts`) applied to each
vocabulary entry's bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tutorial_sae.analysis.interventions import (
    LatentEdit,
    add_to_features,
    clamp_features,
    run_with_sae,
)
from tutorial_sae.analysis.scripts import SCRIPTS, char_scripts
from tutorial_sae.core.sae import SAE
from tutorial_sae.data.activations import DEFAULT_HOOK, check_tokens, collect_activations
from tutorial_sae.utils import (
    check_choice,
    check_index,
    check_int,
    check_numbers,
    check_real,
    check_sae,
    check_tensor,
)

# UTF-8 lead bytes of U+0600..U+06FF, the Arabic block: a token holding one of them but no whole
# letter (half of a split character) still spells Arabic.
_ARABIC_LEAD = range(0xD8, 0xDC)
MODES = ("clamp", "add")


def _token_bytes(tokenizer, token_id: int) -> bytes:
    from tutorial_sae.analysis.features import _byte_decoder

    piece, decoder = tokenizer.convert_ids_to_tokens([token_id])[0], _byte_decoder()
    if all(c in decoder for c in piece):
        return bytes(decoder[c] for c in piece)
    return piece.encode("utf-8")


def vocab_scripts(tokenizer) -> list[str]:
    """The script (one of SCRIPTS) of every vocabulary entry: the most common script among the
    whole characters its bytes spell; a token of partial Arabic characters only is "arabic"."""
    labels = []
    for token_id in range(len(tokenizer)):
        raw = _token_bytes(tokenizer, token_id)
        codes = char_scripts(raw.decode("utf-8", errors="ignore"))
        votes = torch.bincount(torch.from_numpy(codes), minlength=len(SCRIPTS))[1:]
        if votes.any():
            labels.append(SCRIPTS[1 + int(votes.argmax())])
        elif any(b in _ARABIC_LEAD for b in raw):
            labels.append("arabic")
        else:
            labels.append("none")
    return labels


def script_token_mask(tokenizer, script: str = "arabic") -> Tensor:
    """Bool [d_vocab]: the tokens written in `script` (see `vocab_scripts`)."""
    if script not in SCRIPTS[1:]:
        raise ValueError(f"expected a script in {SCRIPTS[1:]}, got {script!r}")
    return torch.tensor([s == script for s in vocab_scripts(tokenizer)])


@dataclass(frozen=True)
class ScriptFeature:
    """The feature most specific to one language's text, with its mean activation per language
    and its largest activation on the target language (the unit of steering doses)."""

    feature: int
    lang: str
    mean_by_lang: dict[str, float]
    max_act: float
    score: float

    def summary(self) -> dict[str, float]:
        """The numbers chapter 6 glues: the feature, its largest activation on `lang`, its mean
        on `lang` ("mean_<lang>") and its largest mean on any other language ("mean_other")."""
        return {
            "feature": self.feature,
            "max_act": self.max_act,
            f"mean_{self.lang}": self.mean_by_lang[self.lang],
            "mean_other": max(v for k, v in self.mean_by_lang.items() if k != self.lang),
        }


def find_script_feature(
    model, sae: SAE, tokens_by_lang: Mapping[str, Int[Tensor, "n pos"]], lang: str = "ar",
    hook: str = DEFAULT_HOOK,
) -> ScriptFeature:  # fmt: skip
    """The feature whose mean activation on `lang`'s tokens most exceeds its largest mean on
    any other language (BOS positions left out)."""
    check_sae(sae)
    if not isinstance(tokens_by_lang, Mapping):
        raise ValueError(f"tokens_by_lang must map languages to tokens, got {tokens_by_lang!r}")
    if lang not in tokens_by_lang or len(tokens_by_lang) < 2:
        raise ValueError(
            f"expected tokens for {lang!r} and another language, got {list(tokens_by_lang)}"
        )
    means = {}
    for name, tokens in tokens_by_lang.items():
        acts = collect_activations(model, tokens, hook, progress=False)[:, 1:]
        with torch.no_grad():
            means[name] = sae.encode(acts.reshape(-1, acts.shape[-1]).to(sae.W_enc.dtype)).mean(0)
    others = torch.stack([m for name, m in means.items() if name != lang]).amax(0)
    score = means[lang] - others
    feature = int(score.argmax())
    acts = collect_activations(model, tokens_by_lang[lang], hook, progress=False)[:, 1:]
    with torch.no_grad():
        max_act = float(sae.encode(acts.reshape(-1, acts.shape[-1]))[:, feature].max())
    return ScriptFeature(
        feature,
        lang,
        {k: float(v[feature]) for k, v in means.items()},
        max_act,
        float(score[feature]),
    )


def steering_edit(feature: int, multiple: float, max_act: float, mode: str = "clamp") -> LatentEdit:
    """Clamp `feature` to, or add to it, `multiple` times its max activation, at every token."""
    if mode not in MODES:
        raise ValueError(f"expected a steering mode in {MODES}, got {mode!r}")
    check_int(feature, "feature", 0)
    check_real(multiple, "multiple")
    check_real(max_act, "max_act")
    value = multiple * max_act
    return clamp_features(feature, value) if mode == "clamp" else add_to_features(feature, value)


@dataclass(frozen=True)
class DoseResponse:
    """Steering one feature at several doses (multiples of its max activation) on some prompts.

    `mass[j]` is the mean next-token probability on the `script` tokens at each prompt's last
    position; `delta_ce[j]` the change in the prompts' own next-token loss (all positions).
    """

    feature: int
    mode: str
    script: str
    multiples: tuple[float, ...]
    mass: Float[Tensor, " m"]
    delta_ce: Float[Tensor, " m"]
    clean_mass: float


def _losses(logits: Tensor, tokens: Tensor) -> Tensor:
    logp = logits[:, :-1].float().log_softmax(-1)
    return -logp.gather(-1, tokens[:, 1:, None])[..., 0]


def dose_response(
    model, sae: SAE, prompts: Int[Tensor, "n pos"], feature: int, max_act: float,
    multiples: Sequence[float], token_mask: Tensor, mode: str = "clamp", script: str = "arabic",
    hook: str = DEFAULT_HOOK,
) -> DoseResponse:  # fmt: skip
    """Steer `feature` at each multiple of `max_act` (`steering_edit`, error term kept) and
    measure the next-token mass on the `token_mask` tokens and the change in the prompts' loss."""
    check_sae(sae)
    check_tokens(prompts, model)
    if prompts.shape[1] < 2:
        raise ValueError(f"prompts need >= 2 tokens (a loss), got shape {tuple(prompts.shape)}")
    check_index(feature, "feature", sae.cfg.d_sae)
    check_real(max_act, "max_act")
    check_numbers(multiples, "multiples")
    check_choice(mode, "mode", MODES)
    if (
        isinstance(token_mask, torch.Tensor)
        and token_mask.dtype == torch.bool
        and token_mask.ndim == 1
        and getattr(model, "tokenizer", None) is not None
        and len(token_mask) == len(model.tokenizer) < model.cfg.d_vocab
    ):
        # A mask over the tokenizer's ids; the unembedding's rows past them (padding) are ids no
        # text is written in, so False is exact for them.
        token_mask = torch.nn.functional.pad(token_mask, (0, model.cfg.d_vocab - len(token_mask)))
    if token_mask.shape != (model.cfg.d_vocab,) or token_mask.dtype != torch.bool:
        raise ValueError(
            f"expected a bool mask of shape ({model.cfg.d_vocab},), got {token_mask.shape}"
        )
    prompts = prompts.to(model.cfg.device)
    clean_logits = run_with_sae(model, prompts, sae, hook=hook)
    clean_loss = _losses(clean_logits, prompts).mean()

    def mass_of(logits: Tensor) -> float:
        return float(
            logits[:, -1].float().softmax(-1)[:, token_mask.to(logits.device)].sum(-1).mean()
        )

    mass, delta = [], []
    for multiple in multiples:
        edit = steering_edit(feature, multiple, max_act, mode)
        logits = run_with_sae(model, prompts, sae, edit, hook=hook)
        mass.append(mass_of(logits))
        delta.append(float(_losses(logits, prompts).mean() - clean_loss))
    return DoseResponse(
        feature, mode, script, tuple(float(m) for m in multiples), torch.tensor(mass),
        torch.tensor(delta), mass_of(clean_logits),
    )  # fmt: skip


def generate_with_sae(
    model, tokens: Int[Tensor, "batch pos"], sae: SAE, edit: LatentEdit | None = None,
    n_new: int = 20, hook: str = DEFAULT_HOOK,
) -> Int[Tensor, "batch pos_plus_n_new"]:  # fmt: skip
    """Greedy continuation by `n_new` tokens with `edit` applied at every position of every step
    (error term kept: no edit gives the clean model's greedy text)."""
    check_tokens(tokens, model)
    check_int(n_new, "n_new")
    if tokens.shape[1] + n_new > model.cfg.n_ctx:
        raise ValueError(
            f"expected prompt length + n_new <= n_ctx={model.cfg.n_ctx}, got {tokens.shape[1]} + {n_new}"
        )
    out = tokens.to(model.cfg.device)
    for _ in range(n_new):
        logits = run_with_sae(model, out, sae, edit, hook=hook)
        out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return out


@dataclass(frozen=True)
class Continuation:
    """A prompt's greedy continuation at one steering dose."""

    multiple: float
    prompt: str
    text: str


def continuations(
    model, sae: SAE, prompt: Int[Tensor, " pos"], feature: int, max_act: float,
    multiples: Sequence[float], n_new: int = 20, mode: str = "clamp", hook: str = DEFAULT_HOOK,
) -> list[Continuation]:  # fmt: skip
    """The greedy continuation of one prompt at each dose (multiple 0 with mode "add": clean)."""
    check_tensor(prompt, "prompt", 1, "int")
    check_sae(sae)
    check_index(feature, "feature", sae.cfg.d_sae)
    check_numbers(multiples, "multiples")
    check_choice(mode, "mode", MODES)
    prompt_text = model.tokenizer.decode(prompt[1:].tolist())
    out = []
    for multiple in multiples:
        edit = steering_edit(feature, multiple, max_act, mode)
        ids = generate_with_sae(model, prompt[None], sae, edit, n_new, hook)[0, len(prompt) :]
        out.append(Continuation(float(multiple), prompt_text, model.tokenizer.decode(ids.tolist())))
    return out
