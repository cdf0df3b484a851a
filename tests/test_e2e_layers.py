"""End-to-end run of the activation shards and the layer-by-layer study with a real decoder (SmolLM2)."""

import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, job_seconds, kill_at_random_point, snakemake, unlock_and_rerun

from repgeom.activations import check_shard, iter_layers, list_layers, load_layer
from repgeom.artifacts import ArtifactError
from repgeom.sequences import load_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.model]
CONFIG = ROOT / "tests/configs/tiny_layers.yaml"


@pytest.fixture(scope="module")
def layers_run(tmp_path_factory, prepared_smollm2):
    wd = tmp_path_factory.mktemp("layers_run")
    shutil.copytree(prepared_smollm2, wd / "resources/models/smollm2")
    snakemake(wd, configfile=CONFIG)
    return wd


def test_shards_layer_table_and_figures(layers_run):
    wd = layers_run
    meta, recs = load_dataset(wd / "results/sequences/tiny.json")
    shard_dir = wd / "results/activations/smollm2/tiny"
    layers = sorted(int(p.stem.split("_")[1]) for p in shard_dir.glob("layer_*.h5"))
    assert layers == list(range(0, 31))  # embedding output + 30 blocks
    seen = 0
    for layer, X, ids, attrs in iter_layers(shard_dir, expect={"texts_sha256": meta["texts_sha256"]}):
        assert X.shape == (18, 576) and np.isfinite(X).all()
        assert list(ids) == [r["id"] for r in recs]
        assert attrs["layer"] == layer and attrs["n_layers_total"] == 30
        seen += 1
    assert seen == 31
    # the last block's raw output is not the final-normed state the embedding stage pools
    X30, _, _ = load_layer(shard_dir, 30)
    assert np.abs(X30).max() > 5 * np.abs(load_layer(shard_dir, 1)[0]).mean()
    with pytest.raises(ArtifactError):
        load_layer(shard_dir, 5, expect={"texts_sha256": "0" * 64})
    table = pd.read_csv(wd / "results/metrics/tiny/layers.tsv", sep="\t")
    assert list(table["layer"]) == list(range(0, 31)) and set(table["model"]) == {"smollm2"}
    assert table["depth"].iloc[0] == 0 and table["depth"].iloc[-1] == pytest.approx(1.0)
    assert table["silhouette_true"].between(-1, 1).all()
    assert "Best layer" in (wd / "results/metrics/tiny/layers.md").read_text()
    for png in ("results/plots/tiny/layers.png", "results/plots/tiny/layers_tsne/smollm2.png"):
        assert (wd / png).read_bytes()[:4] == b"\x89PNG"
    proc = snakemake(wd, "--dry-run", configfile=CONFIG)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_analysis_code_runs_without_torch(layers_run, tmp_path):
    """Metrics and plots run in the analysis env, which has no torch/transformers: prove it."""
    import subprocess
    import sys
    import textwrap

    wd = layers_run
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "transformers", "sentence_transformers", "huggingface_hub",
                                          "gguf", "accelerate"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        sys.path.insert(0, {str(ROOT / "src")!r})
        from repgeom.sequences import load_dataset
        from repgeom.artifacts import read_embeddings
        from repgeom.metrics import cluster_metrics, layer_metrics, best_layer
        from repgeom.activations import load_layer
        from repgeom.plots import plot_tsne, plot_layer_curves
        from repgeom.params import PlotParams
        meta, recs = load_dataset({str(wd / "results/sequences/tiny.json")!r})
        labels = [r["family"] for r in recs]
        X, ids, lab, attrs = read_embeddings({str(wd / "results/embeddings/tiny/smollm2.h5")!r})
        cluster_metrics(X, lab, bootstrap=5)
        df = layer_metrics({str(wd / "results/activations/smollm2/tiny")!r}, labels, model="smollm2", bootstrap=5)
        X, ids, attrs = load_layer({str(wd / "results/activations/smollm2/tiny")!r}, best_layer(df))
        plot_tsne(X, labels, {str(tmp_path / "t.png")!r}, title="t", params=PlotParams.from_params(dict(tsne_perplexity=30, tsne_small_perplexity=10, tsne_small_below=50, tsne_max_iter=250, dpi=100, seed=0)))
        plot_layer_curves(df, {str(tmp_path / "c.png")!r})
        assert "torch" not in sys.modules
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


# last in this module: it leaves the layer table older than the shards it was made from (nothing else here cares)
@pytest.mark.parametrize("seed", [3, 6])  # ~25 % (start-up, torch and model loading) and ~80 % (forward passes, writes)
def test_sigkill_at_a_random_point_of_activation_extraction_then_plain_rerun(layers_run, seed):
    wd = layers_run
    target = "results/activations/smollm2/tiny"
    shard_dir = wd / target
    before = {L: (X, list(ids)) for L, X, ids, _ in iter_layers(shard_dir)}
    assert len(before) == 31
    span = 2.0 + job_seconds(wd / "logs/activations/smollm2/tiny.log")  # start-up + the whole job, as here
    state = kill_at_random_point(wd, target, CONFIG, seed, max_delay=span)
    # shards are renamed into place only after every one of them verified: whatever has a final name is whole
    present = sorted(shard_dir.glob("layer_*.h5")) if shard_dir.is_dir() else []
    for p in present:
        check_shard(p)
        L = int(p.stem.split("_")[1])
        X, ids, _ = load_layer(shard_dir, L)
        assert np.array_equal(X, before[L][0]) and list(ids) == before[L][1], state
    assert len(list_layers(shard_dir) if shard_dir.is_dir() else []) == len(present)
    assert all(p.split("/")[-1].startswith(".layer_") for p in state["leftovers"]), state  # only dot-named temporaries
    unlock_and_rerun(wd, target, configfile=CONFIG)
    after = {L: (X, list(ids)) for L, X, ids, _ in iter_layers(shard_dir)}
    assert sorted(after) == sorted(before), state
    for L in before:
        assert np.array_equal(after[L][0], before[L][0]) and after[L][1] == before[L][1], (L, state)
    assert not list(shard_dir.rglob(".layer_*")), "temporaries left after the rerun"


def test_the_plain_report_command_after_one_study_gives_that_studys_report(tmp_path, prepared_smollm2):
    """``snakemake --report report.html`` after ``snakemake numbers`` alone: the report of the numeric study, not an
    error about the layer study's figures (which were never made), and a warning naming what is left out."""
    wd = tmp_path / "wd"
    shutil.copytree(prepared_smollm2, wd / "resources/models/smollm2")
    snakemake(wd, "numbers", configfile=CONFIG)
    assert not (wd / "results/plots/tiny/layers.png").exists()
    proc = snakemake(wd, "--report", "report.html", configfile=CONFIG)
    html = (wd / "report.html").read_text(errors="replace")
    assert "bars.png" in html and "layers.png" not in html
    assert "left out, not run yet: layers" in proc.stderr + proc.stdout
