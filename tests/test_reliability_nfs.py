"""Shared filesystems without locks: NFS without a lock daemon answers flock/fcntl locks with ENOLCK, Lustre
mounted without ``flock`` with ENOSYS. No such mount can be made in a test, so an LD_PRELOAD shim (compiled here
with gcc) makes every flock() and every fcntl() lock request fail with that errno, which is what HDF5 sees on
those mounts. The shim is first shown to bite (HDF5's own locking fails under it), then the library's HDF5
writers and readers, and a whole tiny workflow run, are shown to work under it."""

import errno
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, snakemake

SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/file.h>

static int shim_errno(void) {
    const char *e = getenv("NOLOCK_ERRNO");
    return e ? atoi(e) : ENOLCK;
}
static int is_lock(int cmd) {
    return cmd == F_SETLK || cmd == F_SETLKW || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW;
}
int flock(int fd, int op) { (void)fd; (void)op; errno = shim_errno(); return -1; }
#define FORWARD(NAME)                                                                   \
    int NAME(int fd, int cmd, ...) {                                                    \
        va_list ap; va_start(ap, cmd); void *arg = va_arg(ap, void *); va_end(ap);      \
        if (is_lock(cmd)) { errno = shim_errno(); return -1; }                          \
        static int (*real)(int, int, ...);                                              \
        if (!real) real = (int (*)(int, int, ...))dlsym(RTLD_NEXT, #NAME);              \
        return real(fd, cmd, arg);                                                      \
    }
FORWARD(fcntl)
FORWARD(fcntl64)
"""

ERRNOS = {"nfs-ENOLCK": errno.ENOLCK, "lustre-ENOSYS": errno.ENOSYS}


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    gcc = shutil.which("gcc")
    if not gcc:
        pytest.skip("gcc is not installed: cannot build the no-locks LD_PRELOAD shim")
    d = tmp_path_factory.mktemp("shim")
    (d / "nolock.c").write_text(SHIM_C)
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-o", str(d / "nolock.so"), str(d / "nolock.c"), "-ldl"],
        check=True,
        capture_output=True,
    )
    return d / "nolock.so"


def _run(code: str, shim: Path | None, err: int, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "NOLOCK_ERRNO": str(err), "PYTHONPATH": str(ROOT / "src")}
    env.pop("HDF5_USE_FILE_LOCKING", None)  # HDF5's own default, as on a user's machine
    if shim:
        env["LD_PRELOAD"] = str(shim)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=timeout
    )


PROBE = """
    import fcntl, os
    import h5py
    import numpy as np
    path = {path!r}
    with h5py.File(path, "w", locking=False) as f:
        f["x"] = np.arange(3)
    def opens(**kw):
        try:
            h5py.File(path, "r", **kw).close()
            return "ok"
        except OSError as e:
            return "errno %d" % e.errno if e.errno else str(e)
    def lock(fn):
        fd = os.open(path, os.O_RDONLY)
        try:
            fn(fd)
            return "ok"
        except OSError as e:
            return "errno %d" % e.errno
        finally:
            os.close(fd)
    print("default", opens())
    print("locking=True", opens(locking=True))
    print("locking=False", opens(locking=False))
    print("flock", lock(lambda fd: fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)))
    print("fcntl", lock(lambda fd: fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)))
    print("HDF5_USE_FILE_LOCKING", os.environ.get("HDF5_USE_FILE_LOCKING"))
