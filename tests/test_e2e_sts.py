"""End-to-end run of the FREEZE study on a slice of the real STS-B, GenericsKB and SNLI with SmolLM2."""

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import check_code_edit_reruns_exactly_its_rules, run_shared_data_config, snakemake

from repgeom.activations import iter_layers
from repgeom.artifacts import read_json, texts_sha256
from repgeom.corpora import corpus_sentences, load_corpus

pytestmark = [pytest.mark.e2e, pytest.mark.model]
SEEDS = 2
VARIANTS = ["best_layer", "mlp", "siamese", "ae_mse", "ae_logvar", "snli", "mlp_std"]


@pytest.fixture(scope="module")
def sts_run(tmp_path_factory, prepared_smollm2):
    return run_shared_data_config(tmp_path_factory.mktemp("sts_run"), "tiny_sts.yaml", {"smollm2": prepared_smollm2})


def test_corpora_and_sentence_shards(sts_run):
    wd = sts_run
    meta, splits = load_corpus(wd / "resources/data/stsb.json")
    assert {s: len(r) for s, r in splits.items()} == {"train": 300, "dev": 100, "test": 100}
    assert len(load_corpus(wd / "resources/data/genericskb.json")[1]["train"]) == 600
    ids, texts = corpus_sentences(wd / "resources/data/stsb.json")
    for position in ("last", "mean"):
        layers = [
            L
            for L, X, got_ids, attrs in iter_layers(
                wd / "results/activations/smollm2/stsb", position=position, expect={"texts_sha256": texts_sha256(texts)}
            )
            if X.shape == (len(texts), 576) and list(got_ids) == ids and np.isfinite(X).all()
        ]
        assert layers == list(range(1, 31))


def test_progression_table_and_variant_results(sts_run):
    wd = sts_run
    df = pd.read_csv(wd / "results/sts/progression.tsv", sep="\t")
    assert len(df) == 2 * len(VARIANTS)
    assert list(df[df.pooling == "last"].variant) == VARIANTS  # config order
    assert df.test_pearson.between(-100, 100).all() and df.test_spearman.notna().all()
    trained = df[df.variant != "best_layer"]
    assert (trained.n_seeds == SEEDS).all() and (trained.test_pearson_std > 0).all()
    assert df.loc[df.variant == "siamese", "paper_gpt2_medium_pearson"].iloc[0] == 71.63
    md = (wd / "results/sts/progression.md").read_text().splitlines()
    assert len(md) == 2 + len(df) and "paper gpt2-medium" in md[0]
    for position in ("last", "mean"):
        for v in VARIANTS:
            r = read_json(wd / f"results/sts/smollm2/{position}/{v}.json")
            assert r["n_pairs"] == {"train": 300, "dev": 100, "test": 100}
            assert len(r["runs"]) == (1 if v == "best_layer" else SEEDS)
            for run in r["runs"]:
                assert len(run["test_pred"]) == 100 and np.isfinite(run["test_pred"]).all()
                if "calibration" not in run:  # sigmoid outputs; a log-variance run is mapped onto the scale
                    assert all(0 <= p <= 1 for p in run["test_pred"])
                else:
                    assert v == "ae_logvar" and run["calibration"]["slope"] > 0
            if v == "best_layer":
                assert [c["layer"] for c in r["curve"]] == list(range(1, 31))
                assert r["runs"][0]["layer"] == max(r["curve"], key=lambda c: c["dev_pearson"])["layer"]
            elif v.startswith("ae_"):
                assert all(run["autoencoder"]["final_heldout_mse"] for run in r["runs"])
            elif v == "snli":
                assert all(run["snli"]["pairs"] == 300 for run in r["runs"])
    # the trained probes learn something even from 300 pairs
    assert df.loc[df.variant == "siamese", "dev_pearson"].max() > 40


def test_worst_errors_autoencoder_curves_and_figures(sts_run):
    wd = sts_run
    worst = pd.read_csv(wd / "results/sts/worst_errors.tsv", sep="\t")
    assert len(worst) == 5 and worst.abs_error.is_monotonic_decreasing
    assert np.allclose(worst.abs_error, (worst.predicted - worst.gold).abs(), atol=1e-3)
    curves = pd.read_csv(wd / "results/sts/smollm2/last/autoencoders_mse.tsv", sep="\t")
    assert len(curves) == SEEDS * 30
    assert set(curves[curves.layer <= 15].width) == {32} and set(curves[curves.layer > 15].width) == {64}
    for fig in ("layer_correlation", "ae_loss", "scatter"):
        assert (wd / f"results/plots/sts/{fig}.png").read_bytes()[:4] == b"\x89PNG"


