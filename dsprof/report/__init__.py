"""dsprof.report."""
