"""Reading activation shards: :func:`load_layer`, :func:`iter_layers`, :func:`check_shard`.

Needs neither torch nor transformers. Refuses incomplete shards, shards whose attributes do not match
``expect`` and shards whose checksum fails, with :class:`repgeom.artifacts.ArtifactError`. A gathered shard
(row-parts, :mod:`.parts`) is read from its part files, each checked to be the file the gather recorded and
verified; a missing, moved, truncated or foreign part is refused by name. A part whose size and mtime are those
the gather recorded is read from the rows' offset it recorded, without opening it as HDF5 (still verified).
Checksums: xxh3 where a shard has it, and a file this process verified already (same inode, size and mtime) is
not hashed again. The attributes come from the one JSON attribute ``provenance`` (one read instead of ~35);
unfiltered row chunks are read straight from the file by their offsets (:func:`_read_activations`, counted in
:data:`_FAST_READS`) into an array at their offset's page alignment (:func:`_aligned_empty`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..artifacts import ArtifactError, check_expected, decode_attr, h5_attrs, texts_sha256
from .layout import CHUNK_ROWS, SHARED_ATTRS, _RowSha, _sha_array, checksum_key, list_layers, shard_path

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

_FAST_READS = [0]  # how many reads took the direct path (for tests)
#: files this process has verified: (path, inode, size, mtime) → the digest checked; a file changed since (new
#: inode, size or mtime) is verified again
_VERIFIED: dict[tuple, str] = {}
#: ids this process decoded and verified, by a digest of their raw bytes (the last few runs' ids)
_IDS: OrderedDict[tuple, tuple[str, np.ndarray]] = OrderedDict()
_IDS_KEEP = 4


def _file_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


def _read_verified(
    ds, path: Path, attrs: Mapping[str, Any], verify: bool, out: np.ndarray | None = None, checks=None, infos=None
):
    """The activations of ``ds`` (into ``out`` where given), checked against their stored checksum (xxh3 where the
    shard has it) while they are read, unless ``verify`` is off or this process verified the unchanged file.
    With a ``checks`` list the check is appended to it, to be run (:func:`_run_checks`) once later reads are under
    way, so that hashing one file's last block overlaps reading the next file."""
    digest, pending = _pending_check(path, attrs, verify, ds.dtype, ds.shape)
    X = _read_activations(ds, path, out, digest, pending[0][0] if pending else None, infos)
    if pending:
        if checks is None:
            _run_checks(pending)
        else:
            checks.extend(pending)
    return X


def _pending_check(path: Path, attrs: Mapping[str, Any], verify: bool, dtype, shape) -> tuple[_RowSha | None, list]:
    """``(digest to feed the rows, [(futures, digest, wanted checksum, file key, path)])`` for a file whose
    checksum ``attrs`` records, or ``(None, [])`` when ``verify`` is off or this process verified the unchanged
    file already."""
    alg, key = checksum_key(attrs)
    fkey = (*_file_key(path), key)
    if not verify or _VERIFIED.get(fkey) == attrs[key]:
        return None, []
    digest = _RowSha(dtype, shape, alg)
    return digest, [([], digest, attrs[key], fkey, path)]


def _run_checks(checks: list) -> None:
    """Wait for each file's hashing and compare its digest with the stored one."""
    for futures, digest, want, fkey, path in checks:
        for f in futures:
            f.result()
        if digest.hexdigest() != want:
            raise ArtifactError(
                f"{path}: activations do not match their stored checksum (the file is corrupt); "
                "delete it and rerun the workflow"
            )
        _VERIFIED[fkey] = want


_HASHER: list = []  # one worker thread, made on first use: blocks are hashed in the order they were read


def _hasher():
    from concurrent.futures import ThreadPoolExecutor

    if not _HASHER:
        _HASHER.append(ThreadPoolExecutor(1, thread_name_prefix="repgeom-hash"))
    return _HASHER[0]


def _open(path: Path):
    import h5py

    if not path.exists():
        raise ArtifactError(f"{path}: missing")
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as e:
        raise ArtifactError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {e}") from None


