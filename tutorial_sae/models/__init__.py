"""Layer models: the mini model and the loaders of models, SAEs and tokens (imports data and below)."""
