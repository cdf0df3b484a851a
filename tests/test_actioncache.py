"""The action cache without Snakemake: digests, keys, the store (insert, restore, verify, prune) and its faults."""

import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from snakemake.iocontainers import Namedlist

from repgeom.actioncache import digest as dg
from repgeom.actioncache.job import Restored
from repgeom.actioncache.key import Action, action_key, explain
from repgeom.actioncache.settings import CacheSettings
from repgeom.actioncache.store import Store
from repgeom.artifacts import write_h5, write_json
from repgeom.smk import job

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def cache_on(monkeypatch):
    """conftest turns the cache off for the other tests; these are about it."""
    monkeypatch.delenv("REPGEOM_CACHE", raising=False)


# --------------------------------------------------------------------------- digests
def test_json_digest_ignores_when_it_was_made_not_what_it_holds(tmp_path):
    a, b, c, d = (tmp_path / f"{n}.json" for n in "abcd")
    write_json(a, {"meta": {"created": "2026-01-01T00:00:00", "rows": 3}, "splits": {"train": [1, 2]}})
    write_json(b, {"meta": {"created": "2026-12-04T09:00:00", "rows": 3}, "splits": {"train": [1, 2]}})
    write_json(c, {"meta": {"created": "2026-01-01T00:00:00", "rows": 3}, "splits": {"train": [2, 1]}})
    write_json(d, {"splits": {"train": [1, 2]}, "meta": {"rows": 3, "created": "x"}})  # members in another order
    assert a.read_bytes() != b.read_bytes()
    assert dg.content_digest(a) == dg.content_digest(b)
    assert dg.content_digest(a) != dg.content_digest(c)
    assert dg.content_digest(a) != dg.content_digest(d)  # order is content: a reader may iterate it
    assert dg.blob_digest(a) != dg.blob_digest(b)  # the store keeps bytes


def test_h5_digest_uses_recorded_checksums_and_ignores_created(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    prov = {"model": "m", "created": "t1", "encode_seconds": 1.0}
    write_h5(tmp_path / "a.h5", {"x": x, "ids": np.array(["a", "b", "c"])}, {**prov, "provenance": prov}, ["x"])
    prov = {"model": "m", "created": "t2", "encode_seconds": 2.0}  # when and how long, also inside a JSON record
    write_h5(tmp_path / "b.h5", {"x": x, "ids": np.array(["a", "b", "c"])}, {**prov, "provenance": prov}, ["x"])
    write_h5(tmp_path / "c.h5", {"x": x + 1, "ids": np.array(["a", "b", "c"])}, {"model": "m", "created": "t1"}, ["x"])
    write_h5(tmp_path / "d.h5", {"x": x, "ids": np.array(["a", "b", "z"])}, {"model": "m", "created": "t1"}, ["x"])
    write_h5(tmp_path / "e.h5", {"x": x, "ids": np.array(["a", "b", "c"])}, {"model": "n", "created": "t1"}, ["x"])
    da, db, dc, dd, de = (dg.content_digest(tmp_path / f"{n}.h5") for n in "abcde")
    assert da.startswith("h5:") and da == db
    assert len({da, dc, dd, de}) == 4
    # the recorded checksum stands for the data: the big array is not read (a damaged array is the readers' to
    # refuse, they verify it), while a dataset without a record is hashed
    with h5py.File(tmp_path / "b.h5", "r+") as f:
        f["x"][0, 0] = 99
    assert dg.content_digest(tmp_path / "b.h5") == da
    with h5py.File(tmp_path / "b.h5", "r+") as f:
        f["ids"][0] = "q"
    assert dg.content_digest(tmp_path / "b.h5") != da


def test_torch_digest_ignores_timings_and_sees_tensors(tmp_path):
    import torch

    def save(name, seconds, w):
        torch.save({"meta": {"seconds": seconds, "kind": "probe"}, "seeds": {"0": {"w": w}}}, tmp_path / name)
        return dg.content_digest(tmp_path / name)

    w = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)
    a, b = save("a.pt", 1.5, w), save("b.pt", 2.5, w)
    assert a.startswith("torch:") and a == b and (tmp_path / "a.pt").read_bytes() != (tmp_path / "b.pt").read_bytes()
    assert save("c.pt", 1.5, w + 1) != a
    assert save("d.pt", 1.5, w.float()) != a  # the dtype counts
    (tmp_path / "e.pt").write_bytes(b"PK\x03\x04 not a torch file")
    assert dg.content_digest(tmp_path / "e.pt") == dg.blob_digest(tmp_path / "e.pt")


