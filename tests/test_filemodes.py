"""Artifacts get the modes the umask gives (files 0o666, folders 0o777, less the umask), not mkstemp's 0600 and
mkdtemp's 0700: a JSON artifact, an HDF5 artifact, an atomic folder and an activation shard, each written by a
process running under umask 0022 and 0002 (issue 36, item 6)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from repgeom import filemodes

ROOT = Path(__file__).resolve().parents[1]

WRITER = textwrap.dedent(
    """
    import os, shutil, sys, tempfile
    from pathlib import Path
    mask, out = int(sys.argv[1], 8), Path(sys.argv[2])
    os.umask(mask)
    import contextlib
    import numpy as np
    from repgeom.artifacts import atomic_dir, write_h5, write_json
    from repgeom.activations.layout import shard_path
    from repgeom.activations.writer import ShardWriter

    write_json(out / "json" / "a.json", {"a": 1})
    write_h5(out / "h5" / "e.h5", {"x": np.arange(3.0)}, {"k": "v"}, checksum=["x"])
    shared = out / "shared.bin"  # a file another path links to (a store's blob): not the folder's to change
    shared.write_bytes(b"s")
    os.chmod(shared, 0o600)
    with atomic_dir(out / "folder") as stage:
        fd, private = tempfile.mkstemp(dir=stage)  # 0600, as a library's own temporary would be
        os.close(fd)
        os.rename(private, stage / "private.bin")
        (stage / "sub").mkdir(mode=0o700)
        (stage / "sub" / "tool.sh").write_text("#!/bin/sh\\n")
        os.chmod(stage / "sub" / "tool.sh", 0o700)  # unpacked executable: stays executable
        os.link(shared, stage / "linked.bin")
        os.symlink("private.bin", stage / "alias")
    with contextlib.ExitStack() as stack:
        w = ShardWriter(stack, out / "shards", ["mean"], [0], (4, 3), "float32", None,
                        np.array([b"a", b"b", b"c", b"d"], dtype="S1"), np.ones(4, dtype=np.int32), 4)
        w.add(0, 4, np.arange(4), {"mean": np.ones((4, 1, 3), dtype=np.float32)})
        w.flush()
        w.finish({"model": "m", "store_dtype": "float32"}, {})
    print(shard_path(out / "shards", 0, "mean"))
    """
)


def _mode(p: Path) -> int:
    return p.lstat().st_mode & 0o777


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_artifacts_follow_the_umask(tmp_path, mask):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", WRITER, f"{mask:o}", str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    shard = Path(proc.stdout.strip().splitlines()[-1])
    f, d = 0o666 & ~mask, 0o777 & ~mask
    group = 0o060 if mask == 0o002 else 0o040  # group-readable always; group-writable under 0002
    for p in (tmp_path / "json/a.json", tmp_path / "h5/e.h5", shard, tmp_path / "folder/private.bin"):
        assert _mode(p) == f and _mode(p) & group == group, (p, oct(_mode(p)))
    for p in (tmp_path / "folder", tmp_path / "folder/sub", shard.parent):
        assert _mode(p) == d and _mode(p) & group == group, (p, oct(_mode(p)))
    assert _mode(tmp_path / "folder/sub/tool.sh") == d  # executable: 0o777 less the umask
    assert _mode(tmp_path / "shared.bin") == 0o600  # a hard-linked file keeps its own mode
    assert (tmp_path / "folder/alias").is_symlink()
    assert json.loads((tmp_path / "json/a.json").read_text()) == {"a": 1}
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_umask_is_read_without_changing_it(monkeypatch):
    old = os.umask(0o027)
    try:
        assert filemodes.umask() == 0o027
        assert filemodes.file_mode() == 0o640 and filemodes.dir_mode() == 0o750
        assert filemodes.file_mode(executable=True) == 0o750
        assert os.umask(0o027) == 0o027  # unchanged by the read
    finally:
        os.umask(old)


def test_umask_without_proc_is_swapped_once(monkeypatch):
    """Where /proc cannot tell, the umask is read by setting and restoring it, once per process."""
    real_open = open

    def no_proc(path, *a, **kw):
        if str(path) == "/proc/self/status":
            raise FileNotFoundError(path)
        return real_open(path, *a, **kw)

    calls = []
    real_umask = os.umask
    monkeypatch.setattr("builtins.open", no_proc)
    monkeypatch.setattr(filemodes, "_swapped", None)
    monkeypatch.setattr(os, "umask", lambda m: calls.append(m) or real_umask(m))
    old = real_umask(0o002)
    try:
        assert filemodes.umask() == 0o002 and filemodes.umask() == 0o002
        assert len(calls) == 2  # set to 0o077, put back: once
        assert real_umask(0o002) == 0o002
    finally:
        real_umask(old)