"""


@pytest.mark.parametrize("fs", list(ERRNOS))
def test_the_shim_makes_hdf5_locking_fail_like_the_real_filesystem(shim, tmp_path, fs):
    err = ERRNOS[fs]
    code = PROBE.format(path=str(tmp_path / "a.h5"))
    plain = _run(code, None, err)
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert dict(line.split(" ", 1) for line in plain.stdout.splitlines()) == {
        "default": "ok",
        "locking=True": "ok",
        "locking=False": "ok",
        "flock": "ok",
        "fcntl": "ok",
        "HDF5_USE_FILE_LOCKING": "None",
    }
    got = _run(code, shim, err)
    assert got.returncode == 0, got.stderr[-3000:]
    res = dict(line.split(" ", 1) for line in got.stdout.splitlines())
    # both lock calls fail with the filesystem's errno, and so does HDF5's locking open
    assert res["flock"] == res["fcntl"] == res["locking=True"] == f"errno {err}", res
    # HDF5's default is 'best effort': it ignores ENOSYS ("locks disabled on this filesystem") but not ENOLCK,
    # so on NFS without lockd a plain h5py.File(path, "r") fails; without locks, both work
    assert res["default"] == (f"errno {err}" if err == errno.ENOLCK else "ok"), res
    assert res["locking=False"] == "ok", res


LIBRARY = """
    import errno, sys
    import h5py
    import numpy as np
    from repgeom import activations as A
    from repgeom.artifacts import read_embeddings, read_h5, texts_sha256, write_h5, write_json, read_json
    out = {out!r}
    try:  # the shim is active in this very process
        h5py.File({probe!r}, "r", locking=True).close()
        raise SystemExit("the shim did not bite")
    except OSError as e:
        assert e.errno == {err}, e
    X = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    ids, labels = np.array([f"i{{k}}" for k in range(6)], dtype=object), np.array(list("aabbcc"), dtype=object)
    write_h5(out + "/emb.h5", {{"embeddings": X, "ids": ids, "labels": labels}},
             {{"kind": "embeddings", "texts_sha256": "t"}}, checksum=("embeddings",))
    data, attrs = read_h5(out + "/emb.h5", expect={{"texts_sha256": "t"}})
    assert np.array_equal(data["embeddings"], X) and attrs["complete"]
    Y, got_ids, got_labels, _ = read_embeddings(out + "/emb.h5")
    assert np.array_equal(Y, X) and list(got_ids) == list(ids) and list(got_labels) == list(labels)
    write_json(out + "/m.json", {{"a": 1}})
    assert read_json(out + "/m.json") == {{"a": 1}}
    texts = ["1, 2, 3", "2, 4, 6, 8", "a b c", "10, 20"]
    summary = A.extract(texts, ["k0", "k1", "k2", "k3"], {model!r}, out + "/acts", model="tiny", batch_size=2,
                        positions=("last", "mean"), progress=False)
    layers = A.list_layers(out + "/acts")
    assert layers == summary["layers"] == A.list_layers(out + "/acts", "mean") and layers, (layers, summary)
    for pos in ("last", "mean"):
        n = 0
        for L, Z, zids, a in A.iter_layers(out + "/acts", position=pos, expect={{"texts_sha256": texts_sha256(texts)}}):
            assert Z.shape[0] == 4 and list(zids) == ["k0", "k1", "k2", "k3"] and np.isfinite(Z).all()
            A.check_shard(A.shard_path(out + "/acts", L, pos))
            n += 1
        assert n == len(layers)
    Z, zids, a = A.load_layer(out + "/acts", layers[-1])
    print("ok", len(layers))
"""


@pytest.mark.parametrize("fs", list(ERRNOS))
def test_library_writers_and_readers_work_without_locks(shim, tmp_path, fs):
    from test_activations import _save_tiny  # a 3-block GPT-2 with its own tokenizer, made in a second

    model = _save_tiny(tmp_path / "gpt2")
    probe = tmp_path / "probe.h5"
    assert _run(PROBE.format(path=str(probe)), None, 0).returncode == 0  # makes the probe file
    (tmp_path / "out").mkdir()
    code = LIBRARY.format(out=str(tmp_path / "out"), probe=str(probe), err=ERRNOS[fs], model=str(model))
    proc = _run(code, shim, ERRNOS[fs])
    assert proc.returncode == 0 and proc.stdout.startswith("ok 3"), proc.stdout[-2000:] + proc.stderr[-4000:]
    assert not [p for p in (tmp_path / "out").rglob(".*") if p.is_file()]


@pytest.mark.e2e
@pytest.mark.model
def test_tiny_workflow_runs_on_a_filesystem_without_locks(shim, tmp_path, tiny_config, prepared_minilm, monkeypatch):
    wd = tmp_path / "wd"
    wd.mkdir()
    shutil.copytree(prepared_minilm, wd / "resources/models/minilm")  # skip re-fetching the model
    monkeypatch.setenv("LD_PRELOAD", str(shim))
    monkeypatch.setenv("NOLOCK_ERRNO", str(errno.ENOLCK))
    monkeypatch.delenv("HDF5_USE_FILE_LOCKING", raising=False)
    check = _run(PROBE.format(path=str(tmp_path / "p.h5")), shim, errno.ENOLCK)  # inherited by every job
    assert f"default errno {errno.ENOLCK}" in check.stdout, check.stdout + check.stderr
    snakemake(wd, configfile=tiny_config)
    monkeypatch.delenv("LD_PRELOAD")
    from repgeom.artifacts import read_embeddings

    X, ids, labels, attrs = read_embeddings(wd / "results/embeddings/tiny/minilm.h5")
    assert X.shape == (18, 384)
    for out in (
        "results/metrics/tiny/summary.tsv",
        "results/plots/tiny/bars.png",
        "results/plots/tiny/tsne/minilm.png",
    ):
        assert (wd / out).stat().st_size > 0, out
    assert "finished" in (wd / "logs/metrics/tiny/minilm.log").read_text()