def test_tsv_digest_leaves_out_a_timing_column_only(tmp_path):
    a, b, c, d = (tmp_path / f"{n}.tsv" for n in "abcd")
    a.write_text("step\tloss\tseconds\n1\t0.5\t1.25\n2\t0.4\t2.5\n")
    b.write_text("step\tloss\tseconds\n1\t0.5\t1.31\n2\t0.4\t2.62\n")
    c.write_text("step\tloss\tseconds\n1\t0.5\t1.25\n2\t0.3\t2.5\n")
    d.write_text('step\tloss\n1\t"0.5"\n')
    assert dg.content_digest(a) == dg.content_digest(b) != dg.content_digest(c)
    assert dg.content_digest(d) == dg.blob_digest(d)


def test_folder_digest_leaves_out_snakemakes_flag_and_sees_names(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "x.txt").write_text("1")
        (tmp_path / name / "sub" / "y.txt").write_text("2")
    (tmp_path / "b" / dg.FLAG_FILE).write_text("")
    assert dg.content_digest(tmp_path / "a") == dg.content_digest(tmp_path / "b")
    (tmp_path / "b" / "sub" / "y.txt").rename(tmp_path / "b" / "sub" / "z.txt")
    assert dg.content_digest(tmp_path / "a") != dg.content_digest(tmp_path / "b")


def test_memo_remembers_large_files_until_they_change(tmp_path, monkeypatch):
    monkeypatch.setattr(dg, "MEMO_MIN_BYTES", 10)
    memo = dg.DigestMemo(tmp_path / "memo")
    f = tmp_path / "big.bin"
    f.write_bytes(b"x" * 100)
    first = dg.content_digest(f, memo)
    calls = []
    real = dg._file_content_digest
    monkeypatch.setattr(dg, "_file_content_digest", lambda p, n: calls.append(p) or real(p, n))
    assert dg.content_digest(f, memo) == first and calls == []
    f.write_bytes(b"y" * 100)  # same size, new mtime
    assert dg.content_digest(f, memo) != first and calls == [f]


def test_no_library_code_reads_a_volatile_field():
    """What the content digest leaves out must be what no consumer turns into a result."""
    names = "|".join(dg.VOLATILE)
    pat = re.compile(r"""(\[|get\(|attrs\.get\(|\bin\s)\s*["'](""" + names + r""")["']""")
    readers = []
    for p in (ROOT / "src" / "repgeom").rglob("*.py"):
        if "actioncache" in p.parts:  # the cache's own entries, not artifacts
            continue
        for i, line in enumerate(p.read_text().splitlines(), 1):
            writes = re.search(r"""\[["'](""" + names + r""")["']\]\s*=(?!=)""", line)
            if pat.search(line) and not writes and "not in (" not in line:
                readers.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    assert readers == [], readers


# --------------------------------------------------------------------------- keys
def _action(tmp_path, **kw):
    inp = tmp_path / "in.json"
    if not inp.exists():
        write_json(inp, {"rows": [1, 2], "created": "t0"})
    base = dict(
        rule="r",
        wildcards={"model": "m"},
        params={"code": "abc", "spec": {"k": 1}},
        inputs=(("data", str(inp)),),
        outputs=(str(tmp_path / "out.txt"),),
    )
    base.update(kw)
    return Action(**base)


