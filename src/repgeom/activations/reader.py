"""Reading activation shards: :func:`load_layer`, :func:`iter_layers`, :func:`check_shard`.

Needs neither torch nor transformers. Refuses incomplete shards, shards whose attributes do not match
``expect`` and shards whose checksum fails, with :class:`repgeom.artifacts.ArtifactError`. A single shard's rows
are read straight from the file and hashed while read (:mod:`.rowread`: xxh3 where a shard has it, and a file
this process verified already is not hashed again); a gathered shard is read from its part files, each checked
and verified (:mod:`.gathered`); the attribute checks and the ids are :mod:`.shardfile`'s.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..artifacts import ArtifactError
from .gathered import _open_part, _part_files, _read_gathered
from .layout import CHUNK_ROWS, SHARED_ATTRS, _RowSha, checksum_key, list_layers, shard_path
from .rowread import _read_verified
from .shardfile import _check_ids, _check_open, _open, _read_ids

if TYPE_CHECKING:
    from numpy.typing import DTypeLike


def _read_rows_and_ids(
    ds, ids_ds, path: Path, attrs: Mapping[str, Any], verify: bool, dtype: DTypeLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, ids)`` of an opened shard, single or gathered over row-parts, each checked; the rows in ``dtype``
    (default: as stored), cast block by block as they are read."""
    ids = _read_ids(ids_ds, path, attrs, verify)
    if "parts" in attrs:
        return _read_gathered(path, attrs, ds.shape, ds.dtype, verify, path, dtype), ids
    return _read_verified(ds, path, attrs, verify, dtype=dtype), ids


def check_shard(
    path: str | os.PathLike,
    expect: Mapping[str, Any] | None = None,
    verify: bool = True,
    _label: str | os.PathLike | None = None,
) -> dict:
    """Check one shard without keeping its data: complete, kind, ``expect``, shapes and (``verify``) checksums.

    Returns the attributes; raises :class:`ArtifactError` otherwise.
    """
    path = Path(path)
    label = _label or path
    with _open(path) as f:
        try:
            attrs, ds, ids_ds = _check_open(f, label, expect)
            _check_ids(ids_ds, label, attrs, verify)
            if "parts" in attrs:
                for part, entry in _part_files(path, attrs):
                    pf, pattrs, pds = _open_part(part, entry, label)  # opened once: checked, then verified
                    with pf:
                        if verify:
                            _check_ids(pf["ids"], part, pattrs, True)
                            _verify_rows(pds, pattrs, part)
            elif verify:
                _verify_rows(ds, attrs, label)
        except ArtifactError:
            raise
        except (OSError, KeyError, ValueError) as e:
            raise ArtifactError(f"{label}: unreadable HDF5 content (corrupt?): {e}") from None
    return attrs


#: bytes of rows :func:`check_shard` hashes at a time (what a writer's own check adds to its peak memory)
VERIFY_BLOCK = 4 << 20


def _verify_rows(ds, attrs: Mapping[str, Any], label) -> None:
    """Hash a shard's rows block by block (nothing kept) against the checksum its attributes record."""
    alg, key = checksum_key(attrs)
    sha = _RowSha(ds.dtype, ds.shape, alg)
    step = max(CHUNK_ROWS, VERIFY_BLOCK // max(1, ds.shape[1] * ds.dtype.itemsize))
    for s in range(0, ds.shape[0], step):
        sha.update(ds[s : s + step])
    if sha.hexdigest() != attrs[key]:
        raise ArtifactError(
            f"{label}: activations do not match their stored checksum (the file is corrupt); delete it and rerun "
            "the workflow"
        )


def load_layer(
    path_or_dir: str | os.PathLike,
    layer: int | None = None,
    expect: Mapping[str, Any] | None = None,
    position: str = "last",
    verify: bool = True,
    dtype: DTypeLike | None = np.float32,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read one shard: ``(X (N, d), ids, attrs)``, refusing incomplete, corrupt or mismatching shards.

    ``path_or_dir`` is a shard file or an extraction's ``outdir`` (then ``layer`` picks the shard).
    ``verify`` checks the checksums of the activations and of the ids (xxh3 where the shard has it);
    the attributes (``complete``, ``kind``, ``expect``, layer, position) and the shapes are always
    checked. ``dtype`` converts ``X`` (``None`` keeps the stored dtype).
    """
    p = Path(path_or_dir)
    if p.is_dir():
        if layer is None:
            raise ValueError("load_layer: a directory needs a layer index")
        p = shard_path(p, layer, position)
    with _open(p) as f:
        try:
            attrs, ds, ids_ds = _check_open(f, p, expect)
            if layer is not None and attrs.get("layer") != int(layer):
                raise ArtifactError(f"{p}: holds layer {attrs.get('layer')}, not {layer}")
            if attrs.get("position") != position:
                raise ArtifactError(f"{p}: holds position {attrs.get('position')!r}, not {position!r}")
            if position == "tokens":
                raise ArtifactError(f"{p}: an all-token shard (one row per token): read it with load_tokens")
            X, ids = _read_rows_and_ids(ds, ids_ds, p, attrs, verify, dtype)
        except ArtifactError:
            raise
        except (OSError, KeyError, ValueError) as e:
            raise ArtifactError(f"{p}: unreadable HDF5 content (corrupt?): {e}") from None
    if dtype is not None and X.dtype != np.dtype(dtype):
        X = X.astype(dtype)
    return X, ids, attrs


def iter_layers(
    outdir: str | os.PathLike,
    layers: Iterable[int] | None = None,
    expect: Mapping[str, Any] | None = None,
    position: str = "last",
    verify: bool = True,
    dtype: DTypeLike | None = np.float32,
) -> Iterator[tuple[int, np.ndarray, np.ndarray, dict]]:
    """Yield ``(layer, X, ids, attrs)`` for ``layers`` (default: every finished shard), in order.

    Beyond ``expect``, every shard must share :data:`.layout.SHARED_ATTRS` with the first one read (same run:
    model, texts, ids, pooling), so shards of different runs are never mixed.
    """
    outdir = Path(outdir)
    todo = list_layers(outdir, position) if layers is None else [int(L) for L in layers]
    if not todo:
        raise ArtifactError(f"{outdir}: no activation shards for position {position!r}")
    want = dict(expect or {})
    for L in todo:
        X, ids, attrs = load_layer(outdir, L, want, position, verify, dtype)
        for k in SHARED_ATTRS:
            want.setdefault(k, attrs.get(k))
        yield L, X, ids, attrs
