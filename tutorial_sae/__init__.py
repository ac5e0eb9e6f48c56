"""tutorial_sae: the helper package of an executable book on sparse autoencoders.

Layers, each a sub-package importing only the ones before it (tests/test_layers.py holds it):
`core` (SAE maths) <- `data` <- `models` <- `training` <- `analysis` <- `plots` <- `exercises`;
`build` holds the scripts that make the shipped assets. The names below are loaded on first
use, so `import tutorial_sae` stays fast and TransformerLens loads only with a model.
"""

import importlib
import warnings as _warnings

# TransformerLens 3.x warns about its own deprecation on every model build.
_warnings.filterwarnings("ignore", category=DeprecationWarning, module="transformer_lens")

__version__ = "0.1.0"

_EXPORTS = {
    "tutorial_sae.core.sae": ("SAE", "SAEConfig", "SAELoss", "ghost_grad_loss", "train_step"),
    "tutorial_sae.core.metrics": (
        "DensityHistogram",
        "ce_loss_recovered",
        "dead_fraction",
        "dense_fraction",
        "density_histogram",
        "explained_variance",
        "feature_density",
        "firing_counts",
        "l0",
        "mse",
    ),
    "tutorial_sae.core.fast_step": ("fast_train_step", "loss_and_grads"),
    "tutorial_sae.core.synthetic": ("SparseDataset", "feature_recovery", "make_sparse_dataset"),
    "tutorial_sae.data.activations": (
        "DEFAULT_HOOK",
        "ActivationStream",
        "TensorBatches",
        "collect_activations",
        "run_to_hook",
        "stream_activations",
    ),
    "tutorial_sae.models.loading": (
        "AutoChoice",
        "HubUnavailableError",
        "load_model",
        "load_sae",
        "load_tokens",
        "resolve_auto",
        "sae_names",
    ),
    "tutorial_sae.training.trainer": (
        "NonFiniteLossError",
        "TrainConfig",
        "TrainLog",
        "TrainResult",
        "train_sae",
        "train_sae_on",
    ),
    "tutorial_sae.training.resample": ("resample_dead_features", "update_dead_counters"),
    "tutorial_sae.training.presets": ("BASE", "DEAD_BASE", "MINI_SAES", "RUN1"),
    "tutorial_sae.analysis.evaluation": ("SAEMetrics", "evaluate_sae"),
    "tutorial_sae.analysis.interventions": (
        "LatentEdit",
        "SAESplice",
        "add_to_features",
        "clamp_features",
        "edit_latents",
        "mean_ablation",
        "replace_features",
        "run_with_intervention",
        "run_with_sae",
        "zero_ablation",
        "zero_features",
    ),
    "tutorial_sae.plots.glue": ("glue",),
    "tutorial_sae.utils": ("get_device", "set_seed"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tutorial_sae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
