"""Layer plots: figures, tables, widgets and glue (imports analysis and below, never training or build)."""