def _shard_attrs(f) -> dict:
    """The attributes, from the one ``provenance`` JSON attribute where present (one read instead of ~35)."""
    try:
        attrs = json.loads(decode_attr(f.attrs["provenance"]))
    except KeyError:
        return h5_attrs(f)
    except ValueError:
        raise ArtifactError("the 'provenance' attribute is not valid JSON (corrupt?)") from None
    try:
        attrs["complete"] = bool(decode_attr(f.attrs["complete"]))
    except KeyError:
        attrs["complete"] = False
    return attrs


def _check_open(f, path, expect: Mapping[str, Any] | None) -> tuple[dict, Any, Any]:
    """``(attrs, activations dataset, ids dataset)`` after the checks that need no data."""
    try:
        attrs = _shard_attrs(f)
    except ArtifactError as e:
        raise ArtifactError(f"{path}: {e}") from None
    if not attrs.get("complete"):
        raise ArtifactError(f"{path}: incomplete shard (no 'complete' mark); delete it and rerun")
    if attrs.get("kind") != "activations":
        raise ArtifactError(f"{path}: not an activations shard (kind={attrs.get('kind')!r})")
    check_expected(path, attrs, expect or {})
    dsets = []
    for name in ("activations", "ids"):
        try:
            dsets.append(f[name])
        except KeyError:
            raise ArtifactError(f"{path}: dataset {name!r} missing") from None
    acts, ids = dsets
    n, d = attrs.get("n"), attrs.get("d")
    rows = attrs.get("n_tokens_total") if attrs.get("position") == "tokens" else n
    if acts.shape != (rows, d) or ids.shape != (n,):
        raise ArtifactError(f"{path}: shapes {acts.shape} / {ids.shape} do not match n={n}, d={d} (corrupt?)")
    if ("sha256_activations" not in attrs and "parts" not in attrs) or "ids_sha256" not in attrs:
        raise ArtifactError(f"{path}: no checksum attributes")
    return attrs, acts, ids


# --------------------------------------------------------------------------- gathered row-parts
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


def _read_gathered(path: Path, attrs: Mapping[str, Any], shape, dtype, verify: bool, label) -> np.ndarray:
    """The (N, d) rows of a gathered shard, read from its part files, each checked (and with ``verify`` its
    checksum). A part unchanged since the gather (the size and mtime it recorded) is read straight from the rows'
    offset it recorded, without opening it as HDF5; any other goes through HDF5 and every identity check. The
    array is placed so that the first part's rows share its file offset's page alignment."""
    checks: list = []
    out = None
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
    for part, entry in _part_files(path, attrs):
        s0, s1 = entry["slot_start"], entry["slot_stop"]
        raw = _unchanged_raw(part, entry)
        if raw is not None:
            if out is None:
                out = _aligned_empty(shape, dtype, raw["offset"] - s0 * row_bytes)
            _read_raw_part(part, entry, raw["offset"], out[s0:s1], verify, checks)
            continue
        f, pattrs, ds = _open_part(part, entry, label)
        with f:
            infos = _chunk_infos(ds)
            if out is None:
                out = _aligned_empty(shape, dtype, (infos[0].byte_offset - s0 * row_bytes) if infos else 0)
            _read_verified(ds, part, pattrs, verify, out[s0:s1], checks, infos)
    _run_checks(checks)
    return _aligned_empty(shape, dtype, 0) if out is None else out


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


def _read_raw_part(part: Path, entry: Mapping[str, Any], offset: int, out: np.ndarray, verify: bool, checks: list):
    """Fill ``out`` with a part's rows from ``offset`` of its file; with ``verify`` its checksum (the one the
    gather recorded) is queued on ``checks``, unless this process verified the unchanged file already."""
    digest, pending = _pending_check(part, entry, verify, out.dtype, out.shape)
    runs = _byte_runs([(offset, 0, out.shape[0])], out)
    with open(part, "rb", buffering=0) as fh:
        _read_runs(fh, runs, out, part, _hash_blocks(digest, out, pending[0][0] if pending else []))
    _FAST_READS[0] += 1
    checks.extend(pending)


#: the page size the destination of a read is aligned against (see :func:`_aligned_empty`)
_PAGE = 4096


