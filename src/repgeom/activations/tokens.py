"""All tokens, as an option: ``positions: [tokens]`` stores every real token's residual, for SAE and token-probing
work, in ``tokens/layer_{LL}.h5`` beside the pooled shards.

Each such shard holds ``activations`` (T, d), every real token (after truncation) of every text, appended batch by
batch (the order the length-sorted batches ran in: memory stays bounded by the batch, not by the text set);
``token_ids`` (T,) the tokens' ids; ``row_start`` (N,) int64 where text i's tokens begin and ``n_tokens`` (N,)
how many, so text i's tokens are ``activations[row_start[i] : row_start[i] + n_tokens[i]]`` in their order;
``ids`` (N,) as in every shard. The size is announced before the job writes anything
(:func:`announce`: texts × tokens × layers × width × bytes) and a run above the cap (``activations.max_token_gb``)
is refused, naming the numbers. :func:`load_tokens` reads one layer.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..artifacts import ArtifactError
from .layout import CHUNK_ROWS, _RowSha

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

log = logging.getLogger(__name__)

TOKENS = "tokens"


def announce(n_tokens: np.ndarray, n_layers: int, d: int, store_dtype: str, cap_gb: float | None, model: str) -> float:
    """Log the all-token shards' size before anything is written; refuse it above ``cap_gb``. Returns GB."""
    total = int(n_tokens.sum())
    gb = total * n_layers * d * np.dtype(store_dtype).itemsize / 1e9
    log.info(
        "model %s: all tokens: %d texts, %d tokens (mean %.1f per text) × %d layers × %d × %d bytes (%s) = %.3f GB",
        model,
        len(n_tokens),
        total,
        total / max(1, len(n_tokens)),
        n_layers,
        d,
        np.dtype(store_dtype).itemsize,
        store_dtype,
        gb,
    )
    if cap_gb is not None and gb > cap_gb:
        raise ValueError(
            f"model {model}: the all-token shards would take {gb:.2f} GB ({total} tokens of {len(n_tokens)} texts × "
            f"{n_layers} layers × {d} × {np.dtype(store_dtype).itemsize} bytes), over activations.max_token_gb = "
            f"{cap_gb}; raise the cap, or ask for fewer layers, a smaller max_length or store_dtype float16"
        )
    return gb


class TokenShards:
    """The ``tokens`` shards of one run (one per layer), appended batch by batch; owned by the
    :class:`.writer.ShardWriter`, which opens, finishes, verifies and renames them with the others."""

    def __init__(self, files: dict[int, Any], layers: Sequence[int], n_tokens: np.ndarray, d: int, store, tokenize):
        self.layers, self.files, self.store = list(layers), files, np.dtype(store)
        total = int(n_tokens.sum())
        self.total, self.n_tokens, self.tokenize = total, n_tokens, tokenize
        self.row_start = np.zeros(len(n_tokens), dtype=np.int64)
        self.token_ids = np.zeros(total, dtype=np.int32)
        self.cursor = 0
        self.dsets = {
            L: f.create_dataset(
                "activations", shape=(total, d), dtype=self.store, chunks=(min(CHUNK_ROWS * 4, total), d)
            )
            for L, f in files.items()
        }
        self.shas: dict[int, dict[str, _RowSha]] = {}
        self.nonfinite = {L: 0 for L in self.layers}

    def add(self, rows: np.ndarray, vecs: np.ndarray) -> None:
        """One batch: ``vecs`` (tokens of ``rows`` in order, n_layers, d), appended."""
        k = len(vecs)
        counts = self.n_tokens[rows]
        if k != int(counts.sum()):
            raise RuntimeError(f"a batch gave {k} token states for {int(counts.sum())} real tokens")
        c0 = self.cursor
        self.row_start[rows] = c0 + np.concatenate([[0], np.cumsum(counts)[:-1]])
        ids = self.tokenize(rows)
        self.token_ids[c0 : c0 + k] = np.concatenate([np.asarray(t[:n], dtype=np.int32) for t, n in zip(ids, counts)])
        for i, L in enumerate(self.layers):
            block = vecs[:, i].astype(self.store)
            self.dsets[L][c0 : c0 + k] = block
            self.nonfinite[L] += int((~np.isfinite(block)).any(axis=1).sum())
            for h in self.shas[L].values():
                h.update(block)
        self.cursor += k

    def finish(self) -> None:
        """The index datasets, once every batch is in."""
        if self.cursor != self.total:
            raise RuntimeError(f"{self.cursor} token states written, {self.total} expected")
        for f in self.files.values():
            f.create_dataset("token_ids", data=self.token_ids)
            f.create_dataset("row_start", data=self.row_start)


@dataclass
class TokenLayer:
    """One layer's all-token shard, read: text i's tokens are ``X[row_start[i] : row_start[i] + n_tokens[i]]``."""

    X: np.ndarray  # (T, d)
    token_ids: np.ndarray  # (T,)
    row_start: np.ndarray  # (N,)
    n_tokens: np.ndarray  # (N,)
    ids: np.ndarray  # (N,)
    attrs: dict

    def text(self, i: int) -> np.ndarray:
        s = int(self.row_start[i])
        return self.X[s : s + int(self.n_tokens[i])]


def load_tokens(
    outdir: str | os.PathLike,
    layer: int,
    expect: dict | None = None,
    verify: bool = True,
    dtype: DTypeLike | None = None,
) -> TokenLayer:
    """Read one layer's all-token shard, checked as every shard is (complete, provenance, checksums).

    ``dtype`` (e.g. ``np.float32``) casts the token states block by block as they are read, as
    :func:`~repgeom.activations.reader.load_layer` does, with no copy in the stored dtype; the default ``None``
    keeps the stored dtype (``load_layer`` defaults to float32; an all-token store is often the biggest array a
    run holds, so doubling it is left to the caller)."""
    from .layout import shard_path
    from .reader import _read_rows_and_ids
    from .shardfile import _check_open, _open

    p = Path(outdir)
    p = shard_path(p, layer, TOKENS) if p.is_dir() else p
    with _open(p) as f:
        try:
            attrs, ds, ids_ds = _check_open(f, p, expect)
            if attrs.get("position") != TOKENS or attrs.get("layer") != int(layer):
                raise ArtifactError(f"{p}: holds {attrs.get('position')!r} of layer {attrs.get('layer')}")
            X, ids = _read_rows_and_ids(ds, ids_ds, p, attrs, verify, dtype)  # single or gathered over row-parts
            out = TokenLayer(X, f["token_ids"][()], f["row_start"][()], f["n_tokens"][()], ids, attrs)
        except ArtifactError:
            raise
        except (OSError, KeyError, ValueError) as e:
            raise ArtifactError(f"{p}: unreadable HDF5 content (corrupt?): {e}") from None
    if out.row_start.shape != out.n_tokens.shape or int(out.n_tokens.sum()) != X.shape[0]:
        raise ArtifactError(f"{p}: row_start / n_tokens do not cover the {X.shape[0]} token states (corrupt?)")
    return out
