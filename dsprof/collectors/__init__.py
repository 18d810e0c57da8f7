"""dsprof.collectors."""
