"""Out-of-memory back-off: a batch that does not fit is halved and run in two, down to one text, and the largest
batch that fitted caps the batches after it. Each halving is logged and recorded for the artifact's provenance;
one text that does not fit fails with a message naming the model, the batch and what the device could not give.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .batch import Batch

log = logging.getLogger(__name__)


class OutOfMemoryError(RuntimeError):
    """Even one text does not fit on the device."""


def is_oom(e: BaseException) -> bool:
    """Whether ``e`` is the device running out of memory (CUDA, MPS or a CPU allocator)."""
    import torch

    if isinstance(e, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(e, RuntimeError) and "out of memory" in str(e).lower()


def split_batch(batch: Batch, k: int) -> tuple[Batch, Batch]:
    """The first ``k`` rows of a batch and the rest (padding kept as it was)."""

    def cut(sl: slice) -> Batch:
        inputs = {
            n: v[sl] if hasattr(v, "shape") and v.shape[:1] == batch.mask.shape[:1] else v
            for n, v in batch.inputs.items()
        }
        return replace(
            batch,
            rows=batch.rows[sl],
            inputs=inputs,
            mask=batch.mask[sl],
            last=batch.last[sl],
            pool_mask=batch.pool_mask[sl],
        )

    return cut(slice(0, k)), cut(slice(k, None))


@dataclass
class Backoff:
    """Runs ``read(model, batch, positions)`` with the back-off; ``events`` (batch size asked → size that fits) go
    into provenance."""

    model_name: str = ""
    limit: int | None = None  # the largest batch known to fit, once one did not
    events: list[dict] = field(default_factory=list)

    def __call__(self, read: Callable[..., dict], model: Any, batch: Batch, positions: Sequence[str]) -> dict:
        n = len(batch.rows)
        if self.limit is not None and n > self.limit:
            head, tail = split_batch(batch, self.limit)
            return _join(self(read, model, head, positions), self(read, model, tail, positions))
        try:
            return read(model, batch, positions)
        except Exception as e:  # noqa: BLE001 - only the out-of-memory kinds are handled, the rest re-raised
            if not is_oom(e):
                raise
            _free_cache()
            if n == 1:
                raise OutOfMemoryError(
                    f"model {self.model_name!r}: one text of {int(batch.mask.shape[1])} tokens does not fit on the "
                    f"device after halving the batch down to 1; the device said: {e}. Lower max_length, use a "
                    "smaller dtype, or give the job a larger device"
                ) from e
            self.limit = n // 2
            self.events.append({"batch": n, "to": self.limit, "tokens": int(batch.mask.shape[1])})
            log.warning(
                "model %s: out of memory on a batch of %d texts × %d tokens; halving to %d and going on",
                self.model_name,
                n,
                int(batch.mask.shape[1]),
                self.limit,
            )
            head, tail = split_batch(batch, self.limit)
            return _join(self(read, model, head, positions), self(read, model, tail, positions))


def _join(a: dict, b: dict) -> dict:
    import torch

    return {p: torch.cat([a[p], b[p]]) for p in a}


def _free_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