def test_rerun_is_noop_and_training_is_deterministic(sts_run):
    wd = sts_run
    out = snakemake(wd, "-n", configfile=wd / "config.yaml")
    assert "Nothing to be done" in out.stdout + out.stderr
    path = wd / "results/sts/smollm2/mean/ae_logvar.json"
    before = read_json(path)
    path.unlink()
    snakemake(wd, str(path.relative_to(wd)), configfile=wd / "config.yaml")
    after = read_json(path)
    assert [r["test_pred"] for r in after["runs"]] == [r["test_pred"] for r in before["runs"]]


def test_changed_hyperparameter_reruns_only_that_branch(sts_run):
    wd = sts_run
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    cfg["sts"]["variants"]["mlp"]["mlp_lr"] = 0.02
    (wd / "changed.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(wd, "-n", configfile=wd / "changed.yaml")
    counts = job_counts(out.stdout + out.stderr)
    assert counts["sts_variant"] == 2  # mlp, both poolings
    assert not {"corpora", "activations", "sts_autoencoders"} & set(counts)


def job_counts(text: str) -> dict[str, int]:
    block = text.split("Job stats:")[1].split("total")[0]
    return {p[0]: int(p[1]) for p in (line.split() for line in block.splitlines()) if len(p) == 2 and p[1].isdigit()}


def test_report_holds_the_sts_tables_and_figures(sts_run):
    wd = sts_run
    snakemake(wd, "--report", "report.html", configfile=wd / "config.yaml")
    html = (wd / "report.html").read_text(errors="replace")
    assert "STS-B (FREEZE)" in html


@pytest.mark.parametrize("module", ["sts/tables.py", "sts/heads.py"])
def test_an_sts_library_edit_reruns_only_the_jobs_that_run_it(sts_run, tmp_path, module):
    """Editing the tables' code remakes the tables alone; editing a probe head reruns the probes (and what reads
    them), never the activation extraction or the autoencoders' pretraining."""
    wd = sts_run
    planned = check_code_edit_reruns_exactly_its_rules(wd, tmp_path, wd / "config.yaml", Path(module))
    if module == "sts/tables.py":
        assert planned == {"sts_tables", "all"}, planned
    else:
        assert "sts_variant" in planned and not planned & {"activations", "sts_autoencoders", "corpora"}, planned


@pytest.mark.parametrize(
    "target,seed",
    [
        ("results/sts/smollm2/last/siamese.json", 11),
        ("results/sts/smollm2/mean/autoencoders_logvar.pt", 12),
        ("results/sts/smollm2/last/mlp_std.json", 13),
        ("results/plots/sts/scatter.png", 14),
    ],
)
def test_sigkill_at_a_random_point_then_plain_rerun_gives_the_same_result(sts_run, target, seed):
    from conftest import kill_mid_job_then_rerun

    wd = sts_run
    path = wd / target
    before = path.read_bytes()
    before_json = read_json(path) if path.suffix == ".json" else None
    state = kill_mid_job_then_rerun(wd, target, wd / "config.yaml", seed, max_delay=10)
    if not state["finished_before_kill"]:
        assert not state["exists_after_kill"], state  # nothing under the final name...
    # ... and any temporary left behind is dot-named, never globbed by a reader
    assert all(p.split("/")[-1].startswith(".") for p in state["leftovers"]), state
    if before_json is not None:  # identical numbers to the uninterrupted run
        after = read_json(path)
        assert [r["test_pred"] for r in after["runs"]] == [r["test_pred"] for r in before_json["runs"]], state
        assert after["summary"] == before_json["summary"]
    elif path.suffix == ".pt":
        import torch

        a = torch.load(path, weights_only=True)
        b = torch.load(io.BytesIO(before), weights_only=True)
        assert all(torch.equal(a["states"][s][k], b["states"][s][k]) for s in b["states"] for k in b["states"][s])
    else:
        assert path.read_bytes()[:4] == b"\x89PNG"
