"""Layer data: the offline corpus, token windows, hub access and activations (imports core and below)."""
