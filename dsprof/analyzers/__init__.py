"""dsprof.analyzers."""
