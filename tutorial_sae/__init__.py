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
    "tutorial_sae.core.synthetic": (
        "RECOVERY_THRESHOLD",
        "SparseDataset",
        "feature_recovery",
        "make_sparse_dataset",
        "recovered_fraction",
    ),
    "tutorial_sae.core.math_toys": (
        "ActivationCurves",
        "Norms",
        "Shrinkage",
        "ToyConfig",
        "ToyModel",
        "activation_curves",
        "gelu_exact",
        "gelu_grad",
        "gelu_tanh",
        "norms",
        "ridge_shrink",
        "shrinkage_comparison",
        "soft_threshold",
        "train_toy_model",
    ),
    "tutorial_sae.core.decoder_norms": (
        "SAFEGUARD_VARIANTS",
        "NormTrace",
        "SafeguardComparison",
        "SafeguardConfig",
        "VariantSAE",
        "compare_safeguards",
        "train_tracing_norms",
    ),
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
        "load_model",
        "load_sae",
        "load_tokens",
        "pretrained_sae_name",
        "resolve_auto",
        "sae_names",
    ),
    "tutorial_sae.training.trainer": (
        "TrainConfig",
        "TrainLog",
        "TrainResult",
        "train_sae",
        "train_sae_on",
    ),
    "tutorial_sae.training.resample": ("resample_dead_features", "update_dead_counters"),
    "tutorial_sae.training.presets": ("BASE", "DEAD_BASE", "MINI_SAES", "RUN1", "sized_for"),
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
    "tutorial_sae.analysis.activation_stats": (
        "ForwardTiming",
        "NeighbourSimilarity",
        "neighbour_similarity",
        "time_forward_to_hook",
    ),
    "tutorial_sae.analysis.sweeps": (
        "DeadFeatureComparison",
        "L1Sweep",
        "comparison_summary",
        "sweep_summary",
        "load_dead_feature_comparison",
        "load_l1_sweep",
        "run_dead_feature_comparison",
        "run_l1_sweep",
    ),
    "tutorial_sae.plots.glue": ("glue", "glue_all"),
    "tutorial_sae.plots.maths": (
        "plot_activations",
        "plot_neuron_weights",
        "plot_shrinkage",
        "plot_superposition",
    ),
    "tutorial_sae.plots.synthetic": (
        "plot_norm_traces",
        "plot_recovery",
        "plot_training_curves",
        "safeguard_table",
    ),
    "tutorial_sae.plots.training": (
        "comparison_table",
        "evaluation_table",
        "l1_widget",
        "metrics_side_by_side",
        "plot_dead_feature_comparison",
        "plot_density_histogram",
        "plot_l1_sweep",
        "plot_training_log",
        "sweep_table",
    ),
    "tutorial_sae.errors": (
        "ERRORS",
        "HubUnavailableError",
        "NonFiniteLossError",
        "errors_markdown",
    ),
    "tutorial_sae.plots.appendix": (
        "model_markdown",
        "provenance_markdown",
        "quality_markdown",
        "quality_summary",
        "saes_markdown",
        "samples_markdown",
    ),
    "tutorial_sae.analysis.features": (
        "exemplar_features",
        "feature_card",
        "feature_stats",
        "final_ln_scale",
        "labelled_eval_tokens",
    ),
    "tutorial_sae.analysis.neighbourhoods": (
        "best_matches",
        "clean_split",
        "completeness",
        "completeness_curve",
        "cosine_neighbours",
        "decoder_directions",
        "encoder_decoder_cosine",
        "encoder_directions",
        "frequency_edges",
        "knn_agreement",
        "load_projections",
        "project",
        "splitting_families",
        "trustworthiness",
    ),
    "tutorial_sae.plots.features": (
        "family_html",
        "feature_card_html",
        "neighbours_html",
        "plot_3d_static",
        "plot_activation_histograms",
        "plot_best_matches",
        "plot_completeness",
        "plot_cosine_histograms",
        "plot_projections",
        "rotating_3d_html",
    ),
    "tutorial_sae.analysis.ablation": (
        "AttributionStudy",
        "ClampStudy",
        "ablation_vs_attribution",
        "attribute",
        "clamp_effects",
        "helpful_removals",
        "spearman",
        "top_k_overlap",
    ),
    "tutorial_sae.analysis.steering": (
        "DoseResponse",
        "continuations",
        "dose_response",
        "find_script_feature",
        "generate_with_sae",
        "script_token_mask",
        "steering_edit",
    ),
    "tutorial_sae.plots.ablation": (
        "clamp_table",
        "continuations_html",
        "plot_activation_vs_effect",
        "plot_attribution_scatter",
        "plot_clamp_effects",
        "plot_dose_response",
        "plot_spearman_curve",
    ),
    "tutorial_sae.analysis.polysemantic": (
        "polysemantic_neurons",
    ),
    "tutorial_sae.analysis.scripts": (
        "CONCEPTS",
        "SCRIPTS",
        "char_scripts",
        "counts_from_labels",
        "heldout_texts",
        "label_tokens",
        "llr_proxy",
        "load_size_comparison",
        "load_token_counts",
        "token_scripts",
    ),
    "tutorial_sae.analysis.specificity": (
        "concept_shares",
        "scan_scripts",
        "summarize",
    ),
    "tutorial_sae.plots.specificity": (
        "plot_neuron_vs_feature",
        "plot_polysemantic",
        "plot_prompt_activations",
        "plot_proxy_histograms",
        "plot_sizes",
        "prompt_table_html",
    ),
    "tutorial_sae.analysis.prompts": (
        "OWN_PROMPTS",
        "PAPER_PROMPTS",
        "mean_by_language",
        "prompt_table",
        "shared_feature",
    ),
    "tutorial_sae.models.saelens": ("SAELensSAE", "export_saelens", "import_saelens"),
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
