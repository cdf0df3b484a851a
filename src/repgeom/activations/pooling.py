"""Pooling positions: how one vector per text is read from a batch of hidden states.

:data:`POOLINGS` maps each position a shard or an embedding can hold to its function; both the activation capture
and the ``decoder`` embedding runtime pool through :func:`pool`, so a position means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..registry import Registry

if TYPE_CHECKING:
    import torch

#: pooling position → ``pool(hidden (B, T, d), attention_mask (B, T), last (B,)) -> (B, d) float32``
POOLINGS: Registry[Callable] = Registry("pooling position")


@POOLINGS.register("last")
def pool_last(h: torch.Tensor, mask: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """The hidden state at the last real token (``last`` holds its index per row)."""
    import torch

    return h[torch.arange(h.shape[0], device=h.device), last].float()


@POOLINGS.register("mean")
def pool_mean(h: torch.Tensor, mask: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """The mean over the real tokens, summed in float32."""
    import torch

    m = mask.unsqueeze(-1).bool()
    # where, not multiply: padded rows may hold NaN (fully masked attention rows)
    return torch.where(m, h, 0).sum(1, dtype=torch.float32) / mask.sum(1, keepdim=True).float()


@POOLINGS.register("tokens")
def pool_tokens(h: torch.Tensor, mask: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Every real token's state, row by row in their order: (number of real tokens, d) (:mod:`.tokens`)."""
    return h[mask.bool()].float()


POSITIONS = tuple(POOLINGS)


def pool(h: torch.Tensor, mask: torch.Tensor, last: torch.Tensor, positions: Sequence[str]) -> dict[str, Any]:
    """``{position: (B, d) float32 tensor}`` of the hidden states ``h`` (B, T, d) for each of ``positions``."""
    return {p: POOLINGS[p](h, mask, last) for p in positions}
