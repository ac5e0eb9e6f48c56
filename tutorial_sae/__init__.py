"""tutorial_sae: the helper package of an executable book on sparse autoencoders."""

import warnings as _warnings

from tutorial_sae.activations import (
    ActivationStream,
    TensorBatches,
    collect_activations,
    run_to_hook,
    stream_activations,
)
from tutorial_sae.evaluation import SAEMetrics, evaluate_sae
from tutorial_sae.fast_step import fast_train_step, loss_and_grads
from tutorial_sae.metrics import (
    dead_fraction,
    dense_fraction,
    explained_variance,
    feature_density,
    l0,
    log10_density,
    mse,
)
from tutorial_sae.resample import resample_dead_features
from tutorial_sae.sae import SAE, SAEConfig, SAELoss, ghost_grad_loss
from tutorial_sae.synthetic import SparseDataset, feature_recovery, make_sparse_dataset
from tutorial_sae.train import (
    NonFiniteLossError,
    TrainConfig,
    TrainLog,
    TrainResult,
    train_sae,
    train_sae_on,
    train_step,
)
from tutorial_sae.utils import get_device, set_seed

# TransformerLens 3.x warns about its own deprecation on every model build.
_warnings.filterwarnings("ignore", category=DeprecationWarning, module="transformer_lens")

__version__ = "0.1.0"

# The loaders import the corpus module; loading them on first use keeps
# `python -m tutorial_sae.corpus build` from importing the module it is about to run.
_LAZY = {
    name: "tutorial_sae.loading"
    for name in (
        "AutoChoice",
        "HubUnavailableError",
        "load_model",
        "load_sae",
        "load_tokens",
        "resolve_auto",
        "sae_names",
    )
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tutorial_sae' has no attribute {name!r}")
