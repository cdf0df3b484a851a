"""Row-parts through the workflow: a text set in three parts runs as three part jobs and a gather, reads (and
feeds the layer study) exactly as one whole job would, a killed part reruns alone, and a grown text set reruns
only the parts whose rows changed."""

import os
import shutil

import pandas as pd
import pytest
from conftest import ROOT, assert_same_features, kill_at_random_point, snakemake, unlock_and_rerun

from repgeom import activations as A
from repgeom.architectures import build_tiny
from repgeom.configure.config import load_yaml

pytestmark = [pytest.mark.e2e]
TARGET = "results/metrics/seq/layers.tsv"
ACTS = "results/activations/tiny/seq"
PARTS = ["rows_000000000-000000256", "rows_000000256-000000512", "rows_000000512-000000600"]


def _config(wd, model, **activations):
    import yaml

    cfg = load_yaml(ROOT / "tests/configs/tiny_parts.yaml")
    cfg["models"]["tiny"]["source"]["path"] = str(model)
    cfg["activations"].update(activations)
    path = wd / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_tiny("gpt2", tmp_path_factory.mktemp("tiny") / "gpt2")


@pytest.fixture(scope="module")
def parts_run(tmp_path_factory, model):
    wd = tmp_path_factory.mktemp("parts_run")
    cfg = _config(wd, model)
    proc = snakemake(wd, TARGET, configfile=cfg)
    return wd, cfg, proc


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, model):
    wd = tmp_path_factory.mktemp("whole_run")
    snakemake(wd, TARGET, configfile=_config(wd, model, rows_per_part=1024))
    return wd


def _mtimes(wd):
    return {p: os.stat(wd / f"{ACTS}.parts/{p}/layer_01.h5").st_mtime_ns for p in PARTS}


def test_three_part_jobs_and_a_gather_equal_one_whole_job(parts_run, whole_run):
    wd, _, proc = parts_run
    log = proc.stdout + proc.stderr
    assert log.count("rule activation_part:") == 3 and log.count("rule activations:") == 1
    assert sorted(p.name for p in (wd / f"{ACTS}.parts").iterdir()) == PARTS
    assert not (whole_run / f"{ACTS}.parts").exists()  # one part: extracted in place, nothing gathered
    for pos in ("last", "mean"):
        layers = A.list_layers(whole_run / ACTS, pos)
        assert layers == A.list_layers(wd / ACTS, pos) and layers
        for L in layers:
            Xg, ids_g, ag = A.load_layer(wd / ACTS, L, position=pos)
            Xw, ids_w, aw = A.load_layer(whole_run / ACTS, L, position=pos)
            assert_same_features(Xg, Xw, f"{pos} layer {L}")  # the same batches, another process
            assert list(ids_g) == list(ids_w) and ag["texts_sha256"] == aw["texts_sha256"]
            assert [next(x for x in e["file"].split("/") if x.startswith("rows_")) for e in ag["parts"]] == PARTS
    pd.testing.assert_frame_equal(pd.read_csv(wd / TARGET, sep="\t"), pd.read_csv(whole_run / TARGET, sep="\t"))


def test_a_killed_part_reruns_alone(parts_run):
    wd, cfg, _ = parts_run
    before = _mtimes(wd)
    shutil.rmtree(wd / ACTS)  # as in a first run: the gather waits for every part, one part is being made
    target = f"{ACTS}.parts/{PARTS[1]}"
    state = kill_at_random_point(wd, target, cfg, seed=3, max_delay=8.0, min_delay=2.0, targets=(ACTS,))
    proc = unlock_and_rerun(wd, ACTS, configfile=cfg)
    log = proc.stdout + proc.stderr
    assert log.count("rule activation_part:") <= 1 and log.count("rule activations:") == 1, state
    after = _mtimes(wd)
    assert after[PARTS[0]] == before[PARTS[0]] and after[PARTS[2]] == before[PARTS[2]]
    assert after[PARTS[1]] != before[PARTS[1]]  # remade, by the killed run or the rerun
    A.check_shard(A.shard_path(wd / ACTS, 1), verify=True)


def test_a_grown_text_set_reruns_only_the_parts_whose_rows_changed(parts_run, model, tmp_path):
    wd, cfg, _ = parts_run
    grown = tmp_path / "grown"
    shutil.copytree(wd, grown, symlinks=True)
    path = _config(grown, model)
    text = path.read_text().replace("- recaman\n", "- recaman\n    - composites\n")  # 120 more rows at the end
    path.write_text(text)
    before = _mtimes(grown)
    proc = snakemake(grown, TARGET, configfile=path)
    log = proc.stdout + proc.stderr
    assert log.count("rule activation_part:") == 1  # rows 512-720: the two full parts' rows did not change
    after = sorted(p.name for p in (grown / f"{ACTS}.parts").iterdir())
    assert after == PARTS[:2] + ["rows_000000512-000000720"]  # the old last part is gone with its plan
    assert {p: os.stat(grown / f"{ACTS}.parts/{p}/layer_01.h5").st_mtime_ns for p in PARTS[:2]} == {
        p: before[p] for p in PARTS[:2]
    }
    X, _, attrs = A.load_layer(grown / ACTS, 1)
    assert X.shape[0] == attrs["n"] == 720


def test_a_killed_gather_reruns_alone(parts_run):
    wd, cfg, _ = parts_run
    before = _mtimes(wd)
    # the parts are there: the only job is the gather; killed at a random point of it (or of Snakemake's start)
    state = kill_at_random_point(wd, ACTS, cfg, seed=11, max_delay=6.0, min_delay=1.0, leftovers=".layer_*.tmp")
    proc = unlock_and_rerun(wd, ACTS, configfile=cfg)
    log = proc.stdout + proc.stderr
    assert "rule activation_part:" not in log and _mtimes(wd) == before, state
    assert not list((wd / ACTS).rglob(".layer_*"))  # no temporaries left beside the gathered layers
    for L in A.list_layers(wd / ACTS):
        A.check_shard(A.shard_path(wd / ACTS, L), verify=True)
