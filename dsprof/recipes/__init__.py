"""dsprof.recipes."""
