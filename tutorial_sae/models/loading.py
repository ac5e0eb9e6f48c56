"""Load the book's models, SAEs and token batches by name: mini offline, gelu-1l online (chapters 3-8).

`load_model`, `load_sae` and `load_tokens` take the same names, so a chapter switches between the
shipped mini model and Neel Nanda's gelu-1l (with his run1/run2 SAEs) by changing one string.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Int
from torch import Tensor

from tutorial_sae.core.sae import SAE
from tutorial_sae.data.hub import (
    GELU_1L_REPO,
    PROBE_TIMEOUT_S,
    HubUnavailableError,
    bounded_hub,
    discard_bad_downloads,
    go_offline,
    hub_cache_dir,
    one_line,
    use_network,
)
from tutorial_sae.data.tokens import GELU_1L_TOKENIZER_REPO, gelu_1l_tokenizer, tokens_for

# Nanda's SAE format readers moved to tutorial_sae.models.nanda; re-exported so old imports work.
from tutorial_sae.models.nanda import (  # noqa: F401
    HUB_SAE_KEYS,
    HUB_SAE_REPO,
    HUB_SAE_VERSIONS,
    _load_hub_sae,
    _read_hub_weights,
    sae_from_nanda,
)
from tutorial_sae.paths import mini_sae_dir
from tutorial_sae.utils import get_device

MODEL_NAMES = ("mini", "gelu-1l", "auto")
# What a failed hub load can raise besides OSError: a corrupt file (torch, JSON), a listing
# without the expected file (IndexError in TransformerLens), a config missing a field.
_LOAD_ERRORS = (
    OSError,
    ValueError,
    RuntimeError,
    EOFError,
    KeyError,
    IndexError,
    pickle.PickleError,
)


@dataclass(frozen=True)
class AutoChoice:
    """What `"auto"` resolved to ("gelu-1l" or "mini") and why, in one printable line."""

    model: str
    reason: str

    def __str__(self) -> str:
        return f"auto: using {self.model} ({self.reason})"


_auto_choice: AutoChoice | None = None
# True once "auto" has handed out a gelu-1l object: a later failure cannot fall back to mini
# without mixing the two models.
_auto_gave_gelu = False
_announced: AutoChoice | None = None


def _announce(choice: AutoChoice) -> None:
    """Print what "auto" means, once per decision (load_model, load_sae and load_tokens share it)."""
    global _announced
    if choice is not _announced:
        print(choice)
        _announced = choice


def resolve_auto(refresh: bool = False, timeout: float = PROBE_TIMEOUT_S) -> AutoChoice:
    """Decide once per session what "auto" means, so `load_model` and `load_sae` always pair.

    gelu-1l when the hub answers within `timeout` seconds, else mini; offline mode is switched on
    for the mini path so nothing later waits on the network.
    """
    global _auto_choice
    if _auto_choice is not None and not refresh:
        return _auto_choice
    online, why = use_network(timeout)
    _auto_choice = AutoChoice("gelu-1l" if online else "mini", why)
    return _auto_choice


def _check_name(name: str, valid: tuple[str, ...], what: str) -> None:
    if name not in valid:
        raise ValueError(f"expected {what} name in {list(valid)}, got {name!r}")


def _hub_error(what: str, err: BaseException) -> HubUnavailableError:
    """HubUnavailableError naming the repo and the cause in one line; `.why` holds the cause."""
    why = one_line(err)
    error = HubUnavailableError(f"{what} could not be loaded from the hub: {why}")
    error.why = why
    return error


def _check_gelu_1l_weights() -> None:
    """TransformerLens unpickles gelu-1l's weights with weights_only=False: read them first with
    weights_only=True, so a file holding code never runs (and a corrupt one is named)."""
    from huggingface_hub import HfApi, hf_hub_download

    files = HfApi().list_repo_files(GELU_1L_REPO)  # a new HfApi reads HF_ENDPOINT now
    names = [name for name in files if name.endswith("final.pth")]  # as TransformerLens picks
    if not names:
        raise ValueError(f"expected a *final.pth file in {GELU_1L_REPO}, got {files}")
    _read_hub_weights(Path(hf_hub_download(GELU_1L_REPO, names[0], cache_dir=hub_cache_dir())))


def _load_gelu_1l(device: torch.device):
    from huggingface_hub.utils import httpx
    from transformer_lens import HookedTransformer

    online, why = use_network()
    if not online:
        # TransformerLens lists the repo's files before reading its cache, so gelu-1l cannot load
        # offline even when its weights are cached.
        raise HubUnavailableError(
            f"{GELU_1L_REPO} (gelu-1l) needs the hub ({why}); use load_model('mini') offline"
        )
    cache = {"cache_dir": hub_cache_dir()} if hub_cache_dir() else {}
    try:
        tokenizer = gelu_1l_tokenizer()
        with bounded_hub(GELU_1L_REPO):  # TransformerLens' requests: config, listing, weights
            _check_gelu_1l_weights()
            return HookedTransformer.from_pretrained(
                "gelu-1l", device=str(device), tokenizer=tokenizer, **cache
            )
    except (*_LOAD_ERRORS, httpx.HTTPError) as err:
        for repo in (GELU_1L_REPO, GELU_1L_TOKENIZER_REPO):
            discard_bad_downloads(repo, cache_dir=hub_cache_dir())
        error = _hub_error(f"{GELU_1L_REPO} (gelu-1l)", err)
        error.args = (f"{error.args[0]}; offline, use load_model('mini')",)
        raise error from err


def _fall_back(what: str, err: HubUnavailableError) -> AutoChoice:
    """Make "auto" mean mini from now on, because `what` failed; refuse if gelu-1l is in use."""
    global _auto_choice
    why = getattr(err, "why", str(err))
    if _auto_gave_gelu:
        raise HubUnavailableError(
            f"auto chose gelu-1l and handed out gelu-1l objects, then {what} failed ({why}); "
            "restart with MODEL = 'mini'"
        ) from err
    go_offline()
    _auto_choice = AutoChoice("mini", f"{what} failed to load: {why}")
    return _auto_choice


def load_model(name: str = "auto", device: str | torch.device | None = None):
    """A TransformerLens `HookedTransformer` with its tokenizer: "mini", "gelu-1l" or "auto".

    "auto" prints one line saying which model it chose and why (`resolve_auto`); it decides in
    at most a few seconds and never hangs without a network.
    """
    global _auto_gave_gelu
    _check_name(name, MODEL_NAMES, "model")
    device = get_device() if device is None else torch.device(device)
    if name == "mini":
        from tutorial_sae.models.mini import load_mini_model

        return load_mini_model(device=device)
    if name == "gelu-1l":
        return _load_gelu_1l(device)
    choice = resolve_auto()
    if choice.model == "gelu-1l":
        try:
            model = _load_gelu_1l(device)
        except HubUnavailableError as err:
            choice = _fall_back("gelu-1l", err)
        else:
            _announce(choice)
            _auto_gave_gelu = True
            return model
    _announce(choice)
    return load_model("mini", device)


def sae_names() -> tuple[str, ...]:
    """Every name `load_sae` accepts: the shipped mini SAEs, Nanda's two runs and "auto"."""
    folder = mini_sae_dir()
    mini = (
        sorted(p.name for p in folder.iterdir() if (p / "cfg.json").is_file())
        if folder.is_dir()
        else []
    )
    return (*(f"mini/{n}" for n in mini), *HUB_SAE_VERSIONS, "auto")


