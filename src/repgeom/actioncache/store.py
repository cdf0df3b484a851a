"""The content-addressed store of job outputs, and its action entries.

::

    {root}/objects/{alg}/{hh}/{hex}       one file's bytes, named by their digest (a copy read-only; an output
                                          linked in keeps its mode: editing it in place is caught on restore)
    {root}/actions/{kk}/{key}.json        an action entry: the job's outputs as paths and digests; its mtime is the
                                          entry's last use (LRU)
    {root}/jobs/{hh}/{job}                the key of each job's last entry (a failed job names it)
    {root}/tmp/                           copies on their way into objects/

An insert publishes every blob first (a hard link of the output when the store is on the same file system, else a
copy made under ``tmp/`` and linked into place), then the entry, written under a temporary name and renamed: a
process killed at any point leaves at most blobs no entry names, which pruning removes, never an entry that names a
missing or partial blob. Blobs are created with ``link``, which fails rather than replace: two jobs inserting the
same content both succeed with one file. A restore verifies every blob against its name before it hands it out; a
damaged blob and its entry are removed and the job computes again.

Restored files are hard links of the blobs when that is safe: same file system, the blob owned by this user and
linked nowhere else (so that Snakemake's touch of one workspace's output never re-dates another's); else copies.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..filemodes import dir_mode, file_mode, umask
from .digest import blob_digest, iter_files

log = logging.getLogger(__name__)

FORMAT = 1
#: how often (seconds) an insert checks the store's size against ``max_gb``
PRUNE_EVERY = 600
#: blobs that no entry names are removed by pruning only when older than this (an insert may be under way)
GRACE = 3600


def _readonly_mode() -> int:
    return 0o444 & ~umask()


@dataclass
class Report:
    """What :meth:`Store.verify` or :meth:`Store.prune` found and did."""

    entries: int = 0
    blobs: int = 0
    bytes: int = 0
    removed_entries: list[str] = field(default_factory=list)
    removed_blobs: int = 0
    freed_bytes: int = 0
    problems: list[str] = field(default_factory=list)


class StoreError(RuntimeError):
    """A store that cannot be used (not a folder, not readable)."""


class Store:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.actions = self.root / "actions"
        self.tmp = self.root / "tmp"

    # ------------------------------------------------------------------ layout
    def blob_path(self, digest: str) -> Path:
        alg, _, hexd = digest.partition(":")
        return self.objects / alg / hexd[:2] / hexd

    def entry_path(self, key: str) -> Path:
        return self.actions / key[:2] / f"{key}.json"

    def writable(self) -> bool:
        """Whether this process can add to the store (creating its folders if need be)."""
        try:
            for d in (self.objects, self.actions, self.tmp):
                d.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return all(os.access(d, os.W_OK | os.X_OK) for d in (self.objects, self.actions, self.tmp))

    # ------------------------------------------------------------------ lookup and restore
    def lookup(self, key: str) -> dict[str, Any] | None:
        """The entry of ``key``, else ``None`` (a damaged entry counts as none)."""
        try:
            entry = json.loads(self.entry_path(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("action cache: entry %s is unreadable (%s); computing instead", key, e)
            return None
        if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("key") != key:
            return None
        return entry

    def restore(self, key: str, outputs: Sequence[str]) -> bool:
        """Put the outputs of entry ``key`` at ``outputs`` (paths relative to the working folder, in the job's
        order), verified; ``False`` when there is no usable entry (nothing is changed then)."""
        entry = self.lookup(key)
        if entry is None:
            return False
        recorded = entry["outputs"]
        if [o["path"] for o in recorded] != list(outputs):
            return False  # pragma: no cover - the outputs are part of the key
        for o in recorded:
            for f in o["files"] if o["kind"] == "dir" else [o]:
                blob = self.blob_path(f["digest"])
                try:
                    ok = blob.stat().st_size == f["size"] and blob_digest(blob) == f["digest"]
                except OSError:
                    ok = False
                if not ok:
                    log.warning(
                        "action cache: %s of entry %s is missing or damaged; removing the entry and computing",
                        blob,
                        key,
                    )
                    with contextlib.suppress(OSError):
                        blob.unlink()
                    with contextlib.suppress(OSError):
                        self.entry_path(key).unlink()
                    return False
        now = time.time()
        for o in recorded:
            final = Path(o["path"])
            final.parent.mkdir(parents=True, exist_ok=True)
            if o["kind"] == "dir":
                stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.restore-", dir=final.parent))
                try:
                    for f in o["files"]:
                        self._place(self.blob_path(f["digest"]), stage / f["path"], now)
                    os.chmod(stage, dir_mode())
                    _remove(final)
                    os.replace(stage, final)
                except BaseException:
                    shutil.rmtree(stage, ignore_errors=True)
                    raise
                os.utime(final, (now, now))
            else:
                tmp = final.with_name(f".{final.name}.restore-{os.getpid()}.tmp")
                _remove(tmp)
                try:
                    self._place(self.blob_path(o["digest"]), tmp, now)
                    if final.is_dir() and not final.is_symlink():
                        _remove(final)
                    os.replace(tmp, final)
                except BaseException:
                    with contextlib.suppress(OSError):
                        tmp.unlink()
                    raise
        with contextlib.suppress(OSError):
            os.utime(self.entry_path(key), (now, now))  # last use, for pruning
        return True

    def _place(self, blob: Path, dest: Path, now: float) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        st = blob.stat()
        if st.st_nlink == 1 and st.st_uid == os.getuid() and st.st_dev == _device(dest.parent):
            try:
                os.link(blob, dest)
                os.utime(dest, (now, now))
                return
            except OSError:
                pass
        shutil.copyfile(blob, dest)
        os.chmod(dest, file_mode())
        os.utime(dest, (now, now))

    # ------------------------------------------------------------------ insert
    def insert(self, key: str, outputs: Sequence[str], meta: dict[str, Any]) -> dict[str, Any]:
        """Enter the job's finished ``outputs`` (files or folders) under ``key``; returns the entry. Raises
        ``OSError`` (a full disk, a read-only store); what was published by then is blobs no entry names."""
        recorded = []
        for out in outputs:
            p = Path(out)
            if p.is_dir():
                files = []
                for rel, f in iter_files(p):
                    digest, size = self._publish(f)
                    files.append({"path": rel, "digest": digest, "size": size})
                recorded.append({"path": out, "kind": "dir", "files": files})
            else:
                digest, size = self._publish(p)
                recorded.append({"path": out, "kind": "file", "digest": digest, "size": size})
        entry = {"format": FORMAT, "key": key, "outputs": recorded, **meta}
        target = self.entry_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(entry, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, file_mode())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return entry

    def _publish(self, path: Path) -> tuple[str, int]:
        """Make ``path``'s bytes a blob (if the store lacks them); returns ``(digest, size)``."""
        digest = blob_digest(path)
        size = path.stat().st_size
        blob = self.blob_path(digest)
        if blob.exists():
            return digest, size
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_symlink() and path.stat().st_dev == _device(blob.parent):
            try:
                os.link(path, blob)  # the output itself becomes the blob: no copy
            except FileExistsError:
                return digest, size
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                    raise
            else:  # left writable: the output is the user's, and an in-place edit of it is caught on restore
                return digest, size
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="blob.", dir=self.tmp)
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            if blob_digest(tmp) != digest:  # the output changed while it was copied
                raise OSError(errno.EIO, f"{path} changed while it was copied into the action cache")
            os.chmod(tmp, _readonly_mode())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, blob)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return digest, size

    # ------------------------------------------------------------------ listing, verifying, pruning
    def entries(self) -> Iterator[tuple[Path, dict[str, Any] | None]]:
        """``(entry file, entry or None when unreadable)`` of every entry, oldest use first."""
        files = sorted(self.actions.glob("*/*.json"), key=lambda p: _mtime(p))
        for p in files:
            try:
                yield p, json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                yield p, None

    def blobs(self) -> Iterator[Path]:
        for alg in sorted(self.objects.glob("*")):
            yield from (p for p in alg.glob("*/*") if p.is_file())

    def size(self) -> int:
        return sum(_size(p) for p in self.blobs())

    def verify(self, fix: bool = False) -> Report:
        """Check every entry's blobs against their digests (and, with ``fix``, remove damaged entries and blobs)."""
        rep = Report()
        bad_blobs: set[Path] = set()
        checked: dict[Path, bool] = {}
        for p, entry in self.entries():
            rep.entries += 1
            if entry is None:
                rep.problems.append(f"{p}: unreadable entry")
                if fix:
                    _unlink(p, rep)
                continue
            broken = []
            for f in _entry_files(entry):
                blob = self.blob_path(f["digest"])
                if blob not in checked:
                    try:
                        checked[blob] = blob.stat().st_size == f["size"] and blob_digest(blob) == f["digest"]
                    except OSError:
                        checked[blob] = False
                if not checked[blob]:
                    broken.append(str(blob))
                    bad_blobs.add(blob)
            if broken:
                rep.problems.append(f"{entry.get('rule')} {entry.get('wildcards')} ({p.stem}): {', '.join(broken)}")
                if fix:
                    _unlink(p, rep)
        if fix:
            for blob in bad_blobs:
                if blob.exists():
                    rep.freed_bytes += _size(blob)
                    rep.removed_blobs += 1
                    blob.unlink()
        rep.blobs = sum(1 for _ in self.blobs())
        rep.bytes = self.size()
        return rep

    def prune(self, max_bytes: int, grace: float = GRACE) -> Report:
        """Remove least recently used entries until the blobs the rest name fit ``max_bytes``, then the blobs no
        entry names (older than ``grace`` seconds: an insert may be publishing them)."""
        rep = Report()
        entries = [(p, e) for p, e in self.entries()]
        sizes: dict[str, int] = {}
        refs: dict[str, int] = {}
        for _, e in entries:
            for f in _entry_files(e) if e else ():
                sizes[f["digest"]] = f["size"]
                refs[f["digest"]] = refs.get(f["digest"], 0) + 1
        total = sum(sizes.values())
        kept = []
        for p, e in entries:  # oldest use first
            if e is None or total > max_bytes:
                _unlink(p, rep)
                for f in _entry_files(e) if e else ():
                    refs[f["digest"]] -= 1
                    if refs[f["digest"]] == 0:
                        total -= sizes[f["digest"]]
            else:
                kept.append(p)
        named = {self.blob_path(d) for d, n in refs.items() if n > 0}
        cutoff = time.time() - grace
        for blob in list(self.blobs()):
            if blob in named:
                continue
            with contextlib.suppress(OSError):
                st = blob.stat()
                if max(st.st_mtime, st.st_ctime) < cutoff:
                    blob.unlink()
                    rep.removed_blobs += 1
                    rep.freed_bytes += st.st_size
        for t in self.tmp.glob("*") if self.tmp.is_dir() else ():
            with contextlib.suppress(OSError):
                if _mtime(t) < cutoff:
                    t.unlink()
        for pointer in (self.root / "jobs").glob("*/*"):  # a job's last entry, once that entry is gone
            with contextlib.suppress(OSError):
                if not self.entry_path(pointer.read_text().strip()).exists():
                    pointer.unlink()
        rep.entries = len(kept)
        rep.blobs = sum(1 for _ in self.blobs())
        rep.bytes = self.size()
        return rep

    def prune_if_due(self, max_bytes: int) -> Report | None:
        """:meth:`prune` when the store outgrew ``max_bytes`` and its last check (the mtime of the file
        ``pruned``) is older than :data:`PRUNE_EVERY` seconds, so that inserts do not list the store each time."""
        stamp = self.root / "pruned"
        now = time.time()
        try:
            if now - _mtime(stamp) < PRUNE_EVERY:
                return None
        except OSError:
            pass
        try:
            stamp.touch()
            os.utime(stamp, (now, now))
        except OSError:
            return None
        if self.size() <= max_bytes:
            return None
        return self.prune(max_bytes)


def _entry_files(entry: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for o in entry.get("outputs", []):
        out += o["files"] if o.get("kind") == "dir" else [o]
    return out


def _unlink(p: Path, rep: Report) -> None:
    with contextlib.suppress(OSError):
        p.unlink()
        rep.removed_entries.append(p.stem)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _device(p: Path) -> int:
    return p.stat().st_dev


def _mtime(p: Path) -> float:
    return p.stat().st_mtime


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0