def test_key_follows_params_inputs_and_wildcards_not_provenance(tmp_path):
    k0 = action_key(_action(tmp_path).parts())
    assert action_key(_action(tmp_path).parts()) == k0
    assert action_key(_action(tmp_path, params={"code": "abd", "spec": {"k": 1}}).parts()) != k0
    assert action_key(_action(tmp_path, wildcards={"model": "n"}).parts()) != k0
    write_json(tmp_path / "in.json", {"rows": [1, 2], "created": "t1"})  # rewritten, the same rows
    assert action_key(_action(tmp_path).parts()) == k0
    write_json(tmp_path / "in.json", {"rows": [1, 3], "created": "t1"})
    k1 = action_key(_action(tmp_path).parts())
    assert k1 != k0
    lines = explain(_action(tmp_path, params={"code": "zzz", "spec": {"k": 1}}).parts(), _action(tmp_path).parts())
    assert lines == ['params.code: "zzz" -> "abc"']


def test_key_holds_the_environment(tmp_path, monkeypatch):
    from repgeom.actioncache import key as keymod

    parts = _action(tmp_path).parts()
    env = parts["environment"]
    assert env["distributions"]["numpy"] == np.__version__ and env["device"].startswith(("cpu", "cuda"))
    other = dict(parts, environment=dict(env, device="cuda:NVIDIA H200"))
    assert action_key(other) != action_key(parts)
    monkeypatch.setattr("repgeom.cpuinfo.cpu_bf16_flags", lambda: ["amx_bf16"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    if not Path("/dev/nvidia0").exists():
        assert keymod.device_kind() == "cpu+amx_bf16"  # dtype: auto would take bfloat16 here


def test_wrapper_code_is_in_the_key_but_not_its_comments(tmp_path):
    w = tmp_path / "wrapper.py"
    w.write_text("x = 1  # a comment\n")
    k0 = action_key(_action(tmp_path, script=str(w)).parts())
    w.write_text("# another comment\nx = 1\n")
    assert action_key(_action(tmp_path, script=str(w)).parts()) == k0
    w.write_text("x = 2\n")
    assert action_key(_action(tmp_path, script=str(w)).parts()) != k0


# --------------------------------------------------------------------------- the store
def _outputs(root: Path, content: bytes = b"payload") -> list[str]:
    (root / "res" / "folder" / "sub").mkdir(parents=True, exist_ok=True)
    (root / "res" / "one.bin").write_bytes(content)
    (root / "res" / "folder" / "a.txt").write_bytes(content + b"-a")
    (root / "res" / "folder" / "sub" / "b.txt").write_bytes(b"")
    return ["res/one.bin", "res/folder"]


def test_insert_then_restore_links_or_copies_and_verifies(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store(tmp_path / "store")
    outs = _outputs(tmp_path)
    store.insert("k1", outs, {"rule": "r"})
    # the outputs became the blobs (same file system): no copy, and the user's file keeps its mode
    assert os.stat("res/one.bin").st_nlink == 2 and os.stat("res/one.bin").st_mode & 0o200
    for p in outs:
        (Path(p).unlink() if Path(p).is_file() else __import__("shutil").rmtree(p))
    before = time.time() - 1
    assert store.restore("k1", outs)
    assert Path("res/one.bin").read_bytes() == b"payload"
    assert Path("res/folder/a.txt").read_bytes() == b"payload-a" and Path("res/folder/sub/b.txt").read_bytes() == b""
    assert os.stat("res/one.bin").st_mtime > before  # fresh dates: newer than any input
    # a second workspace gets copies: a link there would let Snakemake's touch re-date this one's outputs
    other = tmp_path / "clone"
    other.mkdir()
    monkeypatch.chdir(other)
    assert store.restore("k1", outs)
    assert os.stat("res/one.bin").st_nlink == 1 and Path("res/one.bin").read_bytes() == b"payload"
    assert not store.restore("k2", outs)


def test_a_flipped_byte_in_the_store_is_caught_and_the_entry_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store(tmp_path / "store")
    outs = _outputs(tmp_path)
    entry = store.insert("k1", outs, {})
    blob = store.blob_path(entry["outputs"][0]["digest"])
    os.chmod(blob, 0o644)
    raw = bytearray(blob.read_bytes())
    raw[3] ^= 0x01
    blob.write_bytes(bytes(raw))
    Path("res/one.bin").unlink()
    assert not store.restore("k1", outs)  # caught: a miss, nothing handed out
    assert not Path("res/one.bin").exists() and store.lookup("k1") is None and not blob.exists()
    _outputs(tmp_path)  # the job computes again and enters its outputs anew
    store.insert("k1", outs, {})
    assert store.restore("k1", outs) and Path("res/one.bin").read_bytes() == b"payload"
    assert store.verify().problems == []


def test_verify_finds_damage_and_fix_removes_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store(tmp_path / "store")
    entry = store.insert("k1", _outputs(tmp_path), {"rule": "r"})
    assert store.verify().problems == []
    blob = store.blob_path(entry["outputs"][1]["files"][0]["digest"])
    os.chmod(blob, 0o644)
    blob.write_bytes(b"other bytes")
    rep = store.verify()
    assert len(rep.problems) == 1 and str(blob) in rep.problems[0]
    rep = store.verify(fix=True)
    assert rep.removed_entries == ["k1"] and store.lookup("k1") is None and not blob.exists()


def test_concurrent_inserts_of_one_key_one_wins_none_corrupts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store(tmp_path / "store")
    workspaces = []
    for i in range(6):
        ws = tmp_path / f"ws{i}"
        ws.mkdir()
        _outputs(ws, b"same content")
        workspaces.append(ws)
    errors = []

    def insert(ws):
        try:
            outs = [str(ws / "res/one.bin"), str(ws / "res/folder")]
            store.insert("k", outs, {})
        except Exception as e:  # pragma: no cover - the failure the test looks for
            errors.append(e)

    threads = [threading.Thread(target=insert, args=(ws,)) for ws in workspaces]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.verify().problems == [] and store.lookup("k") is not None
    assert not list((store.actions).glob("*/.*.tmp"))


_KILLED_INSERT = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {src!r})
    from repgeom.actioncache import store as st
    real = st.blob_digest
    delay = float(sys.argv[1])
    def slow(p):
        time.sleep(delay / 4)
        return real(p)
    st.blob_digest = slow
    os.chdir({ws!r})
    print("start", flush=True)
    st.Store({root!r}).insert("killed", ["res/one.bin", "res/folder"], {{}})
    print("inserted", flush=True)
    """
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_during_insert_leaves_nothing_a_job_accepts(tmp_path, seed):
    rng = np.random.default_rng(seed)
    ws = tmp_path / "ws"
    ws.mkdir()
    _outputs(ws, b"x" * 100000)
    script = tmp_path / "insert.py"
    script.write_text(_KILLED_INSERT.format(src=str(ROOT / "src"), ws=str(ws), root=str(tmp_path / "store")))
    delay = 0.4
    proc = subprocess.Popen([sys.executable, str(script), str(delay)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "start"
    time.sleep(float(rng.uniform(0, 3 * delay / 4)))  # somewhere among the three blobs' digests
    proc.send_signal(signal.SIGKILL)
    out = proc.stdout.read()
    proc.wait()
    store = Store(tmp_path / "store")
    entry = store.lookup("killed")
    if "inserted" not in out:
        assert entry is None  # never a partial entry
    os.chdir(tmp_path)
    try:
        if entry is not None:
            assert store.restore("killed", ["res/one.bin", "res/folder"])
        assert store.verify().problems == []
        assert store.prune(10**12, grace=0).bytes <= 2 * 100000 + 20  # orphan blobs of a killed insert go
    finally:
        os.chdir(ROOT)


def test_full_disk_on_insert_costs_the_entry_not_the_job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from repgeom.actioncache import store as st

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(st.os, "link", full)
    monkeypatch.setattr(st.shutil, "copyfile", full)
    sm = _snakemake(tmp_path)
    ran = _run_job(sm)
    assert ran == 1 and Path("out/result.txt").read_text() == "computed 1"
    log = Path("logs/x.log").read_text()
    assert "the outputs were not stored" in log and "No space left on device" in log
    assert "finished" in log
    assert not list((tmp_path / "store" / "actions").glob("*/*.json"))


def test_prune_removes_least_recently_used_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store(tmp_path / "store")
    for i, key in enumerate(("old", "mid", "new")):
        f = tmp_path / f"f{i}.bin"
        f.write_bytes(bytes([i]) * 1000)
        store.insert(key, [f.name], {})
        os.utime(store.entry_path(key), (1000 + i, 1000 + i))
    Path("f1.bin").unlink()
    assert store.restore("mid", ["f1.bin"])  # a hit counts as a use
    for key in ("old", "new"):  # the pointers to a job's last entry (a failed job names it)
        (store.root / "jobs" / "aa").mkdir(parents=True, exist_ok=True)
        (store.root / "jobs" / "aa" / key).write_text(key + "\n")
    rep = store.prune(2000, grace=0)
    assert rep.removed_entries == ["old"] and store.lookup("mid") and store.lookup("new")
    assert rep.bytes == 2000 and rep.removed_blobs == 1
    assert [p.name for p in (store.root / "jobs" / "aa").iterdir()] == ["new"]


def test_file_modes_follow_the_umask(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for mask, group_bits in ((0o022, 0o040), (0o002, 0o060)):
        old = os.umask(mask)
        try:
            store = Store(tmp_path / f"store{mask}")
            f = tmp_path / f"o{mask}.bin"
            f.write_bytes(str(mask).encode())
            entry = store.insert("k", [f.name], {})
            assert store.entry_path("k").stat().st_mode & 0o777 == 0o666 & ~mask
            assert store.blob_path(entry["outputs"][0]["digest"]).stat().st_mode & 0o777 == 0o666 & ~mask  # linked
            f.unlink()
            (tmp_path / "clone").mkdir(exist_ok=True)
            os.link(store.blob_path(entry["outputs"][0]["digest"]), tmp_path / "pin")  # forces a copy
            assert store.restore("k", [f.name])
            assert f.stat().st_mode & 0o777 == 0o666 & ~mask and f.stat().st_mode & group_bits == group_bits
            (tmp_path / "pin").unlink()
        finally:
            os.umask(old)


# --------------------------------------------------------------------------- a job through repgeom.smk.job
def _named(items: dict) -> Namedlist:
    nl = Namedlist(list(items.values()))
    for i, k in enumerate(items):
        nl._set_name(k, i)
    return nl


def _snakemake(tmp_path: Path, **cache) -> SimpleNamespace:
    write_json(tmp_path / "in.json", {"rows": [1], "created": "a"})
    return SimpleNamespace(
        rule="x",
        input=_named({"data": "in.json"}),
        output=_named({"out": "out/result.txt"}),
        params=_named({"code": "v1"}),
        wildcards=_named({}),
        log=["logs/x.log"],
        resources=SimpleNamespace(gpu=0),
        config={"cache": {"enabled": True, "dir": str(tmp_path / "store"), **cache}},
    )


_RUNS = {"n": 0}


def _run_job(sm) -> int:
    """Run a job body that counts its runs; returns how many times it ran now (0: restored)."""
    before = _RUNS["n"]
    try:
        with job(sm):
            _RUNS["n"] += 1
            Path("out").mkdir(exist_ok=True)
            Path("out/result.txt").write_text(f"computed {_RUNS['n'] - before}")
    except Restored as e:
        assert e.code == 0
    return _RUNS["n"] - before


def test_a_job_restores_instead_of_running_and_reruns_on_a_change(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sm = _snakemake(tmp_path)
    assert _run_job(sm) == 1
    Path("out/result.txt").unlink()  # Snakemake removes a job's outputs before it runs it
    assert _run_job(sm) == 0 and Path("out/result.txt").read_text() == "computed 1"
    log = Path("logs/x.log").read_text()
    assert re.search(r"restored out/result.txt from [0-9a-f]{64}", log) and "failed" not in log
    write_json(tmp_path / "in.json", {"rows": [1], "created": "b"})  # rewritten, same content: still a hit
    Path("out/result.txt").unlink()
    assert _run_job(sm) == 0
    write_json(tmp_path / "in.json", {"rows": [2], "created": "b"})
    Path("out/result.txt").unlink()
    assert _run_job(sm) == 1
    assert "miss; inputs[0][2]" in Path("logs/x.log").read_text()  # says what changed
    sm.config["cache"]["enabled"] = False
    Path("out/result.txt").unlink()
    assert _run_job(sm) == 1


def test_a_read_only_store_is_read_and_the_job_computes_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sm = _snakemake(tmp_path)
    assert _run_job(sm) == 1
    Path("out/result.txt").unlink()
    from repgeom.actioncache import store as st

    monkeypatch.setattr(st.Store, "writable", lambda self: False)
    assert _run_job(sm) == 0  # read: a hit
    write_json(tmp_path / "in.json", {"rows": [5]})
    Path("out/result.txt").unlink()
    assert _run_job(sm) == 1
    log = Path("logs/x.log").read_text()
    assert log.count("is read-only for this user") == 1 and "finished" in log


def test_settings_and_environment_switch(tmp_path, monkeypatch):
    monkeypatch.delenv("REPGEOM_CACHE", raising=False)
    monkeypatch.setenv("REPGEOM_CACHE_DIR", str(tmp_path / "env"))
    s = CacheSettings.of({})
    assert s.enabled and s.dir == tmp_path / "env" and s.max_gb == 50
    assert CacheSettings.of({"cache": {"dir": str(tmp_path / "c")}}).dir == tmp_path / "c"
    monkeypatch.setenv("REPGEOM_CACHE", "off")
    assert not CacheSettings.of({"cache": {"enabled": True}}).enabled
    monkeypatch.delenv("REPGEOM_CACHE_DIR")
    monkeypatch.chdir(tmp_path)
    assert CacheSettings.of({}).dir == tmp_path / ".snakemake" / "repgeom" / "actions"  # beside the results


def test_cli_lists_verifies_and_prunes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store(tmp_path / "store")
    store.insert("k1", _outputs(tmp_path), {"rule": "r", "wildcards": {"model": "m"}})
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "repgeom.actioncache", "--dir", str(tmp_path / "store"), *a],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    out = run("list")
    assert out.returncode == 0 and "r[model=m]" in out.stdout and "3 files" in out.stdout
    assert "1 entries" in run("info").stdout
    assert run("verify").returncode == 0
    assert "removed 1 entries" in run("prune", "--max-gb", "0").stdout
    assert json.loads(json.dumps(store.verify().__dict__))["entries"] == 0


def test_a_failed_job_names_its_last_good_outputs_and_restore_puts_them_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sm = _snakemake(tmp_path)
    assert _run_job(sm) == 1
    good = Path("out/result.txt").read_text()
    Path("out/result.txt").unlink()  # Snakemake removes the outputs before a job runs
    sm.params = _named({"code": "v2"})  # an edited job, which fails
    with pytest.raises(ValueError), job(sm):
        raise ValueError("bad data")
    log = Path("logs/x.log").read_text()
    m = re.search(r"python -m repgeom.actioncache --dir (\S+) restore ([0-9a-f]{64})", log)
    assert m and "the last good outputs of this job (out/result.txt" in log, log
    run = subprocess.run(
        [sys.executable, "-m", "repgeom.actioncache", "--dir", m.group(1), "restore", m.group(2)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert Path("out/result.txt").read_text() == good
    again = subprocess.run(  # an output that exists is not replaced without --force
        [sys.executable, "-m", "repgeom.actioncache", "--dir", m.group(1), "restore", m.group(2)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert again.returncode == 1 and "not replacing" in again.stdout


def test_lookup_off_computes_every_time_and_still_keeps_the_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sm = _snakemake(tmp_path)
    for _ in range(2):
        with job(sm, lookup=False):
            Path("out").mkdir(exist_ok=True)
            Path("out/result.txt").write_text("made")
        Path("out/result.txt").unlink()
    assert len(list((tmp_path / "store" / "actions").glob("*/*.json"))) == 1
    with pytest.raises(RuntimeError), job(sm, lookup=False):
        raise RuntimeError("source unreadable")
    assert "python -m repgeom.actioncache" in Path("logs/x.log").read_text()
