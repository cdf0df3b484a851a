"""End-to-end runs of the real workflow on the tiny config with a real model (MiniLM)."""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import check_code_edit_reruns_exactly_its_rules, planned_reasons, scratch_tree, snakemake

from repgeom.artifacts import ArtifactError, read_h5
from repgeom.embeddings import load_embeddings
from repgeom.sequences import load_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.model]


def test_every_artifact_is_made_and_checked(tiny_run):
    wd, proc = tiny_run
    meta, recs = load_dataset(wd / "results/sequences/tiny.json")
    assert meta["n"] == len(recs) == 18
    assert meta["n_truncated"] == sum(r["truncated"] for r in recs) > 0  # max_chars 28 cuts the long ones
    X, ids, labels, attrs = load_embeddings(
        wd / "results/embeddings/tiny/minilm.h5", expect={"texts_sha256": meta["texts_sha256"]}
    )
    assert X.shape == (18, 384) and np.isfinite(X).all()
    assert np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-4)  # MiniLM's own Normalize module
    assert list(ids) == [r["id"] for r in recs] and list(labels) == [r["family"] for r in recs]
    man = json.loads((wd / "resources/models/minilm/manifest.json").read_text())
    assert attrs["model_fingerprint"] == man["fingerprint"]
    assert "model/model.safetensors" in man["files"] and len(man["files"]["model/model.safetensors"]) == 64
    m = json.loads((wd / "results/metrics/tiny/models/minilm.json").read_text())
    for k in (
        "silhouette_true",
        "dbi_true",
        "silhouette_kmeans",
        "dbi_kmeans",
        "ari",
        "nmi",
        "silhouette_true_lo",
        "silhouette_true_hi",
    ):
        assert isinstance(m[k], float) and np.isfinite(m[k]), k
    assert -1 <= m["silhouette_true"] <= 1 and m["dbi_true"] > 0
    df = pd.read_csv(wd / "results/metrics/tiny/summary.tsv", sep="\t")
    assert list(df["model"]) == ["minilm"]
    assert df.loc[0, "silhouette_true"] == pytest.approx(m["silhouette_true"], rel=1e-5)
    md = (wd / "results/metrics/tiny/summary.md").read_text()
    assert "Silhouette (true)" in md and "minilm" in md
    for png in ("results/plots/tiny/tsne/minilm.png", "results/plots/tiny/bars.png"):
        data = (wd / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    for log in (
        "logs/sequences/tiny.log",
        "logs/models/minilm.log",
        "logs/embeddings/tiny/minilm.log",
        "logs/metrics/tiny/minilm.log",
    ):
        assert "finished" in (wd / log).read_text()
    assert not list(wd.rglob("*.tmp")), "temporary files left behind"


def test_second_run_has_nothing_to_do(tiny_run, tiny_config):
    wd, _ = tiny_run
    proc = snakemake(wd, "--dry-run", configfile=tiny_config)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def _changed_config(tmp_path, tiny_config, edit):
    c = yaml.safe_load(tiny_config.read_text())
    edit(c)
    p = tmp_path / "changed.yaml"
    p.write_text(yaml.safe_dump(c))
    return p


def _planned(proc):
    """Rule -> count from a dry run's job table."""
    out, counts, on = proc.stdout + proc.stderr, {}, False
    for line in out.splitlines():
        if line.startswith("job ") and "count" in line:
            on = True
            continue
        if on:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] == "total":
                    break
                counts[parts[0]] = int(parts[1])
    return counts


def test_changing_a_metric_parameter_reruns_metrics_not_embeddings(tiny_run, tiny_config, tmp_path):
    wd, _ = tiny_run
    cfg = _changed_config(tmp_path, tiny_config, lambda c: c["metrics"].update(bootstrap=60))
    plan = _planned(snakemake(wd, "--dry-run", configfile=cfg))
    assert plan.get("metrics") == 1 and plan.get("metrics_summary") == 1 and plan.get("plots_bars") == 1
    assert "embeddings" not in plan and "models" not in plan and "sequences" not in plan
    assert "plots_tsne" not in plan


def test_adding_a_model_runs_only_its_chain_and_the_aggregates(tiny_run, tiny_config, tmp_path):
    wd, _ = tiny_run

    def add(c):
        c["models"]["other"] = dict(c["models"]["minilm"])

    plan = _planned(snakemake(wd, "--dry-run", configfile=_changed_config(tmp_path, tiny_config, add)))
    assert plan == {
        "models": 1,
        "embeddings": 1,
        "metrics": 1,
        "plots_tsne": 1,
        "metrics_summary": 1,
        "plots_bars": 1,
        "report_headlines": 1,  # the front matter reads the summary
        # two models of one text set now: the similarity study compares them (one pair, its table and figures)
        "similarity_pair": 1,
        "similarity_summary": 1,
        "plots_similarity_pair": 1,
        "plots_similarity_models": 1,
        "all": 1,
    }


def test_editing_one_model_reruns_its_chain_not_its_preparation(tiny_run, tiny_config, tmp_path):
    wd, _ = tiny_run

    def edit(c):
        c["models"]["minilm"]["batch_size"] = 4

    plan = _planned(snakemake(wd, "--dry-run", configfile=_changed_config(tmp_path, tiny_config, edit)))
    assert plan == {
        "embeddings": 1,
        "metrics": 1,
        "plots_tsne": 1,
        "metrics_summary": 1,
        "plots_bars": 1,
        "report_headlines": 1,
        "all": 1,
    }


