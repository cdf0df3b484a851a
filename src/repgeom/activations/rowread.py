"""Reading a shard's rows straight from its file, hashed while they are read.

Unfiltered row chunks are read by their byte offsets (:func:`_read_activations`, counted in :data:`_FAST_READS`)
in blocks of :data:`READ_BLOCK`, into an array placed at their offset's page alignment (:func:`_aligned_empty`)
whose pages a worker thread faults in ahead of the reads (:func:`_prefault`); each block is hashed in that
thread while the next one is read, and the digest compared once the last block is in (:func:`_pending_check`,
:func:`_run_checks`). Rows asked for in another dtype than stored (float32 from float16, every default read) are
read into two small buffers in turn and cast from there by both threads (:func:`_read_runs_cast`, casts from
:mod:`.widen`), with no stored-dtype copy of the layer. A file this process verified already (same inode, size and
mtime) is not hashed again (:data:`_VERIFIED`). Used by :mod:`.reader` and :mod:`.gathered`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import ArtifactError
from .layout import _RowSha, checksum_key
from .widen import converter

_FAST_READS = [0]  # how many reads took the direct path (for tests)
#: files this process has verified: (path, inode, size, mtime) → the digest checked; a file changed since (new
#: inode, size or mtime) is verified again
_VERIFIED: dict[tuple, str] = {}


def _file_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


def _read_verified(
    ds,
    path: Path,
    attrs: Mapping[str, Any],
    verify: bool,
    out: np.ndarray | None = None,
    checks=None,
    infos=None,
    dtype=None,
):
    """The activations of ``ds`` (into ``out`` where given, else in ``dtype``, default the stored one), checked
    against their stored checksum (xxh3 where the shard has it) while they are read, unless ``verify`` is off or
    this process verified the unchanged file. With a ``checks`` list the check is appended to it, to be run
    (:func:`_run_checks`) once later reads are under way, so that hashing one file's last block overlaps reading the
    next file."""
    digest, futures, pending = _pending_check(path, attrs, verify, ds.dtype, ds.shape)
    X = _read_activations(ds, path, out, digest, futures, infos, dtype)
    if pending:
        if checks is None:
            _run_checks(pending)
        else:
            checks.extend(pending)
    return X


def _pending_check(
    path: Path, attrs: Mapping[str, Any], verify: bool, dtype, shape
) -> tuple[_RowSha | None, list, list]:
    """``(digest to feed the rows, the list its hashing's futures go to, [(those futures, digest, wanted checksum,
    file key, path)])`` for a file whose checksum ``attrs`` records, or ``(None, [], [])`` when ``verify`` is off or
    this process verified the unchanged file already."""
    alg, key = checksum_key(attrs)
    fkey = (*_file_key(path), key)
    if not verify or _VERIFIED.get(fkey) == attrs[key]:
        return None, [], []
    digest, futures = _RowSha(dtype, shape, alg), []
    return digest, futures, [(futures, digest, attrs[key], fkey, path)]


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


#: bytes read at once from a shard; each block is hashed (in another thread) while the next one is read, and the
#: destination of the block after next is faulted in meanwhile (:func:`_prefault`). Measured on this project's AMD
#: machine (a 67 MB layer, no hashing): 1-2 MB blocks 13-14 ms, 4 MB 14-15 ms, 8 MB 17 ms, np.load 17 ms
READ_BLOCK = 2 << 20
#: reads of fewer blocks than this fault their destination in themselves (a worker's hand-off costs more)
PREFAULT_MIN_BLOCKS = 3
#: ``madvise(MADV_POPULATE_WRITE)`` here (Linux >= 5.14): ``[]`` untried, ``[True, madvise]``, ``[False]`` once it failed
_POPULATE: list = []
_MADV_POPULATE_WRITE = 23  # linux/mman.h


def _prefault(block: np.ndarray) -> None:
    """Fault in the pages of ``block`` (a C-contiguous array that a read will fill) without touching its contents.

    Over half of reading a large layer into fresh memory is the kernel zeroing and mapping its pages on first touch
    (measured: 10 of 17 ms for 67 MB). Done by the worker thread for the block after next while this one is read,
    it overlaps the read instead of stalling it: ``madvise(MADV_POPULATE_WRITE)`` through ctypes, which releases the GIL. Where that
    call is not there (not Linux, a kernel before 5.14) it is given up once and the reads fault their own pages,
    as before."""
    if _POPULATE == [False]:
        return
    if not _POPULATE:
        try:
            import ctypes
            import sys

            if not sys.platform.startswith("linux"):
                raise OSError("not Linux")
            libc = ctypes.CDLL(None, use_errno=True)
            libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            libc.madvise.restype = ctypes.c_int
            _POPULATE[:] = [True, libc.madvise]
        except (OSError, AttributeError):
            _POPULATE[:] = [False]
            return
    addr = block.ctypes.data
    start = -(-addr // _PAGE) * _PAGE  # whole pages inside the block only: a neighbour's are its own read's
    stop = (addr + block.nbytes) // _PAGE * _PAGE
    if stop > start and _POPULATE[1](start, stop - start, _MADV_POPULATE_WRITE) != 0:
        _POPULATE[:] = [False]  # EINVAL on an older kernel: the reads fault their own pages from now on


def _byte_runs(
    spans: list[tuple[int, int, int]], out: np.ndarray, itemsize: int | None = None
) -> list[tuple[int, int, int]]:
    """``(byte offset, first row, stop row)`` reads of at most :data:`READ_BLOCK` bytes (whole rows) covering
    ``spans``, each a run of rows that lie back to back in the file from its byte offset (rows of ``out``'s shape,
    stored ``itemsize`` bytes a value: default ``out``'s)."""
    itemsize = out.itemsize if itemsize is None else itemsize
    row_bytes = max(1, int(np.prod(out.shape[1:], dtype=np.int64)) * itemsize)
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


def _read_into(fh, off: int, block: np.ndarray, path: Path) -> None:
    """Fill ``block`` (C-contiguous) with the bytes of ``fh`` from ``off``."""
    view = memoryview(block).cast("B")
    fh.seek(off)
    got = 0
    while got < len(view):
        k = fh.readinto(view[got:])
        if not k:
            raise ArtifactError(f"{path}: file ends inside the activations (truncated)")
        got += k


def _read_runs(fh, runs: list[tuple[int, int, int]], out: np.ndarray, path: Path, on_block=None) -> None:
    """Fill ``out`` by the reads ``runs``; ``on_block(r0, r1)`` after each, in row order. With at least
    :data:`PREFAULT_MIN_BLOCKS` reads, the worker thread faults in the destination of the read after next while
    one is read (:func:`_prefault`), queued with the blocks' hashing in one order."""
    ahead: dict = {}
    pool = _hasher() if len(runs) >= PREFAULT_MIN_BLOCKS and _POPULATE != [False] else None

    def queue(j):
        if pool is not None and j < len(runs):
            ahead[j] = pool.submit(_prefault, out[runs[j][1] : runs[j][2]])

    queue(0)
    queue(1)
    for i, (off, r0, r1) in enumerate(runs):
        queue(i + 2)
        if i in ahead:
            with contextlib.suppress(Exception):  # a failed prefault only means the read faults the pages itself
                ahead.pop(i).result()
        _read_into(fh, off, out[r0:r1], path)
        if on_block is not None:
            on_block(r0, r1)


#: the share of each block that the reading thread casts itself (after reading it, while the worker hashes the
#: block and casts the rest): casting costs several times the read, so one thread alone would leave the other idle.
#: Measured on AMD Zen 3 (a 16384 x 2048 float16 layer read as float32, median ms of 31, 0 / 0.3 / 0.4 / 0.5):
#: numpy's look-up 130 / 86 / 72 / 81, torch's cast 46 / 41 / 38 / 43
CAST_SHARE = 0.4


def _read_runs_cast(
    fh, runs: list[tuple[int, int, int]], out: np.ndarray, stored, path: Path, digest: _RowSha | None
) -> None:
    """Fill ``out`` (not of the ``stored`` dtype) by the reads ``runs``. Each is read into one of two small buffers
    (placed at its offset's page alignment); the worker thread hashes it (``digest``) and casts its first rows into
    ``out`` while this thread casts the rest (:data:`CAST_SHARE`) and reads the next block into the other buffer.
    No stored-dtype copy of the whole layer is made. Returns once every block is cast."""
    if not runs:
        return
    stored = np.dtype(stored)
    cast = converter(stored, out.dtype)
    pool = _hasher()
    row_shape = out.shape[1:]
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * stored.itemsize
    most = max(r1 - r0 for _, r0, r1 in runs) * row_bytes
    bufs = [np.empty(most + _PAGE, np.uint8) for _ in range(2)]
    busy: list = [None, None]

    def work(block, r0, r1):  # in the worker, blocks in row order: hash the whole block, cast its first rows
        if digest is not None:
            digest.update(block)
        cast(block[: r1 - r0], out[r0:r1])

    try:
        for i, (off, r0, r1) in enumerate(runs):
            k = i % 2
            if busy[k] is not None:
                busy[k].result()  # the buffer's last block is hashed and cast: free to fill again
            start = (off - bufs[k].ctypes.data) % _PAGE
            block = bufs[k][start : start + (r1 - r0) * row_bytes].view(stored).reshape(r1 - r0, *row_shape)
            _read_into(fh, off, block, path)
            split = r1 - int((r1 - r0) * CAST_SHARE)  # rows from ``split`` on are cast here
            busy[k] = pool.submit(work, block, r0, split)
            if split < r1:
                cast(block[split - r0 :], out[split:r1])
    finally:
        for b in busy:  # never return (or raise) while the worker still reads a buffer or writes into ``out``
            if b is not None:
                b.exception()
    for b in busy:
        if b is not None:
            b.result()


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
    dtype=None,
) -> np.ndarray:
    """The whole dataset (into ``out`` where given, else a new array of ``dtype``, default the stored one);
    unfiltered row chunks are read straight from the file by their offsets. ``digest`` is fed the stored rows in
    order, each block in a worker thread while the next is read (hashing releases the GIL); the hashing's futures
    are appended to ``futures`` (wait for them before the digest). Rows wanted in another dtype are cast block by
    block as they are read (:func:`_read_runs_cast`)."""
    futures = [] if futures is None else futures
    infos = _chunk_infos(ds) if infos is None else infos
    want = out.dtype if out is not None else np.dtype(ds.dtype if dtype is None else dtype)
    if want != ds.dtype:
        if out is None:
            out = np.empty(ds.shape, want)
        if infos is None:  # filtered or irregular chunks: through HDF5 in the stored dtype, then cast
            stored = np.empty(ds.shape, ds.dtype)
            if stored.size:
                ds.read_direct(stored)
            if digest is not None:
                digest.update(stored)
            converter(ds.dtype, want)(stored, out)
            return out
        runs = _byte_runs(_chunk_spans(infos, ds.chunks[0], out.shape[0]), out, ds.dtype.itemsize)
        with open(path, "rb", buffering=0) as fh:
            _read_runs_cast(fh, runs, out, ds.dtype, path, digest)
        _FAST_READS[0] += 1
        return out
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
