"""dsprof.runner."""
