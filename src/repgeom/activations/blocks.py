"""Where a decoder keeps its transformer blocks, and what a layer index means.

Layer indices: ``0`` is the embedding output (the input of block 1); ``L >= 1`` the residual stream after block
``L`` (1-based), ``L = 1 .. n_blocks``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

#: attribute paths (from the model ``AutoModel`` returns) searched, in order, for the list of blocks
BLOCK_PATHS = (
    "layers",  # Llama, Mistral, Qwen2, Gemma, Phi, GPT-NeoX base models
    "model.layers",  # *ForCausalLM wrappers
    "h",  # GPT-2, GPT-J, Falcon, Bloom base models
    "transformer.h",
    "gpt_neox.layers",
    "decoder.layers",  # OPT base model
    "model.decoder.layers",
    "blocks",  # MPT
    "transformer.blocks",
    "transformer.layers",
    "language_model.layers",  # multimodal wrappers
    "model.language_model.layers",
    "language_model.model.layers",
)


class LayersNotFoundError(ValueError):
    """The model's transformer blocks are not at any attribute path :data:`BLOCK_PATHS` knows."""


def find_blocks(model: torch.nn.Module, name: str | None = None, paths: Sequence[str] = BLOCK_PATHS) -> tuple[str, Any]:
    """Return ``(attribute_path, blocks)`` for the model's list of transformer blocks.

    ``blocks`` is the first non-empty ``torch.nn.ModuleList`` found at one of ``paths``.
    Raises :class:`LayersNotFoundError` naming the model and every path looked for.
    """
    import torch

    for p in paths:
        obj = model
        for part in p.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList) and len(obj) > 0:
            return p, obj
    cfg = getattr(model, "config", None)
    who = name or getattr(cfg, "_name_or_path", None) or type(model).__name__
    raise LayersNotFoundError(
        f"model {who!r} ({type(model).__name__}): cannot find its transformer blocks; looked for a non-empty "
        f"ModuleList at: {', '.join(paths)}. Activation extraction supports decoder LMs whose base model "
        "exposes its blocks at one of these paths (add the path to repgeom.activations.BLOCK_PATHS)."
    )


def resolve_layers(n_blocks: int, layers: Iterable[int] | None = None, include_embeddings: bool = False) -> list[int]:
    """Sorted unique layer indices: ``0`` = embedding output, ``1..n_blocks`` = after block L.

    ``None`` means every block; negative indices count from the last block (``-1`` = ``n_blocks``).
    """
    if layers is None:
        out = set(range(1, n_blocks + 1))
    else:
        out = set()
        for L in layers:
            if isinstance(L, bool) or not isinstance(L, (int, np.integer)):
                raise ValueError(f"layers: {L!r} is not an integer")
            L = int(L)
            L2 = n_blocks + 1 + L if L < 0 else L
            if not 0 <= L2 <= n_blocks:
                raise ValueError(
                    f"layers: {L} is out of range for a model with {n_blocks} blocks "
                    f"(0 = embedding output, 1..{n_blocks} = after block L, -1 = last)"
                )
            out.add(L2)
    if include_embeddings:
        out.add(0)
    if not out:
        raise ValueError("layers: no layer requested")
    return sorted(out)


def layer_meaning(layer: int) -> str:
    """What layer index ``layer`` holds, in words (stored with every shard)."""
    return "embedding output" if layer == 0 else f"residual stream after block {layer} (1-based)"
