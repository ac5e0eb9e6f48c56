"""Layer core: the SAE, its loss and fast step, metrics, synthetic data (imports only utils, paths, errors)."""
