"""Writing activation shards: :class:`ShardWriter`, one HDF5 file per requested layer and position.

Each shard holds ``activations`` (N, d) float16/float32, chunked (256, d), optional gzip/lzf; ``ids`` (N,)
fixed-length UTF-8 strings; ``n_tokens`` (N,) int32 (tokens used, after truncation) and the provenance as
attributes (see :func:`.extraction.extract`), including ``sha256_activations``
(:func:`repgeom.artifacts.array_sha256` of the dataset), ``xxh3_activations`` beside it (both computed while
writing) and ``ids_sha256`` (:func:`repgeom.artifacts.texts_sha256` of the ids). Before the rename each shard is
re-read and checked as readers check it (by the xxh3 where ``xxhash`` is installed). Every attribute is also
stored once more, all together, as the JSON attribute ``provenance``, which the readers use; ``complete`` is
written last, on its own.

Memory is bounded by the window, not by N: all shards are opened at the start under temporary names beside
their final names (via :func:`repgeom.artifacts.atomic_path`), each finished window's rows are written into
them (:class:`ShardWriter`), and only when every shard is written, closed and verified are they renamed into
place. On any exception the temporary files are removed; a SIGKILL leaves only dot-files that no reader globs
for (the next run removes them; one writer per ``outdir`` is assumed).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import atomic_path, attr_value, json_default, now_iso
from .blocks import layer_meaning
from .layout import CHUNK_ROWS, FAST_CHECKSUM, _RowSha, _sha_array, have_fast_checksum, shard_path
from .reader import check_shard
from .tokens import TOKENS, TokenShards

log = logging.getLogger(__name__)

#: attributes :meth:`ShardWriter.verify` checks on every temporary before the renames
_VERIFIED = ("model_fingerprint", "texts_sha256", "ids_sha256", "n", "d", "run_id")


class ShardWriter:
    """The temporaries of one run, one per ``(position, layer)``, filled window by window, then verified.

    Files are entered into ``stack``: leaving it renames them into place (after :meth:`finish` and
    :meth:`verify`) or, on an exception, removes them.
    """

    def __init__(
        self,
        stack: contextlib.ExitStack,
        outdir: Path,
        positions: Sequence[str],
        layers: Sequence[int],
        shape: tuple[int, int],
        store_dtype: str,
        compression: str | None,
        ids_bytes: np.ndarray,
        n_tokens: np.ndarray,
        window_rows: int,
        tokenize_rows=None,
    ):
        import h5py

        n, d = shape
        self.layers, self.store = list(layers), np.dtype(store_dtype)
        self.keys = [(p, L) for p in positions for L in self.layers]
        comp = (
            {"compression": compression, "compression_opts": 4 if compression == "gzip" else None}
            if compression
            else {}
        )
        self.tmps, self.files, self.dsets, self.shas = {}, {}, {}, {}
        self.ids_xxh3 = None  # the raw ids bytes' xxh3 (readers check the ids by it, without decoding first)
        algs = ("sha256", FAST_CHECKSUM) if have_fast_checksum() else ("sha256",)
        for key in self.keys:
            final = shard_path(outdir, key[1], key[0])
            self.tmps[key] = (final, stack.enter_context(atomic_path(final)))
            # no chunk cache: whole chunks are written window by window (HDF5 2's default 8 MiB cache per
            # file would hold ~8 MiB of every shard in memory for the whole run); no file lock: the file is this
            # job's own unique dot-named temporary, opened by no one else before its rename, and NFS/Lustre
            # mounts without locks refuse them (ENOLCK/ENOSYS)
            f = h5py.File(self.tmps[key][1], "w", libver="latest", rdcc_nbytes=0, locking=False)
            stack.callback(f.close)  # runs before atomic_path's cleanup (LIFO)
            self.files[key] = f
            if key[0] != TOKENS:  # an all-token shard's rows are tokens: TokenShards makes its dataset
                self.dsets[key] = f.create_dataset(
                    "activations", shape=(n, d), dtype=self.store, chunks=(min(CHUNK_ROWS, n), d), **comp
                )
            f.create_dataset("ids", data=ids_bytes)
            if FAST_CHECKSUM in algs:
                self.ids_xxh3 = _sha_array(ids_bytes, FAST_CHECKSUM)
            f.create_dataset("n_tokens", data=n_tokens)
            rows = int(n_tokens.sum()) if key[0] == TOKENS else n
            self.shas[key] = {alg: _RowSha(self.store, (rows, d), alg) for alg in algs}
        pooled = [p for p in positions if p != TOKENS]
        self.bufs = {p: np.zeros((len(self.layers), window_rows, d), dtype=self.store) for p in pooled}
        self.tokens = None
        if TOKENS in positions:
            files = {L: self.files[(TOKENS, L)] for L in self.layers}
            self.tokens = TokenShards(files, self.layers, n_tokens, d, self.store, tokenize_rows)
            self.tokens.shas = {L: self.shas[(TOKENS, L)] for L in self.layers}
        self.nonfinite = {key: 0 for key in self.keys}
        self.window: tuple[int, int] | None = None

    def add(self, w0: int, w1: int, rows: np.ndarray, res: Mapping[str, np.ndarray]) -> None:
        """Buffer one batch (``{position: (B, n_layers, d)}`` at ``rows`` of the window ``[w0, w1)``); a batch of
        the next window first writes the buffered one."""
        if self.window is not None and self.window != (w0, w1):
            self._flush(*self.window)
        self.window = (w0, w1)
        if self.tokens is not None:
            self.tokens.add(rows, res[TOKENS])
        for p, buf in self.bufs.items():
            buf[:, rows - w0] = res[p].transpose(1, 0, 2)  # cast to the storage dtype here

    def flush(self) -> None:
        """Write the buffered window (the last one, once every batch is added)."""
        self._flush(*self.window)

    def _flush(self, w0: int, w1: int) -> None:
        for (p, L), ds in self.dsets.items():
            rows = self.bufs[p][self.layers.index(L), : w1 - w0]
            ds[w0:w1] = rows
            for h in self.shas[(p, L)].values():
                h.update(rows)
            self.nonfinite[(p, L)] += int((~np.isfinite(rows)).any(axis=1).sum())

    def finish(self, base_attrs: Mapping[str, Any], timing: Mapping[str, float]) -> None:
        """Write every shard's attributes, its ``provenance`` and ``complete``; close."""
        if self.tokens is not None:
            self.tokens.finish()
        for key, f in self.files.items():
            p, L = key
            nf = self.tokens.nonfinite[L] if p == TOKENS else self.nonfinite[key]
            if nf:
                log.warning(
                    "model %s layer %d (%s): %d rows hold NaN/inf (overflow in %s?)",
                    base_attrs["model"],
                    L,
                    p,
                    nf,
                    base_attrs["store_dtype"],
                )
            attrs = {
                **base_attrs,
                "layer": L,
                "layer_meaning": layer_meaning(L),
                "position": p,
                "n_nonfinite_rows": nf,
                **({"n_tokens_total": self.tokens.total} if p == TOKENS else {}),
                **{f"{alg}_activations": h.hexdigest() for alg, h in self.shas[key].items()},
                **({"ids_xxh3": self.ids_xxh3} if self.ids_xxh3 else {}),
                **timing,
                "created": now_iso(),
            }
            for k, v in attrs.items():
                f.attrs[k] = attr_value(v)
            f.attrs["provenance"] = json.dumps(attrs, sort_keys=True, default=json_default)
            f.attrs["complete"] = True
            f.close()

    def verify(self, base_attrs: Mapping[str, Any]) -> None:
        """Re-read every closed temporary (checksums included) before anything gets its final name."""
        for final, tmp in self.tmps.values():
            check_shard(tmp, {k: base_attrs[k] for k in _VERIFIED}, verify=True, _label=final)


def remove_stale_temps(outdir: Path) -> None:
    """Remove the temporaries an interrupted run left in ``outdir`` (one writer per ``outdir`` is assumed)."""
    for d in (outdir, outdir / "mean"):
        if d.is_dir():
            for p in d.glob(".layer_*.h5.*.tmp"):
                with contextlib.suppress(OSError):
                    p.unlink()
                    log.info("removed a temporary file left by an interrupted run: %s", p)
