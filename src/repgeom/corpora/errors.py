"""What goes wrong with a corpus: one error type, naming the file, line and fix."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset cannot be obtained or a row is malformed; the message names file and line."""
