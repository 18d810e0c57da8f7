"""dsprof.serving."""
