"""The fact model of chapter 8: a few-layer GELU HookedTransformer that knows the fact world.

Built here, trained by `tutorial_sae.training.lm`, shipped in `assets/facts/` by
`python -m tutorial_sae.build.fact_model`, loaded with `load_fact_model()`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from tutorial_sae.core.sae import SAE
from tutorial_sae.data.facts import FactWorld, FactWorldConfig
from tutorial_sae.paths import atomic_write_bytes, atomic_write_json, package_dir
from tutorial_sae.utils import read_json_object, read_safetensors

MODEL_FILES = ("model.safetensors", "config.json")


def facts_dir() -> Path:
    """The shipped fact model's folder."""
    return package_dir() / "assets" / "facts"


@dataclass(frozen=True)
class FactModelConfig:
    """Shape of the fact model (GELU MLPs, LayerNorm, learned absolute positions)."""

    n_layers: int = 3
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    n_ctx: int = 24
    local_window: int = 0  # > 0: layer 0 attends only to the last `local_window` tokens
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "d_mlp", "n_ctx"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be divisible by n_heads, got {self.d_model} and {self.n_heads}"
            )


@dataclass
class FactModel:
    """The model with the world it was trained on (world config, tokenizer, facts)."""

    model: object
    world: FactWorld
    cfg: FactModelConfig
    edit_layer: int | None = None  # the MLP ROME edits: chosen by causal tracing at build time


def build_fact_model(cfg: FactModelConfig, d_vocab: int):
    """A freshly initialised (seeded by `cfg.seed`) HookedTransformer on the CPU."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    local = {}
    if cfg.local_window:
        local = {
            "attn_types": ["local"] + ["global"] * (cfg.n_layers - 1),
            "window_size": cfg.local_window,
            "use_local_attn": True,
        }
    tl_cfg = HookedTransformerConfig(
        n_layers=cfg.n_layers,
        d_model=cfg.d_model,
        d_head=cfg.d_model // cfg.n_heads,
        n_heads=cfg.n_heads,
        d_mlp=cfg.d_mlp,
        d_vocab=d_vocab,
        n_ctx=cfg.n_ctx,
        act_fn="gelu",
        normalization_type="LN",
        seed=cfg.seed,
        device="cpu",
        **local,
    )
    return HookedTransformer(tl_cfg)


def save_fact_model(fm: FactModel, folder: Path, extra: dict | None = None) -> None:
    """Weights as safetensors, world + model config (and `extra` metadata) as JSON."""
    from safetensors.torch import save

    state = {k: v.contiguous() for k, v in fm.model.state_dict().items() if "IGNORE" not in k}
    state = {k: v for k, v in state.items() if not k.endswith(("hook_mask", ".mask"))}
    atomic_write_bytes(folder / "model.safetensors", save(state), 0o644)
    meta = {
        "model": dataclasses.asdict(fm.cfg),
        "world": dataclasses.asdict(fm.world.cfg),
        "d_vocab": len(fm.world.tokenizer),
        **(extra or {}),
    }
    atomic_write_json(folder / "config.json", meta, 0o644)


def load_fact_model(folder: str | Path | None = None) -> FactModel:
    """The shipped fact model (or one saved in `folder`), in eval mode on the CPU."""
    folder = facts_dir() if folder is None else Path(folder)
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"expected {MODEL_FILES} in {folder}, missing {missing}: "
            "run `python -m tutorial_sae.build.fact_model`"
        )
    meta = read_json_object(folder / "config.json", "fact model config")
    try:
        world = FactWorld(FactWorldConfig(**meta["world"]))
        cfg = FactModelConfig(**meta["model"])
        d_vocab = meta["d_vocab"]
    except (KeyError, TypeError) as err:
        raise ValueError(
            f"{folder / 'config.json'} is not a fact model config (keys world, model, "
            f"d_vocab): {type(err).__name__}: {err}"
        ) from err
    if d_vocab != len(world.tokenizer):
        raise ValueError(
            f"expected a vocabulary of {len(world.tokenizer)} words, the file says {meta['d_vocab']}"
        )
    model = build_fact_model(cfg, len(world.tokenizer))
    weights, _ = read_safetensors(folder / "model.safetensors", name="fact model weights")
    result = model.load_state_dict(weights, strict=False)
    # Only the attention masks (buffers rebuilt from the config) are left out of the file.
    missing = [k for k in result.missing_keys if not k.endswith(("mask", "IGNORE"))]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"expected the weights of {cfg}, got missing {missing}, "
            f"unexpected {result.unexpected_keys}"
        )
    model.eval()
    return FactModel(model, world, cfg, meta.get("edit_layer"))


def load_fact_sae(folder: str | Path | None = None) -> SAE:
    """The SAE shipped with the fact model (on its edit layer's `mlp.hook_post`)."""
    folder = (facts_dir() if folder is None else Path(folder)) / "sae"
    if not folder.is_dir():
        raise FileNotFoundError(f"expected a saved SAE in {folder}: run the fact model build")
    return SAE.load(folder)


def fact_metadata(folder: str | Path | None = None) -> dict:
    """The shipped config.json (model, world, edit layer, training record)."""
    folder = facts_dir() if folder is None else Path(folder)
    return read_json_object(folder / "config.json", "fact model config")


def torch_state_equal(a, b) -> bool:
    """True when two models' state dicts are equal bit for bit."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# Chapter 8's online path: GPT-2 small with the shipped known facts, else the fact model.
FACT_SETUP_NAMES = ("facts", "gpt2", "auto")
GPT2_REPO = "openai-community/gpt2"


@dataclass
class FactSetup:
    """The model chapter 8's tracing and ROME run on, labelled, and why it was chosen.

    name "gpt2": GPT-2 small with `known_facts` (the shipped prompts); name "facts": the
    shipped fact model (`fact_model`) and its world.
    """

    name: str
    model: object
    reason: str
    fact_model: FactModel | None = None
    known_facts: object | None = None

    @property
    def label(self) -> str:
        if self.name == "gpt2":
            return f"GPT-2 small ({GPT2_REPO}, TransformerLens)"
        return "the fact model (shipped with the package)"

    def __str__(self) -> str:
        return f"chapter 8 runs on {self.label}: {self.reason}"


def _not_found(err: BaseException) -> bool:
    """Whether a hub 404 (no such repo, revision or file) is anywhere in `err`'s chain."""
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, (EntryNotFoundError, RepositoryNotFoundError)):
            return True
        err = err.__cause__ or err.__context__
    return False


