"""Digests of files and folders: of their bytes (what the store keeps) and of their content (what a job's key uses).

Two digests, two purposes:

- :func:`blob_digest`: the bytes of one file, as the store addresses it (``xxh3:``/``sha256:`` + hex). A restore
  recomputes it to verify what it hands out.
- :func:`content_digest`: what a consumer of the file can see, for the action key of a job that reads it. It is the
  blob digest, except for four self-describing kinds whose provenance records when they were made and how long
  that took (:data:`VOLATILE`):

  - JSON: the parsed document written out in order, without the members named in :data:`VOLATILE` (timestamps and
    timings) at any depth: a corpus remade by an edited parser with the same rows digests the same, although its
    ``created`` differs, so the jobs that read it restore (early cutoff);
  - torch files (``.pt``): the loaded object likewise, each tensor by dtype, shape and bytes;
  - tab-separated tables whose header names such a column (a training log's ``seconds``): without it;
  - HDF5: each dataset's name, shape, dtype and data, and the file's attributes (without :data:`VOLATILE`). A
    dataset's data is taken from the checksum the file records for it (``sha256_<name>`` or ``xxh3_<name>``,
    which every reader verifies), else read and hashed; a virtual dataset of a gathered shard by its layout, its
    parts' checksums and run ids being in the attributes. So a job with 50 input shards reads 50 headers, not
    gigabytes.

A folder digests as the sorted list of its files' relative paths and digests (Snakemake's ``.snakemake_timestamp``
flag left out). Digests of large plain files are remembered by ``(device, inode, size, mtime)`` in a per-workspace
memo, so that a file is hashed once while it is unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: members (JSON, torch files) and attributes (HDF5) that record when an artifact was made and how long it took,
#: not what it holds: two artifacts that differ only there have the same content digest. No consumer reads them
#: (tests/test_actioncache.py checks the library for reads of these names).
VOLATILE = frozenset(
    {
        "created",
        "prepared",
        "seconds",
        "load_seconds",
        "encode_seconds",
        "texts_per_second",
        "train_seconds",
        "steps_per_second",
    }
)

#: the flag file Snakemake writes into a ``directory()`` output to date it: not content
FLAG_FILE = ".snakemake_timestamp"

#: files from this size on have their digests remembered (smaller ones hash faster than a memo reads)
MEMO_MIN_BYTES = 4 << 20

#: JSON documents up to this size are digested as parsed (larger ones by their bytes)
JSON_MAX_BYTES = 512 << 20

_BLOCK = 4 << 20


def _hasher():
    """xxh3-128 where ``xxhash`` is installed (~10 GB/s), else sha256; the name prefixes every digest, so that
    digests of the two never compare equal."""
    try:
        import xxhash

        return "xxh3", xxhash.xxh3_128()
    except ImportError:  # pragma: no cover - xxhash is a requirement
        return "sha256", hashlib.sha256()


def hash_bytes(data: bytes) -> str:
    name, h = _hasher()
    h.update(data)
    return f"{name}:{h.hexdigest()}"


def blob_digest(path: str | os.PathLike) -> str:
    """The digest of a file's bytes (``xxh3:<hex>``, or ``sha256:<hex>`` without ``xxhash``)."""
    name, h = _hasher()
    with open(path, "rb") as fh:
        buf = bytearray(_BLOCK)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            h.update(view[:n])
    return f"{name}:{h.hexdigest()}"


# --------------------------------------------------------------------------- content digests
def content_digest(path: str | os.PathLike, memo: DigestMemo | None = None) -> str:
    """The content digest of a file or folder (see the module docstring); ``memo`` remembers large files'."""
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256(b"dir\0")
        for rel, f in iter_files(path):
            h.update(f"{rel}\0{content_digest(f, memo)}\0".encode())
        return "dir:" + h.hexdigest()
    st = path.stat()
    if memo is not None and st.st_size >= MEMO_MIN_BYTES:
        got = memo.get(path, st)
        if got is not None:
            return got
    digest = _file_content_digest(path, st.st_size)
    if memo is not None and st.st_size >= MEMO_MIN_BYTES:
        memo.put(path, st, digest)
    return digest