def _aligned_empty(shape, dtype, file_offset: int) -> np.ndarray:
    """An uninitialised array whose data starts at the same offset within a page as ``file_offset`` does.

    The kernel copies a read from the page cache with ``rep movsb``, which on some CPUs (measured: AMD Zen 3,
    2-3x slower) crawls when destination and source differ by 1-31 bytes modulo the page; numpy's large arrays
    start 16 bytes into a page, so a shard whose rows sit page-aligned in the file read at half speed. Equal
    offsets are the fast case on every CPU."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buf = np.empty(nbytes + _PAGE, dtype=np.uint8)
    start = (file_offset - buf.ctypes.data) % _PAGE
    return buf[start : start + nbytes].view(dtype).reshape(shape)


def _read_ids(ds, path, attrs, verify: bool = True) -> np.ndarray:
    """The ids, decoded and (``verify``) checked. The shards of one run hold the very same ids: bytes equal to ids
    this process decoded and verified already (same digest of the raw bytes, same ``ids_sha256``) are not decoded
    and hashed again."""
    raw = ds[()]
    key = _bytes_key(raw) if raw.dtype.kind == "S" else None
    hit = _IDS.get(key) if key else None
    if hit is not None and hit[0] == attrs["ids_sha256"]:
        _IDS.move_to_end(key)
        return hit[1].copy()
    fast = key is not None and key[0] is not None and "ids_xxh3" in attrs  # the raw bytes' own xxh3 (format 2)
    if verify and fast and key[0] != attrs["ids_xxh3"]:
        raise ArtifactError(f"{path}: ids do not match their stored checksum (the file is corrupt)")
    ids = (
        [x.decode("utf-8") for x in raw.tolist()]
        if raw.dtype.kind == "S"
        else [x.decode("utf-8") if isinstance(x, bytes) else x for x in raw.tolist()]
    )
    if verify and not fast and texts_sha256(ids) != attrs["ids_sha256"]:
        raise ArtifactError(f"{path}: ids do not match their stored checksum (the file is corrupt)")
    out = np.array(ids, dtype=object)
    if verify and key:
        _IDS[key] = (attrs["ids_sha256"], out.copy())
        while len(_IDS) > _IDS_KEEP:
            _IDS.popitem(last=False)
    return out


def _check_ids(ds, path, attrs, verify: bool) -> None:
    """Check the ids without keeping them: by their raw bytes' xxh3 where the shard records it (nothing decoded:
    a writer's check of 200k ids no longer holds their decoded strings at its peak), else decoded and hashed."""
    if not verify:
        return
    raw = ds[()]
    key = _bytes_key(raw) if raw.dtype.kind == "S" else None
    if key is None or key[0] is None or "ids_xxh3" not in attrs:
        _read_ids(ds, path, attrs, True)
    elif key[0] != attrs["ids_xxh3"]:
        raise ArtifactError(f"{path}: ids do not match their stored checksum (the file is corrupt)")


