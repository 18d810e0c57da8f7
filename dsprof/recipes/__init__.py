"""Optimization recipes for `dsprof fix`: one module per recipe and an explicit registry.

The parent process reads `dsprof.recipes.registry` (no torch needed to list or judge recipes);
the trial child calls `dsprof.recipes.trial.install`. `session.run_fix` runs a whole fix session.
"""
