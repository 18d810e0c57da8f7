"""dsprof.dashboard."""