def _read_rows_and_ids(ds, ids_ds, path: Path, attrs: Mapping[str, Any], verify: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, ids)`` of an opened shard, single or gathered over row-parts, each checked."""
    ids = _read_ids(ids_ds, path, attrs, verify)
    if "parts" in attrs:
        return _read_gathered(path, attrs, ds.shape, ds.dtype, verify, path), ids
    return _read_verified(ds, path, attrs, verify), ids


def _bytes_key(raw: np.ndarray) -> tuple:
    """``(xxh3 of the raw bytes, or None without xxhash; a digest of them; dtype; shape)``."""
    fast = checksum_key({"xxh3_activations": ""})[0] == "xxh3"
    digest = _sha_array(raw, "xxh3" if fast else "sha256")
    return (digest if fast else None, digest, raw.dtype.str, raw.shape)


def _chunk_infos(ds) -> list | None:
    """The chunks of ``ds`` sorted by row, when every one is a whole, unfiltered row block; else ``None``."""
    n, d = ds.shape
    if not (
        ds.chunks
        and ds.chunks[1] == d
        and not ds.compression
        and not ds.shuffle
        and not ds.fletcher32
        and ds.scaleoffset is None
        and ds.dtype.isnative
        and n > 0
    ):
        return None
    infos: list = []
    try:
        ds.id.chunk_iter(infos.append)
    except Exception:  # older HDF5: one call per chunk
        with contextlib.suppress(Exception):
            infos = [ds.id.get_chunk_info(i) for i in range(ds.id.get_num_chunks())]
    rows = ds.chunks[0]
    row_bytes = d * ds.dtype.itemsize
    if len(infos) != -(-n // rows) or not all(
        ci.byte_offset is not None and ci.filter_mask == 0 and ci.size == rows * row_bytes for ci in infos
    ):
        return None
    infos.sort(key=lambda ci: ci.chunk_offset[0])
    return infos if [ci.chunk_offset[0] for ci in infos] == list(range(0, n, rows)) else None


#: bytes read at once from a shard; each block is hashed (in another thread) while the next one is read
READ_BLOCK = 8 << 20


def _byte_runs(spans: list[tuple[int, int, int]], out: np.ndarray) -> list[tuple[int, int, int]]:
    """``(byte offset, first row, stop row)`` reads of at most :data:`READ_BLOCK` bytes (whole rows) covering
    ``spans``, each a run of rows that lie back to back in the file from its byte offset."""
    row_bytes = max(1, out.strides[0] if out.ndim else out.itemsize)
    step = max(1, READ_BLOCK // row_bytes)
    runs = []
    for off, r0, r1 in spans:
        for a in range(r0, r1, step):
            runs.append((off + (a - r0) * row_bytes, a, min(a + step, r1)))
    return runs


def _chunk_spans(infos: list, rows: int, n: int) -> list[tuple[int, int, int]]:
    """The chunks ``infos`` (sorted by row) as spans of rows back to back in the file."""
    spans: list[list[int]] = []
    for ci in infos:
        r0 = ci.chunk_offset[0]
        r1 = min(r0 + rows, n)
        if spans and ci.byte_offset == spans[-1][3] and r0 == spans[-1][2]:
            spans[-1][2], spans[-1][3] = r1, ci.byte_offset + ci.size
        else:
            spans.append([ci.byte_offset, r0, r1, ci.byte_offset + ci.size])
    return [(o, a, b) for o, a, b, _ in spans]


def _read_runs(fh, runs: list[tuple[int, int, int]], out: np.ndarray, path: Path, on_block=None) -> None:
    """Fill ``out`` by the reads ``runs``; ``on_block(r0, r1)`` after each, in row order."""
    for off, r0, r1 in runs:
        view = memoryview(out[r0:r1]).cast("B")
        fh.seek(off)
        got = 0
        while got < len(view):
            k = fh.readinto(view[got:])
            if not k:
                raise ArtifactError(f"{path}: file ends inside the activations (truncated)")
            got += k
        if on_block is not None:
            on_block(r0, r1)


def _hash_blocks(digest: _RowSha | None, out: np.ndarray, futures: list):
    """An ``on_block`` that hashes each block read in the worker thread (hashing releases the GIL), or ``None``."""
    if digest is None:
        return None
    pool = _hasher()
    return lambda r0, r1: futures.append(pool.submit(digest.update, out[r0:r1]))


def _read_activations(
    ds,
    path: Path,
    out: np.ndarray | None = None,
    digest: _RowSha | None = None,
    futures: list | None = None,
    infos: list | None = None,
) -> np.ndarray:
    """The whole dataset (into ``out`` where given); unfiltered row chunks are read straight from the file by their
    offsets. ``digest`` is fed the rows in order, each block in a worker thread while the next is read (hashing
    releases the GIL); the hashing's futures are appended to ``futures`` (wait for them before the digest)."""
    futures = [] if futures is None else futures
    infos = _chunk_infos(ds) if infos is None else infos
    if out is None:
        out = _aligned_empty(ds.shape, ds.dtype, infos[0].byte_offset) if infos else np.empty(ds.shape, ds.dtype)
    if infos is None:
        if out.size:
            ds.read_direct(out)
        if digest is not None:
            digest.update(out)
        return out
    runs = _byte_runs(_chunk_spans(infos, ds.chunks[0], out.shape[0]), out)
    with open(path, "rb", buffering=0) as fh:
        _read_runs(fh, runs, out, path, _hash_blocks(digest, out, futures))
    _FAST_READS[0] += 1
    return out


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
    ``verify`` checks the sha256 of the activations and of the ids (costs more than reading them);
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
            X, ids = _read_rows_and_ids(ds, ids_ds, p, attrs, verify)
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