def iter_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """``(relative path, path)`` of every file under ``folder`` (symbolic links followed), sorted, without
    Snakemake's flag file."""
    out = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in files:
            p = Path(root) / name
            rel = p.relative_to(folder).as_posix()
            if rel != FLAG_FILE:
                out.append((rel, p))
    return iter(sorted(out))


def _file_content_digest(path: Path, size: int) -> str:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == b"\x89HDF\r\n\x1a\n":
        with contextlib.suppress(_NotSelfDescribing):
            return _h5_digest(path)
    if head[:4] == b"PK\x03\x04" and path.suffix in (".pt", ".pth"):
        with contextlib.suppress(_NotSelfDescribing):
            return _torch_digest(path)
    if path.suffix == ".tsv" and size <= JSON_MAX_BYTES:
        with contextlib.suppress(_NotSelfDescribing):
            return _tsv_digest(path)
    if path.suffix == ".json" and size <= JSON_MAX_BYTES:
        try:
            doc = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError):
            pass
        else:
            text = json.dumps(_without_volatile(doc), ensure_ascii=False, separators=(",", ":"))
            return "json:" + hash_bytes(text.encode("utf-8", "surrogatepass"))
    return blob_digest(path)


def _tsv_digest(path: Path) -> str:
    """A tab-separated table with a header naming a :data:`VOLATILE` column (a training log's ``seconds``): its
    lines without that column. Any other table (or one with quotes, whose tabs may be text) is its bytes."""
    raw = path.read_bytes()
    header = raw.split(b"\n", 1)[0].rstrip(b"\r").split(b"\t")
    drop = {i for i, name in enumerate(header) if name.decode("utf-8", "replace") in VOLATILE}
    if not drop or b'"' in raw:
        raise _NotSelfDescribing(str(path))
    lines = (b"\t".join(f for i, f in enumerate(line.split(b"\t")) if i not in drop) for line in raw.split(b"\n"))
    return "tsv:" + hash_bytes(b"\n".join(lines))


def _without_volatile(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _without_volatile(v) for k, v in doc.items() if k not in VOLATILE}
    if isinstance(doc, list):
        return [_without_volatile(v) for v in doc]
    return doc


class _NotSelfDescribing(Exception):
    """An HDF5 file this module cannot digest by its structure (it is digested by its bytes instead)."""


_RECORDED = ("xxh3_{}", "sha256_{}")


def _h5_digest(path: Path) -> str:
    import h5py
    import numpy as np

    h = hashlib.sha256(b"h5\0")
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError as e:
        raise _NotSelfDescribing(str(e)) from None
    with f:
        attrs = {k: f.attrs[k] for k in sorted(f.attrs) if k not in VOLATILE}
        h.update(_attr_text(attrs).encode())
        items: list[tuple[str, Any]] = []
        f.visititems(lambda name, obj: items.append((name, obj)))
        for name, obj in sorted(items, key=lambda x: x[0]):
            if isinstance(obj, h5py.Group):
                h.update(f"group {name} {_attr_text({k: obj.attrs[k] for k in sorted(obj.attrs)})}\0".encode())
                continue
            if not isinstance(obj, h5py.Dataset):
                raise _NotSelfDescribing(f"{name}: {type(obj).__name__}")
            sub = {k: obj.attrs[k] for k in sorted(obj.attrs) if k not in VOLATILE}
            h.update(f"dataset {name} {obj.shape} {obj.dtype} {_attr_text(sub)}\0".encode())
            recorded = [k.format(name) for k in _RECORDED if k.format(name) in f.attrs]
            if recorded:  # the checksum the file records for this dataset, verified by every reader
                h.update(f"recorded {recorded[0]}\0".encode())  # its value is among the attributes above
            elif obj.is_virtual:
                if "parts" not in f.attrs:  # no record of the sources' content: read them
                    h.update(_data_digest(obj[()], np).encode())
                    continue
                for vs in obj.virtual_sources():  # the parts' checksums and run ids are in the attributes
                    h.update(f"virtual {vs.file_name} {vs.dset_name} {vs.vspace.get_select_bounds()}\0".encode())
            else:
                h.update(_data_digest(obj[()], np).encode())
    return "h5:" + h.hexdigest()


