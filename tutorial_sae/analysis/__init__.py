"""Layer analysis: evaluation, interventions and one module per chapter (imports training and below)."""
