"""Per-layer activations of a frozen decoder LM, one HDF5 shard per layer.

For each text, the *residual stream after each transformer block* (the block's output, after its residual add,
before any final norm), taken at the last real token (position ``last``) and optionally averaged over the real
tokens (position ``mean``). Layer ``0`` is the embedding output, ``L >= 1`` the output of block ``L``.

Submodules, one concept each:

``pooling``     the positions a text's vector is read at (:data:`POOLINGS`: ``last`` real token, ``mean`` over
                the real tokens)
``batching``    the one decoder forward path, shared with the ``decoder`` embedding runtime: tokenise, sort by
                length in windows, pad, run the model, pool, restore order (:func:`iter_pooled`); token counts
                (:func:`token_lengths`)
``batch``       one padded batch as the model takes it (:class:`Batch`)
``backoff``     out-of-memory back-off: a batch that does not fit is halved, down to one text
                (:class:`Backoff`, :class:`OutOfMemoryError`)
``blocks``      where a model keeps its transformer blocks (:data:`BLOCK_PATHS`, :func:`find_blocks`,
                :class:`LayersNotFoundError`) and what a layer index means (:func:`resolve_layers`)
``capture``     forward hooks on the blocks that pool their outputs, stopping after the deepest one
                (:func:`iter_batches`, :func:`forward_latents`)
``model``       loading the base model and tokenizer with their provenance (:func:`load_decoder`,
                :func:`model_info`)
``layout``      the shards' file names, format constants, shared attributes and row checksum
                (:func:`shard_path`, :func:`list_layers`)
``writer``      :class:`ShardWriter`: every shard of a run under a temporary name, filled window by window,
                verified, then renamed into place
``extraction``  :func:`extract`, one run in steps: check, load, capture into the writer, verify, summarise;
                :func:`extract_dataset`, the stage: a text set artifact and the stage's typed parameters
``reader``      :func:`load_layer`, :func:`iter_layers`, :func:`check_shard` (need neither torch nor transformers)
``shardfile``   opening one shard, the checks that need no data, and its ids
``rowread``     a shard's rows read straight from the file by their offsets, hashed while read
``gathered``    a gathered shard (row-parts) read from its part files, each checked and verified
``widen``       casting stored rows, block by block, to the dtype a reader asks for (float16 to float32: torch's
                cast where torch is loaded, else a look-up of numpy's)

The names below are exported lazily (:data:`_EXPORTS`, read by :mod:`repgeom.codeversion`): importing the package
imports no submodule, and a wrapper that imports only :func:`load_layer` depends on ``reader`` (and what it
imports) alone. Nothing here imports torch until a model is loaded or run.
"""

from __future__ import annotations

from ..lazy import lazy_exports

#: public name → the submodule that defines it (read by :mod:`repgeom.codeversion` without importing)
_EXPORTS = {
    "POOLINGS": "pooling",
    "POSITIONS": "pooling",
    "pool": "pooling",
    "Batch": "batch",
    "Backoff": "backoff",
    "OutOfMemoryError": "backoff",
    "is_oom": "backoff",
    "iter_pooled": "batching",
    "final_hidden_state": "batching",
    "token_lengths": "batching",
    "tokenize": "batching",
    "pad_id": "batching",
    "BLOCK_PATHS": "blocks",
    "LayersNotFoundError": "blocks",
    "find_blocks": "blocks",
    "resolve_layers": "blocks",
    "layer_meaning": "blocks",
    "iter_batches": "capture",
    "forward_latents": "capture",
    "COMPUTE_DTYPES": "model",
    "load_decoder": "model",
    "model_info": "model",
    "FORMAT_VERSION": "layout",
    "STORE_DTYPES": "layout",
    "CHUNK_ROWS": "layout",
    "SHARED_ATTRS": "layout",
    "shard_path": "layout",
    "list_layers": "layout",
    "ShardWriter": "writer",
    "extract": "extraction",
    "extract_dataset": "extraction",
    "check_shard": "reader",
    "load_layer": "reader",
    "iter_layers": "reader",
    "_FAST_READS": "rowread",
}
_SUBMODULES = (
    "pooling",
    "batch",
    "backoff",
    "batching",
    "blocks",
    "capture",
    "model",
    "layout",
    "writer",
    "extraction",
    "rowread",
    "shardfile",
    "gathered",
    "reader",
)

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
