"""Shared artifact helpers: atomic writes, hashing, provenance-checked HDF5.

Every artifact is written under a temporary name in its final directory,
flushed, verified and then renamed into place, so a killed job never leaves a
file that a rerun or a reader would accept. HDF5 artifacts carry their
provenance as attributes plus a content checksum, and :func:`read_h5` refuses a
file whose provenance does not match what the caller expects or whose data no
longer matches its checksum.

HDF5 files are opened with ``locking=False`` everywhere, for writing too: a
writer only ever writes its own unique temporary file, and a reader only opens
files that are complete and never written again, so HDF5's locks protect
nothing here, while NFS without a lock daemon (``ENOLCK``) and Lustre mounted
without flock (``ENOSYS``) would refuse them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .filemodes import set_file_mode, set_tree_modes

if TYPE_CHECKING:
    import h5py

log = logging.getLogger(__name__)


class ArtifactError(RuntimeError):
    """An artifact is missing, incomplete, corrupt or made from other inputs."""


# --------------------------------------------------------------------------- hashing
def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def texts_sha256(texts: Sequence[str]) -> str:
    """Order-sensitive hash of a list of texts (length-prefixed, UTF-8)."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def array_sha256(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.sha256()
    h.update(str(a.dtype).encode())
    h.update(str(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def library_versions(
    names: Sequence[str] = ("numpy", "torch", "transformers", "sentence_transformers", "sklearn", "h5py"),
) -> dict[str, str]:
    """Versions of the named libraries that are importable (without importing heavy ones anew)."""
    import importlib.metadata as md

    dist = {"sklearn": "scikit-learn", "sentence_transformers": "sentence-transformers"}
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = md.version(dist.get(n, n))
        except md.PackageNotFoundError:
            continue
    return out


# --------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it into place only on success.

    The temporary name starts with a dot and ends in ``.tmp`` so that globbing for
    real outputs never matches it; on any exception it is removed. A process killed
    with SIGKILL cannot remove its temporary: once ``final`` is in place, the
    temporaries of the same final name that such a run left are removed. The file
    gets the mode a plain ``open()`` gives under the umask (:mod:`.filemodes`), not
    mkstemp's 0600.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else final.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f"{suffix}.tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        set_file_mode(tmp_path)  # mkstemp made it private: the mode a plain open() would give
        _fsync(tmp_path)
        os.replace(tmp_path, final)
        fsync_dir(final.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
    _remove_stale_temporaries(final, suffix)


def _remove_stale_temporaries(final: Path, suffix: str) -> None:
    """Remove ``.{final.name}.XXXXXXXX{suffix}.tmp`` files beside ``final`` (exactly mkstemp's pattern for this
    name, so no other artifact's temporaries), after ``final`` was renamed into place: each was left by a killed
    writer of the same artifact, or belongs to a writer racing this one for the same name, whose rename would
    then fail clearly instead of replacing the file just written."""
    pat = re.compile(rf"\.{re.escape(final.name)}\.[a-z0-9_]{{8}}{re.escape(suffix)}\.tmp")
    with contextlib.suppress(OSError):
        for p in final.parent.iterdir():
            if pat.fullmatch(p.name) and p.is_file() and not p.is_symlink():
                with contextlib.suppress(OSError):
                    p.unlink()


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a dot-named staging folder ``.{name}.tmp-XXXXXXXX`` beside ``final``; it replaces ``final`` only
    when the block succeeds, and is removed when it fails.

    A killed job cannot remove its stage: the stages (and their ``.work`` siblings, scratch space a caller may
    keep beside its stage) that earlier runs for the same name left are removed first. Only exact matches of
    :func:`tempfile.mkdtemp`'s pattern for this name are touched, so another artifact's stages (even one named
    ``{name}.tmp-x``) survive; safe because one output folder is made by one job at a time. The folder and
    everything in it get the umask's modes (:func:`.filemodes.set_tree_modes`) before the rename.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for p in remove_stale_stages(final):
        log.info("removed %s, left by an interrupted job", p)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield stage
        set_tree_modes(stage)  # mkdtemp made it private; copied and unpacked files keep their source's modes
        if final.exists():
            shutil.rmtree(final)
        os.replace(stage, final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def remove_stale_stages(final: Path) -> list[Path]:
    """Remove the ``.{final.name}.tmp-XXXXXXXX`` folders (and ``.work`` siblings) beside ``final``; returns them."""
    pat = re.compile(rf"\.{re.escape(final.name)}\.tmp-[a-z0-9_]{{8}}(\.work)?")
    gone = []
    if final.parent.is_dir():
        for p in final.parent.iterdir():
            if pat.fullmatch(p.name) and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                gone.append(p)
    return gone


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing") from None
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}: not valid JSON (truncated or corrupt?): {e}") from None


# --------------------------------------------------------------------------- HDF5
def _h5():
    import h5py

    return h5py


def attr_value(v: Any) -> Any:
    """Turn a Python value into something HDF5 stores as an attribute."""
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True, default=json_default)
    if v is None:
        return "null"
    return v


def decode_attr(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if isinstance(v, np.generic):
        v = v.item()
    return v


def write_h5(
    path: str | os.PathLike, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any], checksum: Sequence[str] = ()
) -> None:
    """Write ``arrays`` and ``attrs`` to ``path`` atomically, verifying after the write.

    ``checksum`` names arrays whose sha256 is stored in the attribute
    ``sha256_<name>`` and checked on every :func:`read_h5`.
    """
    h5py = _h5()
    attrs = dict(attrs)
    for name in checksum:
        attrs[f"sha256_{name}"] = array_sha256(np.asarray(arrays[name]))
    attrs.setdefault("created", now_iso())
    attrs["complete"] = True
    with atomic_path(path) as tmp:
        # no HDF5 file lock: this is our own unique dot-named temporary, which no one else opens before it is
        # renamed, and NFS without a lock daemon (ENOLCK) or Lustre without flock (ENOSYS) refuse locks
        with h5py.File(tmp, "w", locking=False) as f:
            for name, arr in arrays.items():
                arr = np.asarray(arr)
                if arr.dtype.kind in "UO":
                    f.create_dataset(name, data=np.asarray(arr, dtype=object), dtype=h5py.string_dtype("utf-8"))
                else:
                    f.create_dataset(name, data=arr)
            for k, v in attrs.items():
                f.attrs[k] = attr_value(v)
        # verify what is on disk before it gets its final name
        with h5py.File(tmp, "r", locking=False) as f:
            _verify_checksums(f, tmp)


def _verify_checksums(f, path) -> None:
    for key in list(f.attrs):
        if key.startswith("sha256_"):
            name = key[len("sha256_") :]
            if name not in f:
                raise ArtifactError(f"{path}: dataset {name!r} named by its checksum is missing")
            got = array_sha256(f[name][()])
            if got != decode_attr(f.attrs[key]):
                raise ArtifactError(
                    f"{path}: dataset {name!r} does not match its stored checksum "
                    "(the file is corrupt); delete it and rerun the workflow"
                )


def h5_attrs(f: h5py.File) -> dict[str, Any]:
    out = {}
    for k, v in f.attrs.items():
        v = decode_attr(v)
        if isinstance(v, str) and v[:1] in "[{":
            with contextlib.suppress(ValueError):
                v = json.loads(v)
        elif v == "null":
            v = None
        out[k] = v
    return out


def read_h5(
    path: str | os.PathLike, expect: Mapping[str, Any] | None = None, names: Sequence[str] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read datasets and attributes, refusing incomplete, corrupt or mismatching files.

    ``expect`` maps attribute names to the values the caller requires (e.g. the
    model fingerprint and the texts' sha256). HDF5 file locking is off so that
    reads work on NFS/Lustre, where locks are often unsupported.
    """
    h5py = _h5()
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: missing")
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError as e:
        raise ArtifactError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {e}") from None
    with f:
        try:
            attrs = h5_attrs(f)
            if not attrs.get("complete"):
                raise ArtifactError(f"{path}: incomplete artifact (no 'complete' mark); delete it and rerun")
            check_expected(path, attrs, expect or {})
            _verify_checksums(f, path)
            keys = names if names is not None else list(f.keys())
            data = {}
            for k in keys:
                if k not in f:
                    raise ArtifactError(f"{path}: dataset {k!r} missing")
                v = f[k][()]
                if v.dtype.kind == "O":
                    v = np.array([x.decode("utf-8") if isinstance(x, bytes) else x for x in v], dtype=object)
                data[k] = v
        except ArtifactError:
            raise
        except (OSError, KeyError, ValueError) as e:
            raise ArtifactError(f"{path}: unreadable HDF5 content (corrupt?): {e}") from None
    return data, attrs


def check_expected(path: str | os.PathLike, attrs: Mapping[str, Any], expect: Mapping[str, Any]) -> None:
    bad = []
    for k, want in expect.items():
        got = attrs.get(k, "<absent>")
        if got != want:
            bad.append(f"{k}: file has {got!r}, expected {want!r}")
    if bad:
        raise ArtifactError(
            f"{path}: provenance does not match what this step expects "
            f"(stale artifact made from other inputs?): " + "; ".join(bad)
        )


def read_embeddings(
    path: str | os.PathLike, expect: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Read an embeddings artifact: ``(X float32, ids, labels, attrs)``, provenance-checked.

    Lives here, not in :mod:`repgeom.embeddings`, so that metrics and plots read
    embeddings without importing torch.
    """
    data, attrs = read_h5(path, expect=expect, names=("embeddings", "ids", "labels"))
    if attrs.get("kind") != "embeddings":
        raise ArtifactError(f"{path}: not an embeddings artifact (kind={attrs.get('kind')!r})")
    return data["embeddings"].astype(np.float32), data["ids"], data["labels"], attrs