def test_reader_refuses_stale_and_corrupt_files(tiny_run, tmp_path):
    wd, _ = tiny_run
    src = wd / "results/embeddings/tiny/minilm.h5"
    with pytest.raises(ArtifactError, match="provenance"):
        load_embeddings(src, expect={"texts_sha256": "0" * 64})
    flipped = tmp_path / "flipped.h5"
    shutil.copy(src, flipped)
    with h5py.File(flipped, "r+") as f:
        f["embeddings"][3, 7] += 1.0
    with pytest.raises(ArtifactError, match="checksum"):
        read_h5(flipped)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(ArtifactError):
        read_h5(cut)


def test_report_holds_every_figure_and_table(tiny_run, tiny_config):
    wd, _ = tiny_run
    snakemake(wd, "--report", str(wd / "report.html"), configfile=tiny_config)
    html = (wd / "report.html").read_text(errors="replace")
    assert len(html) > 10_000
    for name in ("tsne", "bars.png", "summary.tsv"):
        assert name in html, name


def test_unreachable_model_fails_clearly_and_keep_going_finishes_the_rest(tmp_path, tiny_config, prepared_minilm):
    def add(c):
        c["models"]["ghost"] = {
            "runtime": "sentence-transformers",
            "source": {"type": "hub", "id": "no-such-org/no-such-model", "revision": "0" * 40},
        }
        c["models"]["gone"] = {"runtime": "sentence-transformers", "source": {"type": "local", "path": "/nonexistent"}}

    cfg = _changed_config(tmp_path, tiny_config, add)
    wd = tmp_path / "wd"
    wd.mkdir()
    shutil.copytree(prepared_minilm, wd / "resources/models/minilm")  # skip re-fetching the real one
    proc = snakemake(wd, "--keep-going", configfile=cfg, check=False)
    assert proc.returncode != 0
    ghost = (wd / "logs/models/ghost.log").read_text()
    assert "model 'ghost'" in ghost and "HF_HUB_OFFLINE" in ghost and "Ways to provide" in ghost
    gone = (wd / "logs/models/gone.log").read_text()
    assert "model 'gone'" in gone and "/nonexistent" in gone
    # the reachable model's whole chain still ran
    assert (wd / "results/metrics/tiny/models/minilm.json").exists()
    assert (wd / "results/plots/tiny/tsne/minilm.png").exists()
    assert not (wd / "resources/models/ghost").exists() and not (wd / "resources/models/gone").exists()


def test_rerun_reproduces_embeddings_and_metrics_exactly(tiny_run, tiny_config):
    wd, _ = tiny_run
    emb = wd / "results/embeddings/tiny/minilm.h5"
    met = wd / "results/metrics/tiny/models/minilm.json"
    summary = wd / "results/metrics/tiny/summary.tsv"
    before = (load_embeddings(emb)[0], met.read_text(), summary.read_text())
    snakemake(wd, "--forcerun", "embeddings", configfile=tiny_config)
    after = (load_embeddings(emb)[0], met.read_text(), summary.read_text())
    assert np.array_equal(before[0], after[0])
    assert before[1:] == after[1:]


def test_a_comment_or_docstring_edit_reruns_nothing(tiny_run, tiny_config, tmp_path):
    """Only code a job reaches counts: editing the docstring and comments of a module every rule imports plans no
    job, nor does a function no job calls; a statement that runs on import plans every rule's jobs."""
    wd, _ = tiny_run
    tree = scratch_tree(tmp_path / "tree")
    if planned_reasons(snakemake(wd, "--dry-run", configfile=tiny_config, tree=tree)):
        snakemake(wd, configfile=tiny_config, tree=tree)  # an earlier test remade an intermediate file: catch up
    target = tree / "src/repgeom/artifacts.py"
    text = target.read_text()
    assert text.startswith('"""')
    docs = '"""An edited docstring.\n\n' + text[3:].replace("\n\n\n", "\n\n# an added comment\n\n", 1) + "\n# the end\n"
    target.write_text(docs)
    assert not planned_reasons(snakemake(wd, "--dry-run", configfile=tiny_config, tree=tree))
    target.write_text(docs + "print(end='')\n")  # a statement that runs on import
    reasons = planned_reasons(snakemake(wd, "--dry-run", configfile=tiny_config, tree=tree))
    assert {"embeddings", "metrics"} <= set(reasons), reasons
    target.write_text(docs + "def _unused():\n    return 1\n")  # code no job reaches
    assert not planned_reasons(snakemake(wd, "--dry-run", configfile=tiny_config, tree=tree))


@pytest.mark.parametrize("module", ["metrics/clusters.py", "sequences.py"])
def test_a_library_edit_reruns_exactly_the_rules_that_import_it(tiny_run, tiny_config, tmp_path, module):
    wd, _ = tiny_run
    planned = check_code_edit_reruns_exactly_its_rules(wd, tmp_path, tiny_config, Path(module))
    if module == "metrics/clusters.py":  # the embeddings, the model and the t-SNE maps (plots.tsne) stay
        assert planned == {"metrics", "metrics_summary", "plots_bars", "report_headlines", "all"}, planned
