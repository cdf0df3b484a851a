"""The ``hub`` model source for real: ``huggingface_hub`` downloads, through ``HF_ENDPOINT``, from a loopback
server speaking the hub's interface (:mod:`hub_server`), with MiniLM (from its package), a tiny random-weight
decoder and a remote-code model behind it. Each prepare runs in a fresh process with its own ``HF_HOME``, as a
user's job would (``huggingface_hub`` reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` when imported)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from hub_server import FakeHub, folder_files

from repgeom.configure import stages
from repgeom.configure.config import one_model_config
from repgeom.models import code_sha256, files_sha256, load_manifest, prepare, resolve_model_path

torch = pytest.importorskip("torch")

RUN = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
from repgeom.configure import stages
from repgeom.configure.config import one_model_config
from repgeom.models import prepare
name, entry, out = json.loads(sys.argv[1])
prepare(stages.prepare_params(one_model_config(name, entry), name), out)
"""
TEXTS = ["1, 2, 3", "2, 3, 5, 7, 11, 13, 17", "A man is playing a guitar."]


def hub_prepare(tmp_path, endpoint, entry, out, offline=False, name="m"):
    """Prepare model ``name`` in a subprocess against ``endpoint`` with ``tmp_path/hf`` as ``HF_HOME``."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(ROOT / "src"))
    env.update({"HF_ENDPOINT": endpoint} if endpoint else {})
    env.update({"HF_HUB_OFFLINE": "1"} if offline else {})
    cmd = [sys.executable, "-c", RUN, json.dumps([name, entry, str(out)])]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def ok(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def hub_entry(runtime, revision="main", repo="org/m", **extra):
    return {"runtime": runtime, "source": {"type": "hub", "id": repo, "revision": revision}, **extra}


def local_manifest(tmp_path, folder, runtime, name="m", **extra):
    cfg = one_model_config(name, {"runtime": runtime, "source": {"type": "local", "path": str(folder)}, **extra})
    return prepare(stages.prepare_params(cfg, name), tmp_path / f"local_{name}")


@pytest.fixture(scope="module")
def tiny_decoder(tmp_path_factory):
    from repgeom.architectures import build_tiny

    return build_tiny("qwen2", tmp_path_factory.mktemp("tiny") / "qwen2")


def test_hub_source_prepares_what_the_local_source_prepares_and_works_offline(tmp_path, prepared_minilm):
    from repgeom.embeddings import load_runtime

    folder = resolve_model_path(prepared_minilm, load_manifest(prepared_minilm))
    with FakeHub() as hub:
        commit = hub.push("sentence-transformers/all-MiniLM-L6-v2", folder_files(folder))
        entry = hub_entry("sentence-transformers", repo="sentence-transformers/all-MiniLM-L6-v2")
        ok(hub_prepare(tmp_path, hub.url, entry, tmp_path / "hub"))
    man = load_manifest(tmp_path / "hub")
    snap = resolve_model_path(tmp_path / "hub", man)
    assert snap.name == commit and snap.parent.name == "snapshots" and str(tmp_path / "hf") in str(snap)
    assert man["hub"]["commit"] == commit and man["hub"]["revision"] == "main" and man["hub"]["endpoint"] == hub.url
    assert man["hub"]["verified"] == {"checked": len(man["files"]), "offline": False}
    local = local_manifest(tmp_path, folder, "sentence-transformers")
    assert man["files"] == local["files"] == files_sha256(folder)  # the very same bytes, file for file

    params = stages.embed_params(one_model_config("m", entry), "m").replace(device="cpu")
    e_hub = load_runtime(tmp_path / "hub", params).encode(TEXTS, 3, progress=False)
    e_local = load_runtime(tmp_path / "local_m", params).encode(TEXTS, 3, progress=False)
    np.testing.assert_array_equal(e_hub, e_local)

    # the server is gone: HF_HUB_OFFLINE=1 prepares from the warm cache, unchecked (and says so)
    proc = ok(hub_prepare(tmp_path, None, entry, tmp_path / "offline", offline=True))
    off = load_manifest(tmp_path / "offline")
    assert off["files"] == man["files"] and off["hub"]["commit"] == commit
    assert off["hub"]["verified"] == {"checked": 0, "offline": True} and "used unchecked" in proc.stderr
    # without HF_HUB_OFFLINE the unreachable hub is an error that says how to use the cache
    proc = hub_prepare(tmp_path, hub.url, entry, tmp_path / "down")
    assert proc.returncode != 0 and "HF_HUB_OFFLINE=1" in proc.stderr and not (tmp_path / "down").exists()


def test_a_tiny_decoder_and_remote_code_from_a_pinned_commit(tmp_path, tiny_decoder, remote_dir):
    from repgeom import activations as A

    with FakeHub() as hub:
        dec = hub.push("org/tiny-qwen2", folder_files(tiny_decoder))
        rem = hub.push("org/tiny-remote", folder_files(remote_dir))
        ok(hub_prepare(tmp_path, hub.url, hub_entry("decoder", dec, "org/tiny-qwen2"), tmp_path / "dec"))
        digest = code_sha256(remote_dir)[0]
        entry = hub_entry("decoder", rem, "org/tiny-remote", trust_remote_code=True, pooling="mean")
        proc = ok(hub_prepare(tmp_path, hub.url, entry, tmp_path / "rem"))
    man = load_manifest(tmp_path / "dec")
    assert man["hub"]["commit"] == dec and man["files"] == local_manifest(tmp_path, tiny_decoder, "decoder")["files"]
    model, _, _ = A.load_decoder(tmp_path / "dec")
    assert len(A.find_blocks(model)[1]) == model.config.num_hidden_layers
    rman = load_manifest(tmp_path / "rem")
    assert rman["hub"]["commit"] == rem and rman["remote_code"]["sha256"] == digest
    assert f"runs remote code: configuration_tiny_remote.py, modeling_tiny_remote.py (sha256 {digest})" in proc.stderr
    model, _, info = A.load_decoder(tmp_path / "rem")
    assert type(model).__name__ == "TinyRemoteModel" and info["trust_remote_code"] is True


def test_a_revision_that_does_not_exist(tmp_path, tiny_decoder):
    with FakeHub() as hub:
        hub.push("org/m", folder_files(tiny_decoder))
        for rev in ("v9", "f" * 40):
            proc = hub_prepare(tmp_path, hub.url, hub_entry("decoder", rev), tmp_path / "out")
            assert proc.returncode != 0
            assert f"revision '{rev}' does not exist in org/m on {hub.url}; pin an existing commit" in proc.stderr
        proc = hub_prepare(tmp_path, hub.url, hub_entry("decoder", repo="org/nope"), tmp_path / "out")
        assert proc.returncode != 0 and f"org/nope is not on {hub.url}" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_file_changed_on_the_server_is_detected_on_the_next_prepare(tmp_path, tiny_decoder):
    files = folder_files(tiny_decoder)
    with FakeHub() as hub:
        c1 = hub.push("org/m", files)
        ok(hub_prepare(tmp_path, hub.url, hub_entry("decoder"), tmp_path / "first"))
        # the server rewrites a published commit: the warm cache no longer matches the hub's listing
        hub.tamper("org/m", c1, "config.json", files["config.json"].replace(b'"hidden_size"', b'"hidden_size" '))
        proc = hub_prepare(tmp_path, hub.url, hub_entry("decoder"), tmp_path / "second")
        assert proc.returncode != 0, proc.stderr
        assert f"the files of org/m@{c1} do not match the hub's listing" in proc.stderr
        assert "config.json: git blob sha1 " in proc.stderr and "the hub lists " in proc.stderr
        assert not (tmp_path / "second").exists() and load_manifest(tmp_path / "first")["hub"]["commit"] == c1
        # a new commit on the branch: prepared, with the move logged and recorded
        new = dict(files, **{"config.json": files["config.json"].replace(b"{", b'{"note": 1, ', 1)})
        c2 = hub.push("org/m", new)
        proc = ok(hub_prepare(tmp_path, hub.url, hub_entry("decoder"), tmp_path / "third"))
    man = load_manifest(tmp_path / "third")
    assert man["hub"]["commit"] == c2 and man["hub"]["previous_commit"] == c1
    assert f"now resolves to commit {c2}; this cache last saw {c1}" in proc.stderr
    assert man["files"]["config.json"] != load_manifest(tmp_path / "first")["files"]["config.json"]


def test_a_cut_off_transfer_is_resumed_or_refused_and_never_trusted(tmp_path, tiny_decoder):
    files = folder_files(tiny_decoder)
    with FakeHub() as hub:
        hub.push("org/m", files)
        ok(hub_prepare(tmp_path / "clean", hub.url, hub_entry("decoder"), tmp_path / "clean" / "out"))
        want = load_manifest(tmp_path / "clean" / "out")["files"]

        hub.cut("org/m", "model.safetensors", after=1000, times=1)  # once: the library retries
        proc = ok(hub_prepare(tmp_path / "once", hub.url, hub_entry("decoder"), tmp_path / "once" / "out"))
        assert load_manifest(tmp_path / "once" / "out")["files"] == want
        assert "peer closed connection" in proc.stderr and len(hub.gets("model.safetensors")) == 3

        hub.cut("org/m", "model.safetensors", after=1000, times=100)  # always: a clear error, nothing trusted
        proc = hub_prepare(tmp_path / "always", hub.url, hub_entry("decoder"), tmp_path / "always" / "out")
        assert proc.returncode != 0 and "model 'm': cannot get org/m@main from the hub" in proc.stderr
        assert not (tmp_path / "always" / "out").exists()
        snaps = list((tmp_path / "always" / "hf").rglob("snapshots/*/model.safetensors"))
        assert snaps == [], "a cut-off file reached the snapshot"
        hub.cut("org/m", "model.safetensors", after=0, times=0)  # the server recovers: the same cache completes
        ok(hub_prepare(tmp_path / "always", hub.url, hub_entry("decoder"), tmp_path / "always" / "out"))
    assert load_manifest(tmp_path / "always" / "out")["files"] == want
