"""Layer training: the trainer, checkpoints, dead-feature remedies and presets (imports models and below)."""
