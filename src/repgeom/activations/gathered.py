"""Reading a gathered shard (row-parts, :mod:`.parts`) from its part files.

Each part is checked to be the file the gather recorded and verified; a missing, moved, truncated or foreign part
is refused by name. A part whose size and mtime are those the gather recorded is read from the rows' offset it
recorded (:func:`raw_layout`), without opening it as HDF5 (still verified).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import ArtifactError
from .layout import checksum_key
from .rowread import (
    _FAST_READS,
    _aligned_empty,
    _byte_runs,
    _chunk_infos,
    _hash_blocks,
    _pending_check,
    _read_runs,
    _read_runs_cast,
    _read_verified,
    _run_checks,
)
from .shardfile import _check_open, _open


def _part_files(path: Path, attrs: Mapping[str, Any]) -> list[tuple[Path, dict]]:
    """The part files of a gathered shard (paths relative to its folder) with what the gather recorded."""
    return [(path.parent / e["file"], e) for e in attrs["parts"]]


def _open_part(part: Path, entry: Mapping[str, Any], label) -> tuple[Any, dict, Any]:
    """Open one part of a gathered shard and check it is the very file the gather saw."""
    if not part.exists():
        raise ArtifactError(
            f"{label}: its part {part} (rows {entry['row_start']}–{entry['row_stop']}) is missing (moved or "
            "deleted?); rerun the workflow to remake it"
        )
    f = _open(part)
    try:
        attrs, ds, _ = _check_open(f, part, None)
        alg, key = checksum_key(entry)
        if attrs.get(key) != entry[key] or attrs.get("run_id") != entry["run_id"]:
            raise ArtifactError(
                f"{label}: its part {part} is not the file the gather recorded (another run's part: run "
                f"{attrs.get('run_id')!r}, gathered from {entry['run_id']!r}); rerun the workflow"
            )
        if ds.shape[0] != entry["slot_stop"] - entry["slot_start"]:
            raise ArtifactError(f"{label}: its part {part} holds {ds.shape[0]} rows, not the gathered range")
    except BaseException:
        f.close()
        raise
    return f, attrs, ds


def _read_gathered(path: Path, attrs: Mapping[str, Any], shape, dtype, verify: bool, label, want=None) -> np.ndarray:
    """The (N, d) rows of a gathered shard (stored as ``dtype``; returned as ``want``, default the same), read from
    its part files, each checked (and with ``verify`` its checksum). A part unchanged since the gather (the size and
    mtime it recorded) is read straight from the rows' offset it recorded, without opening it as HDF5; any other
    goes through HDF5 and every identity check. Rows read in their stored dtype go into an array placed so that the
    first part's rows share its file offset's page alignment."""
    checks: list = []
    out = None
    dtype = np.dtype(dtype)
    want = dtype if want is None else np.dtype(want)
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize

    def new_out(file_offset: int) -> np.ndarray:
        return _aligned_empty(shape, dtype, file_offset) if want == dtype else np.empty(shape, want)

    for part, entry in _part_files(path, attrs):
        s0, s1 = entry["slot_start"], entry["slot_stop"]
        raw = _unchanged_raw(part, entry)
        if raw is not None:
            if out is None:
                out = new_out(raw["offset"] - s0 * row_bytes)
            _read_raw_part(part, entry, raw["offset"], out[s0:s1], dtype, verify, checks)
            continue
        f, pattrs, ds = _open_part(part, entry, label)
        with f:
            infos = _chunk_infos(ds)
            if out is None:
                out = new_out((infos[0].byte_offset - s0 * row_bytes) if infos else 0)
            _read_verified(ds, part, pattrs, verify, out[s0:s1], checks, infos)
    _run_checks(checks)
    return new_out(0) if out is None else out


def raw_layout(path: str | os.PathLike) -> dict | None:
    """Where a shard's rows lie in its file, recorded by a gather for each part: ``{"offset", "size",
    "mtime_ns"}`` when the rows are one unfiltered run of whole-row chunks in row order, else ``None``."""
    path = Path(path)
    with _open(path) as f:
        infos = _chunk_infos(f["activations"])
        if not infos or any(b.byte_offset != a.byte_offset + a.size for a, b in zip(infos, infos[1:])):
            return None
        offset = int(infos[0].byte_offset)
    st = path.stat()
    return {"offset": offset, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _unchanged_raw(part: Path, entry: Mapping[str, Any]) -> dict | None:
    """The part's recorded raw layout when the file still has the size and mtime the gather saw, else ``None``
    (then the part is opened as HDF5 and checked in full, which names a missing or replaced one)."""
    raw = entry.get("raw")
    if not raw:
        return None
    try:
        st = part.stat()
    except OSError:
        return None
    return raw if (st.st_size, st.st_mtime_ns) == (raw["size"], raw["mtime_ns"]) else None


def _read_raw_part(
    part: Path, entry: Mapping[str, Any], offset: int, out: np.ndarray, stored, verify: bool, checks: list
):
    """Fill ``out`` with a part's rows (stored as ``stored``) from ``offset`` of its file; with ``verify`` its
    checksum (the one the gather recorded) is queued on ``checks``, unless this process verified the unchanged file
    already."""
    digest, futures, pending = _pending_check(part, entry, verify, stored, out.shape)
    runs = _byte_runs([(offset, 0, out.shape[0])], out, np.dtype(stored).itemsize)
    with open(part, "rb", buffering=0) as fh:
        if out.dtype == stored:
            _read_runs(fh, runs, out, part, _hash_blocks(digest, out, futures))
        else:
            _read_runs_cast(fh, runs, out, stored, part, digest)
    _FAST_READS[0] += 1
    checks.extend(pending)
