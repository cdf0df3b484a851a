"""The residual stream after each block, captured by forward hooks during the shared forward pass.

The representation (as in "FREEZE! Pretrained Language Models as Frozen Feature Extractors"): the output of
each transformer block (after its residual add, before any final norm), not ``hidden_states[-1]``, which has
the final norm applied. Hooks on the blocks of the base model (``AutoModel``; no LM head ever runs) pool it
per batch (:mod:`.pooling`); only the blocks up to the deepest requested layer run: the hook on that
block raises a private exception that stops the forward pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .backoff import Backoff
from .batch import Batch
from .batching import iter_pooled, token_lengths
from .blocks import find_blocks, resolve_layers
from .pooling import pool

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase


class _StopForward(Exception):
    """Raised by the deepest hook to end the forward pass early (never escapes this module)."""


class _Capture:
    """Forward hooks that pool the requested layers' residual stream per batch."""

    def __init__(self, blocks, layers: Sequence[int], positions: Sequence[str]):
        self.blocks, self.layers, self.positions = blocks, list(layers), list(positions)
        self.deepest = max(self.layers)
        self.handles: list = []
        self.got: dict[int, dict[str, Any]] = {}
        self.mask = self.last = None

    def __enter__(self):
        if 0 in self.layers:
            self.handles.append(self.blocks[0].register_forward_pre_hook(self._pre_hook, with_kwargs=True))
        for L in self.layers:
            if L > 0:
                self.handles.append(self.blocks[L - 1].register_forward_hook(self._make_hook(L)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles.clear()
        return False

    def _pool(self, layer: int, h) -> None:
        self.got[layer] = pool(h, self.mask, self.last, self.positions)
        if layer == self.deepest:
            raise _StopForward

    def _pre_hook(self, module, args, kwargs):
        h = args[0] if args else kwargs["hidden_states"]
        self._pool(0, h)

    def _make_hook(self, layer: int):
        def hook(module, args, output):
            h = output[0] if isinstance(output, (tuple, list)) else output
            self._pool(layer, h)

        return hook

    def __call__(self, model, batch: Batch, positions: Sequence[str]) -> dict[str, Any]:
        """One forward pass (a ``read`` of :func:`.batching.iter_pooled`): ``{position: (B, n_layers, d) float32}``."""
        import torch

        self.got, self.mask, self.last = {}, batch.pool_mask, batch.last
        try:
            model(**batch.inputs)
        except _StopForward:
            pass
        missing = [L for L in self.layers if L not in self.got]
        if missing:
            raise RuntimeError(
                f"hooks on layers {missing} never fired: the model's forward does not call its "
                "blocks as the module list found by find_blocks"
            )
        return {p: torch.stack([self.got[L][p] for L in self.layers], dim=1) for p in self.positions}


def iter_batches(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    layers: Sequence[int],
    positions: Sequence[str] = ("last",),
    batch_size: int = 16,
    max_length: int = 512,
    padding_side: str = "right",
    sort_window: int = 1024,
    blocks: torch.nn.ModuleList | None = None,
    backoff: Backoff | None = None,
    spans: np.ndarray | None = None,
) -> Iterator[tuple[int, int, np.ndarray, dict[str, np.ndarray]]]:
    """Run the model over ``texts``; yield ``(w0, w1, rows, {position: (B, n_layers, d) float32})``.

    ``layers`` are resolved indices (see :func:`.blocks.resolve_layers`); ``rows`` are original indices,
    all inside the window ``[w0, w1)``. Every batch of a window is yielded before the next window
    starts. Batching, padding and pooling are :func:`.batching.iter_pooled`'s (``spans``: each text's token range a
    ``mean`` reads); runs under ``torch.inference_mode``.
    """
    if blocks is None:
        blocks = find_blocks(model)[1]
    with _Capture(blocks, layers, positions) as cap:
        for w0, w1, rows, res in iter_pooled(
            model,
            tokenizer,
            texts,
            positions=positions,
            read=cap,
            batch_size=batch_size,
            max_length=max_length,
            padding_side=padding_side,
            sort_window=sort_window,
            backoff=backoff,
            spans=spans,
        ):
            yield w0, w1, rows, {p: v.cpu().numpy() for p, v in res.items()}


def forward_latents(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    layers: Iterable[int] | None = None,
    position: str = "last",
    include_embeddings: bool = False,
    batch_size: int = 16,
    max_length: int = 512,
    padding_side: str = "right",
    sort_window: int = 1024,
) -> np.ndarray:
    """In-memory extraction: ``(N, n_layers, d)`` float32, layers as :func:`.blocks.resolve_layers` orders them.

    The same hooks, batching and pooling as :func:`.writer.extract`, without any file; for tests, benchmarks
    and small inputs.
    """
    _, blocks = find_blocks(model)
    sel = resolve_layers(len(blocks), layers, include_embeddings)
    token_lengths(tokenizer, texts)
    out = None
    for _, _, rows, res in iter_batches(
        model,
        tokenizer,
        texts,
        layers=sel,
        positions=(position,),
        batch_size=batch_size,
        max_length=max_length,
        padding_side=padding_side,
        sort_window=sort_window,
        blocks=blocks,
    ):
        v = res[position]
        if out is None:
            out = np.zeros((len(texts), v.shape[1], v.shape[2]), dtype=np.float32)
        out[rows] = v
    if out is None:
        raise ValueError("forward_latents: no texts")
    return out
