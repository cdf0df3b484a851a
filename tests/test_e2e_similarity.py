"""The similarity stage end to end: MiniLM (its embedding) and SmolLM2 (every layer at two poolings, and its
embedding) on the tiny numeric set; numbers recomputed from the artifacts, and only a new model's pairs scheduled."""

import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, snakemake

from repgeom.activations import load_layer
from repgeom.artifacts import read_embeddings, read_json
from repgeom.similarity.measures import debiased_cka, linear_cka, mutual_knn
from repgeom.similarity.rsa import rsa

pytestmark = [pytest.mark.e2e, pytest.mark.model]
CONFIG = ROOT / "tests/configs/tiny_similarity.yaml"
PAIRS = ["minilm__smollm2", "smollm2__smollm2"]


@pytest.fixture(scope="module")
def similarity_run(tmp_path_factory, prepared_minilm, prepared_smollm2):
    wd = tmp_path_factory.mktemp("similarity_run")
    shutil.copytree(prepared_minilm, wd / "resources/models/minilm")
    shutil.copytree(prepared_smollm2, wd / "resources/models/smollm2")
    snakemake(wd, "similarity", configfile=CONFIG)
    return wd


def test_pair_records_agree_with_a_recomputation_from_the_artifacts(similarity_run):
    wd = similarity_run
    assert sorted(p.stem for p in (wd / "results/similarity/tiny/pairs").glob("*.json")) == PAIRS
    rec = read_json(wd / "results/similarity/tiny/pairs/minilm__smollm2.json")
    assert [r["label"] for r in rec["reps_a"]] == ["embedding"]
    labels = [r["label"] for r in rec["reps_b"]]
    assert labels[0] == "embedding" and labels[1:32] == [f"last:{L}" for L in range(31)] and len(labels) == 63
    E, ids_e, _, _ = read_embeddings(wd / "results/embeddings/tiny/minilm.h5")
    shards = wd / "results/activations/smollm2/tiny"
    for pos, layer in (("last", 30), ("mean", 7)):
        X, ids, _ = load_layer(shards, layer, position=pos)
        assert list(ids) == list(ids_e)
        j = labels.index(f"{pos}:{layer}")
        got = {m: rec["measures"][m][0][j] for m in rec["measures"]}
        assert got["cka"] == pytest.approx(linear_cka(E.astype(np.float64), X.astype(np.float64)), abs=1e-5)
        assert got["cka_debiased"] == pytest.approx(debiased_cka(E.astype(np.float64), X.astype(np.float64)), abs=1e-4)
        assert got["mutual_knn"] == pytest.approx(mutual_knn(E, X, 4))
        assert got["rsa"] == pytest.approx(rsa(E, X), abs=1e-6)
        assert 0 <= got["procrustes"] <= 2
    u = rec["headline"]["final"]["uncertainty"]
    assert rec["headline"]["final"]["b"] == "embedding" and u["n_texts"] == 18
    assert u["ci_low"] <= u["cka"] <= u["ci_high"] and 0 < u["p_value"] <= 1
    own = read_json(wd / "results/similarity/tiny/pairs/smollm2__smollm2.json")
    C = np.asarray(own["measures"]["cka"])
    assert C.shape == (63, 63) and np.allclose(np.diag(C), 1.0, atol=1e-5) and np.allclose(C, C.T)
    assert "final" not in own["headline"]  # a model with itself has no headline pair


def test_tables_and_figures(similarity_run):
    d = similarity_run / "results/similarity/tiny"
    layers = pd.read_csv(d / "layers.tsv", sep="\t")
    assert len(layers) == 63 + 63 * 63
    assert {"cka", "cka_debiased", "mutual_knn", "rsa", "procrustes", "depth_a", "depth_b"} <= set(layers.columns)
    models = pd.read_csv(d / "models.tsv", sep="\t")
    assert list(zip(models.model_a, models.model_b)) == [("minilm", "smollm2")]
    assert bool(models.too_wide.iloc[0]) == (models.ci_high.iloc[0] - models.ci_low.iloc[0] > 0.2)
    best = pd.read_csv(d / "best_layers.tsv", sep="\t")
    mine = best[(best.model == "minilm") & (best.other == "smollm2")]
    sub = layers[(layers.model_a == "minilm") & (layers.model_b == "smollm2")]
    assert mine.best_rep.iloc[0] == sub.loc[sub.cka.idxmax(), "rep_b"]
    md = (d / "summary.md").read_text()
    assert "## Models at their final representations" in md and "minilm `embedding`" in md
    for png in [*PAIRS, "models"]:
        assert (similarity_run / f"results/plots/similarity/tiny/{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_adding_a_model_schedules_only_its_pairs(similarity_run, tmp_path):
    wd = similarity_run
    assert "Nothing to be done" in (lambda p: p.stdout + p.stderr)(snakemake(wd, "-n", "similarity", configfile=CONFIG))
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["models"]["minilm2"] = dict(cfg["models"]["minilm"])  # a third model (the same weights, another name)
    new = tmp_path / "three.yaml"
    new.write_text(yaml.safe_dump(cfg, sort_keys=False))  # config order decides the pairs
    out = snakemake(wd, "-n", "similarity", configfile=new)
    text = out.stdout + out.stderr
    pairs = re.findall(r"output: results/similarity/tiny/pairs/(\S+)\.json", text)
    assert sorted(pairs) == ["minilm__minilm2", "smollm2__minilm2"], pairs
    assert "results/activations/smollm2/tiny" not in re.findall(r"output: (\S+)", text)  # nothing is extracted again
