"""The merging study's one error type."""

from __future__ import annotations


class MergeError(ValueError):
    """The inputs of a merge do not fit together (other base, other shapes, missing checkpoints)."""
