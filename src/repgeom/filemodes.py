"""The modes artifacts get: what a plain ``open()`` or ``mkdir()`` would give under the process's umask.

Artifacts are written under temporary names made by :func:`tempfile.mkstemp` (mode 0600) and staged in folders
made by :func:`tempfile.mkdtemp` (0700); before they are renamed into place :mod:`repgeom.artifacts` gives them
these modes, so that a group that shares a results tree (umask 0002) can read and replace them, and the usual
umask 0022 gives 0644 files and 0755 folders.

The umask is read from ``/proc/self/status`` (Linux): race-free, cheap enough to read per artifact, and it follows
a process that changes its umask. Elsewhere the only way to read it is to set it and put it back, which another
thread creating a file meanwhile would see: that is done once per process, under a lock, and remembered.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from pathlib import Path

_swapped: int | None = None
_lock = threading.Lock()


def umask() -> int:
    """The process's umask, read without changing it where Linux tells it."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return _umask_by_swap()


def _umask_by_swap() -> int:
    global _swapped
    with _lock:
        if _swapped is None:
            _swapped = os.umask(0o077)  # the strictest value while it is out: nothing is created too open
            os.umask(_swapped)
        return _swapped


def file_mode(executable: bool = False) -> int:
    """0o666 (0o777 for an executable) less the umask: 0o644 under 0022, 0o664 under 0002."""
    return (0o777 if executable else 0o666) & ~umask()


def dir_mode() -> int:
    """0o777 less the umask: 0o755 under 0022, 0o775 under 0002."""
    return 0o777 & ~umask()


def set_file_mode(path: str | os.PathLike) -> None:
    """Give the file at ``path`` the umask's mode (keeping it executable if it is)."""
    st = os.stat(path)
    os.chmod(path, file_mode(bool(st.st_mode & 0o111)))


def set_tree_modes(root: str | os.PathLike) -> None:
    """Give ``root``, every folder and every file under it the umask's modes (files executable stay so).

    Symbolic links are left alone (their target is not ours), and so are files with more than one hard link: a
    link into a store or cache that other paths share, whose mode is not this tree's to change."""
    root = Path(root)
    os.chmod(root, dir_mode())
    dmode, fmode, xmode = dir_mode(), file_mode(), file_mode(executable=True)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            p = os.path.join(folder, name)
            if not os.path.islink(p):
                os.chmod(p, dmode)
        for name in files:
            p = os.path.join(folder, name)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                os.chmod(p, xmode if st.st_mode & 0o111 else fmode)