def pretrained_sae_name(model_name: str) -> str:
    """The book's pretrained SAE for a model name: its run1, or "auto" to follow the model."""
    _check_name(model_name, MODEL_NAMES, "model name")
    return "auto" if model_name == "auto" else f"{model_name}/run1"


def sae_ladder(model_name: str) -> dict[str, str]:
    """A model's SAEs of growing dictionary size, smallest first: label -> `load_sae` name
    (chapter 4 compares them). mini: its three shipped sizes; gelu-1l: Nanda's run2 and run1."""
    _check_name(model_name, ("mini", "gelu-1l"), "model")
    if model_name == "mini":
        return {"1,024": "mini/x2", "2,048": "mini/x4", "4,096": "mini/run1"}
    return {"run2": "gelu-1l/run2", "run1": "gelu-1l/run1"}


def load_sae(name: str = "auto", device: str | torch.device | None = None) -> SAE:
    """An SAE by name: "mini/<run>" (shipped), "gelu-1l/run1" or "/run2" (Nanda's), or "auto".

    "auto" pairs with `load_model("auto")`: gelu-1l/run1 when that chose gelu-1l, else mini/run1.
    """
    global _auto_gave_gelu
    valid = sae_names()
    _check_name(name, valid, "SAE")
    device = get_device() if device is None else torch.device(device)
    if name == "auto":
        if resolve_auto().model == "gelu-1l":
            try:
                sae = _load_hub_sae("gelu-1l/run1", device)
            except (HubUnavailableError, ValueError) as err:
                _fall_back("gelu-1l/run1", _as_hub_error(err))
            else:
                _announce(resolve_auto())
                _auto_gave_gelu = True
                return sae
        _announce(resolve_auto())
        name = "mini/run1"
        _check_name(name, valid, "SAE")
    if name.startswith("mini/"):
        return SAE.load(mini_sae_dir() / name.removeprefix("mini/"), device=device)
    return _load_hub_sae(name, device)


def _as_hub_error(err: Exception) -> HubUnavailableError:
    if isinstance(err, HubUnavailableError):
        return err
    return _hub_error(HUB_SAE_REPO, err)


def load_tokens(
    model_name: str,
    split: str = "eval",
    n_tokens: int = 65_536,
    seq_len: int = 128,
    lang: str | None = None,
    tokenizer=None,
    seed: int = 0,
) -> Int[Tensor, "n_seq seq_len"]:
    """ceil(n_tokens / seq_len) rows of BOS + (seq_len - 1) tokens of the model's own data.

    mini: the offline corpus in the mini model's training mixture (or one `lang`); gelu-1l:
    NeelNanda/c4-code-20k. Same arguments, same rows; tokenized text is cached on disk. Pass the
    model's `tokenizer` to skip loading the model just for it.
    """
    _check_name(model_name, MODEL_NAMES, "model")
    if model_name == "auto" and resolve_auto().model == "gelu-1l":
        try:
            if tokenizer is None:
                tokenizer = gelu_1l_tokenizer()
            rows = tokens_for("gelu-1l", tokenizer, split, n_tokens, seq_len, lang, seed)
            _announce(resolve_auto())
            return rows
        except HubUnavailableError as err:
            if tokenizer is not None and tokenizer.name_or_path == GELU_1L_TOKENIZER_REPO:
                tokenizer = None  # mini's rows need mini's tokenizer
            _fall_back("gelu-1l data", err)
    if model_name == "auto":
        _announce(resolve_auto())
        model_name = resolve_auto().model
    if tokenizer is None and model_name == "gelu-1l":
        tokenizer = gelu_1l_tokenizer()
    elif tokenizer is None:
        tokenizer = load_model(model_name, device="cpu").tokenizer
    return tokens_for(model_name, tokenizer, split, n_tokens, seq_len, lang, seed)
