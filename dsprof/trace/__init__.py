"""dsprof.trace."""