def _torch_digest(path: Path) -> str:
    """A torch file as loaded (``weights_only``): its containers in order without :data:`VOLATILE` members, each
    tensor by dtype, shape and bytes."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds on a foreign or damaged file
        raise _NotSelfDescribing(str(e)) from None
    name, h = _hasher()

    def walk(o) -> None:
        if isinstance(o, torch.Tensor):
            t = o.detach().contiguous().cpu()
            h.update(f"T{t.dtype}{tuple(t.shape)}\0".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(o, dict):
            h.update(b"{")
            for k, v in o.items():
                if k in VOLATILE:
                    continue
                h.update(f"{type(k).__name__}:{k!r}\0".encode())
                walk(v)
            h.update(b"}")
        elif isinstance(o, (list, tuple)):
            h.update(b"[" if isinstance(o, list) else b"(")
            for v in o:
                walk(v)
            h.update(b"]")
        else:
            h.update(f"{type(o).__name__}:{o!r}\0".encode())

    walk(obj)
    return f"torch:{name}:{h.hexdigest()}"


def _data_digest(a, np) -> str:
    a = np.asarray(a)
    if a.dtype.kind == "O":
        a = np.array([x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in a.ravel()], dtype=object)
        return hash_bytes(b"\0".join(len(x).to_bytes(8, "little") + x for x in a))
    return hash_bytes(np.ascontiguousarray(a).tobytes())


def _attr_text(attrs: dict[str, Any]) -> str:
    import numpy as np

    def plain(v):
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                return "b:" + v.hex()
        if isinstance(v, str) and v[:1] in "[{":  # a JSON record among the attributes (e.g. the provenance)
            try:
                return ["json", _without_volatile(json.loads(v))]
            except ValueError:
                return ["str", v]
        if isinstance(v, np.ndarray):
            return [str(v.dtype), list(v.shape), [plain(x) for x in v.ravel().tolist()]]
        if isinstance(v, np.generic):
            return [str(v.dtype), v.item() if not isinstance(v, np.bytes_) else plain(bytes(v))]
        return [type(v).__name__, v]

    return json.dumps({k: plain(v) for k, v in attrs.items()}, sort_keys=True, default=repr)


# --------------------------------------------------------------------------- memo
class DigestMemo:
    """Content digests of large files by ``(path, device, inode, size, mtime_ns, ctime_ns)``: one small JSON file
    per path under ``root`` (a workspace's ``.snakemake/repgeom/digests``), written atomically. Any change of the
    file's identity or times misses; a miss hashes the file again. Unreadable or damaged memo files are misses."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _file(self, path: Path) -> Path:
        h = hashlib.sha256(str(path.resolve()).encode()).hexdigest()
        return self.root / h[:2] / f"{h}.json"

    @staticmethod
    def _stamp(path: Path, st: os.stat_result) -> list:
        return [str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]

    def get(self, path: Path, st: os.stat_result) -> str | None:
        try:
            rec = json.loads(self._file(path).read_text())
        except (OSError, ValueError):
            return None
        return rec.get("digest") if rec.get("stamp") == self._stamp(path, st) else None

    def put(self, path: Path, st: os.stat_result, digest: str) -> None:
        target = self._file(path)
        with contextlib.suppress(OSError):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"stamp": self._stamp(path, st), "digest": digest}))
            os.replace(tmp, target)
