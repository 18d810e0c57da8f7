"""Serving helpers: the dynamic batcher used by the batching recipe, and how it is measured."""

from dsprof.serving.batcher import PRIORITY_CLASSES, DynamicBatcher

__all__ = ["PRIORITY_CLASSES", "DynamicBatcher"]
