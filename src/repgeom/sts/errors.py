"""The study's own error (a module of its own, so that the tables' code version does not cover the data loaders)."""

from __future__ import annotations


class STSError(ValueError):
    """The STS inputs do not fit together (missing sentences, mismatched shards)."""
