"""dsprof.kernels."""
