"""What goes wrong with a corpus: one error type, naming the file, line and fix."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset cannot be obtained or a row is malformed; the message names file and line.

    ``retryable``: True when the network failed (a download or a hub that did not answer), which a later try may
    pass; False when a retry cannot change it; None (the default) leaves it to :func:`repgeom.retry.deterministic`
    (a ``ValueError``: deterministic, unless raised from a network or filesystem error)."""

    def __init__(self, *args: object, retryable: bool | None = None):
        super().__init__(*args)
        self.retryable = retryable