def _load_gpt2(device: str):
    from huggingface_hub.utils import httpx
    from transformer_lens import HookedTransformer

    from tutorial_sae.data.hub import bounded_hub, discard_bad_downloads, hub_cache_dir, use_network
    from tutorial_sae.errors import HubUnavailableError
    from tutorial_sae.models.loading import _LOAD_ERRORS, _hub_error

    online, why = use_network()
    if not online:
        raise HubUnavailableError(
            f"GPT-2 small ({GPT2_REPO}) needs the hub ({why}); use MODEL='facts' offline"
        )
    try:
        # The same bounds as gelu-1l's load: capped timeouts, two failures at most, no counters.
        with bounded_hub(GPT2_REPO):
            return HookedTransformer.from_pretrained("gpt2", device=device)
    except (*_LOAD_ERRORS, httpx.HTTPError) as err:
        discard_bad_downloads(GPT2_REPO, cache_dir=hub_cache_dir())
        if _not_found(err):  # transformers words a 404 as "couldn't connect": say what it was
            err = OSError(f"the hub answered but has no such repo or file (HTTP 404): {err}")
        error = _hub_error(f"GPT-2 small ({GPT2_REPO})", err)
        error.args = (f"{error.args[0]}; use MODEL='facts' offline",)
        raise error from err


def load_fact_setup(name: str = "facts", device: str = "cpu") -> FactSetup:
    """Chapter 8's model by name: "facts" (shipped), "gpt2" (needs the hub) or "auto".

    "auto" asks `loading.resolve_auto` whether the hub answers (the same probe `load_model`
    uses, once per session): GPT-2 small with the shipped known facts if it does, else the
    fact model; it prints one line saying which and why. "gpt2" offline raises
    HubUnavailableError naming the repo.
    """
    from tutorial_sae.data.hub import go_offline
    from tutorial_sae.data.known_facts import load_known_facts
    from tutorial_sae.errors import HubUnavailableError
    from tutorial_sae.models.loading import resolve_auto

    if name not in FACT_SETUP_NAMES:
        raise ValueError(
            f"expected a chapter 8 model name in {list(FACT_SETUP_NAMES)}, got {name!r}"
        )
    if name == "gpt2":
        return FactSetup("gpt2", _load_gpt2(device), "MODEL = 'gpt2'", None, load_known_facts())
    reason = "MODEL = 'facts'"
    if name == "auto":
        choice = resolve_auto()
        reason = f"auto: {choice.reason}"
        if choice.model != "mini":
            try:
                model = _load_gpt2(device)
            except HubUnavailableError as err:
                go_offline()
                reason = f"auto: GPT-2 failed to load: {err}"
            else:
                setup = FactSetup("gpt2", model, reason, None, load_known_facts())
                print(setup)
                return setup
    fm = load_fact_model()
    setup = FactSetup("facts", fm.model, reason, fm, None)
    if name == "auto":
        print(setup)
    return setup
