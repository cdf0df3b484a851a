"""End-to-end run of the FREEZE study on a slice of the real STS-B, GenericsKB and SNLI with SmolLM2."""

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import (
    check_code_edit_reruns_exactly_its_rules,
    check_duration_plan,
    run_shared_data_config,
    snakemake,
)

from repgeom.activations import iter_layers
from repgeom.artifacts import read_json, texts_sha256
from repgeom.corpora import corpus_sentences, load_corpus

pytestmark = [pytest.mark.e2e, pytest.mark.model]
SEEDS = 2
VARIANTS = ["best_layer", "mlp", "siamese", "ae_mse", "ae_logvar", "snli", "mlp_std"]
RUNS = [("plain", "last"), ("plain", "mean"), ("prompteol", "last")]  # the default templates and their poolings


@pytest.fixture(scope="module")
def sts_run(tmp_path_factory, prepared_smollm2):
    return run_shared_data_config(tmp_path_factory.mktemp("sts_run"), "tiny_sts.yaml", {"smollm2": prepared_smollm2})


def test_corpora_and_sentence_shards(sts_run):
    wd = sts_run
    meta, splits = load_corpus(wd / "resources/data/stsb.json")
    assert {s: len(r) for s, r in splits.items()} == {"train": 300, "dev": 100, "test": 100}
    assert len(load_corpus(wd / "resources/data/genericskb.json")[1]["train"]) == 300
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
    # the PromptEOL template: its own shards (last token only), recorded, and another representation than plain's
    got = list(iter_layers(wd / "results/activations/smollm2/stsb@prompteol", layers=[10]))
    assert got[0][3]["template"] == "prompteol" and "means in one word" in got[0][3]["template_format"]
    assert list(got[0][2]) == ids and np.isfinite(got[0][1]).all()
    plain = next(iter_layers(wd / "results/activations/smollm2/stsb", layers=[10]))
    assert plain[3]["template"] == "plain" and not np.allclose(plain[1], got[0][1])
    assert not (wd / "results/activations/smollm2/stsb@prompteol/mean").exists()


def test_the_duration_plan_lists_the_jobs_that_ran(sts_run, monkeypatch):
    work = check_duration_plan(sts_run, sts_run / "config.yaml", monkeypatch)
    assert {w.target for w in work} == {"sts"}
    ae = [w for w in work if "autoencoders_" in w.job]
    assert ae and all(w.read_bytes > 0 and w.kernels > 0 for w in ae)


def test_progression_table_and_variant_results(sts_run):
    wd = sts_run
    df = pd.read_csv(wd / "results/sts/progression.tsv", sep="\t")
    assert len(df) == len(RUNS) * len(VARIANTS)
    assert [tuple(x) for x in df[["template", "pooling"]].drop_duplicates().values] == RUNS  # config order
    assert list(df[(df.template == "plain") & (df.pooling == "last")].variant) == VARIANTS  # config order
    assert df.test_pearson.between(-100, 100).all() and df.test_spearman.notna().all()
    trained = df[df.variant != "best_layer"]
    assert (trained.n_seeds == SEEDS).all() and (trained.test_pearson_std > 0).all()
    assert df.loc[df.variant == "siamese", "paper_gpt2_medium_pearson"].iloc[0] == 71.63
    md = (wd / "results/sts/progression.md").read_text().splitlines()
    assert len(md) == 2 + len(df) and "paper gpt2-medium" in md[0] and "| template |" in md[0]
    for template, position in RUNS:
        for v in VARIANTS:
            r = read_json(wd / f"results/sts/smollm2/{template}/{position}/{v}.json")
            assert r["n_pairs"] == {"train": 300, "dev": 100, "test": 100} and r["template"] == template
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
                assert all(run["snli"]["pairs"] == 150 for run in r["runs"])
    # the trained probes learn something even from 300 pairs
    assert df.loc[df.variant == "siamese", "dev_pearson"].max() > 40


def test_worst_errors_autoencoder_curves_and_figures(sts_run):
    wd = sts_run
    worst = pd.read_csv(wd / "results/sts/worst_errors.tsv", sep="\t")
    assert len(worst) == 5 and worst.abs_error.is_monotonic_decreasing
    assert np.allclose(worst.abs_error, (worst.predicted - worst.gold).abs(), atol=1e-3)
    curves = pd.read_csv(wd / "results/sts/smollm2/plain/last/autoencoders_mse.tsv", sep="\t")
    assert len(curves) == SEEDS * 30 and set(curves.template) == {"plain"}
    assert set(curves[curves.layer <= 15].width) == {32} and set(curves[curves.layer > 15].width) == {64}
    for fig in ("layer_correlation", "ae_loss", "scatter", "zero_shot/smollm2"):
        assert (wd / f"results/plots/sts/{fig}.png").read_bytes()[:4] == b"\x89PNG"


def test_zero_shot_table_has_every_template_and_both_correlations(sts_run):
    wd = sts_run
    z = pd.read_csv(wd / "results/sts/zero_shot.tsv", sep="\t")
    assert [tuple(x) for x in z[["template", "pooling"]].values] == RUNS and set(z.cosine) == {"raw"}
    prog = pd.read_csv(wd / "results/sts/progression.tsv", sep="\t")
    best = prog[prog.variant == "best_layer"]
    for (t, p), row in zip(RUNS, z.itertuples()):
        r = read_json(wd / f"results/sts/smollm2/{t}/{p}/best_layer.json")
        chosen = max(r["curve"], key=lambda c: c["dev_pearson"])  # chosen on dev, never on test
        assert row.layer == chosen["layer"] and row.n_layers == 30
        assert np.isclose(row.test_spearman, chosen["test_spearman"], atol=1e-3)
        assert row.test_pearson_best_layer >= row.test_pearson - 1e-9
        b = best[(best.template == t) & (best.pooling == p)].iloc[0]
        assert np.isclose(b.test_pearson, row.test_pearson, atol=1e-3)
    md = (wd / "results/sts/zero_shot.md").read_text().splitlines()
    assert len(md) == 2 + len(RUNS) and "test Spearman" in md[0]
    head = (wd / "results/headlines.md").read_text()  # the report's front matter names the best on dev
    best = prog.loc[prog.dev_pearson.idxmax()]
    assert f"best on dev is **smollm2 / {best.template} / {best.pooling} / {best.variant}**" in head
    assert "Zero-shot STS-B" in head


@pytest.mark.parametrize("target", ["plain/mean/ae_logvar", "prompteol/last/mlp_std", "plain/last/best_layer"])
def test_saved_probes_reload_and_reproduce_their_predictions(sts_run, target):
    """Each variant's probe file maps the test pairs' latents (read from the shards by id) to exactly the
    predictions its result reports, seed by seed; it refuses another template's features."""
    from repgeom.corpora import stsb_pairs
    from repgeom.sts import load_probe

    wd = sts_run
    r = read_json(wd / f"results/sts/smollm2/{target}.json")
    probe = load_probe(wd / f"results/sts/smollm2/{target}.probe.pt")
    template = target.split("/")[0]
    assert probe.meta["template"] == template and probe.meta["features"]["model"] == "smollm2"
    assert r["probe"]["kind"] == probe.kind and r["probe"]["layers"] == probe.layers
    test = stsb_pairs(wd / "resources/data/stsb.json", ("test",))["test"]
    acts = wd / "results/activations/smollm2" / ("stsb" if template == "plain" else f"stsb@{template}")
    got = probe.score_shards(acts, test["id1"], test["id2"])
    want = np.array([run["test_pred"] for run in r["runs"]], dtype=np.float32)
    np.testing.assert_array_equal(got, want)
    other = wd / "results/activations/smollm2" / ("stsb@prompteol" if template == "plain" else "stsb")
    with pytest.raises(Exception, match="template|missing"):  # another template's features (or none at all)
        probe.score_shards(other, test["id1"], test["id2"])


def test_probes_transfer_to_a_pairs_table_of_the_same_sentences(sts_run):
    """The transfer set is STS-B's own test slice read as a generic pairs table (its sentences extracted again,
    apart): every probe scores it as it scored the STS-B test split (equal up to the rounding of other batches)."""
    wd = sts_run
    df = pd.read_csv(wd / "results/sts/transfer.tsv", sep="\t")
    probes = df[~df.variant.str.startswith("zero-shot")]
    assert len(probes) == len(RUNS) * len(VARIANTS) and set(df.corpus) == {"stsb_as_pairs"}
    assert (df.n_pairs == 100).all() and (df.groupby(["template", "pooling"]).size() == len(VARIANTS) + 1).all()
    np.testing.assert_allclose(probes.pearson, probes.stsb_test_pearson, atol=0.05)
    for t, p in RUNS:
        r = read_json(wd / f"results/sts/smollm2/{t}/{p}/transfer/stsb_as_pairs.json")
        own = read_json(wd / f"results/sts/smollm2/{t}/{p}/mlp.json")
        np.testing.assert_allclose(
            r["probes"]["mlp"]["pred_mean"], np.mean([x["test_pred"] for x in own["runs"]], 0), atol=1e-3
        )
        # the hindsight best layer can tie the dev-chosen one (then they differ by the rounding of (cos + 1) / 2)
        assert r["best_layer_hindsight"]["pearson"] >= r["probes"]["best_layer"]["pearson_mean"] - 1e-4
    assert "stsb_as_pairs (100 pairs)" in (wd / "results/sts/transfer.md").read_text()


def test_rerun_is_noop_and_training_is_deterministic(sts_run):
    wd = sts_run
    out = snakemake(wd, "-n", configfile=wd / "config.yaml")
    assert "Nothing to be done" in out.stdout + out.stderr
    path = wd / "results/sts/smollm2/plain/mean/ae_logvar.json"
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
    assert counts["sts_variant"] == len(RUNS)  # mlp, at each template's poolings
    assert not {"corpora", "activations", "sts_autoencoders"} & set(counts)


def test_an_added_template_runs_only_its_own_jobs(sts_run):
    """Adding a template plans only its own extractions, pretraining and probes (and the tables and figures that
    gather every result), nothing of the templates already made."""
    wd = sts_run
    snakemake(wd, configfile=wd / "config.yaml")  # up to date first (other tests remade some results)
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    cfg["sts"]["templates"] = {
        "plain": {"format": "{text}", "positions": ["last", "mean"]},
        "prompteol": {"format": 'This sentence : "{text}" means in one word:"', "positions": ["last"]},
        "echo": {"format": "Rewrite the sentence: {text}\nRewritten sentence: {text}", "positions": ["mean"]},
    }
    (wd / "echo.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(wd, "-n", configfile=wd / "echo.yaml")
    text = out.stdout + out.stderr
    counts = job_counts(text)
    # stsb, genericskb, snli and the transfer set presented by echo; its autoencoders; its probes and transfer
    assert counts.get("activations") == 4 and counts.get("sts_autoencoders") == 2, counts
    assert counts.get("sts_variant") == len(VARIANTS) and counts.get("sts_transfer") == 1, counts
    assert not {"corpora", "models", "activation_part"} & set(counts), counts
    outputs = re.findall(r"output: (\S+)", text)
    made = [o for o in outputs if o.startswith(("results/activations/", "results/sts/smollm2/"))]
    assert made and all("echo" in o for o in made), made


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
        assert planned == {"sts_tables", "report_headlines", "all"}, planned  # and the headlines read the tables
    else:
        assert "sts_variant" in planned and not planned & {"activations", "sts_autoencoders", "corpora"}, planned


@pytest.mark.parametrize(
    "target,seed",
    [
        ("results/sts/smollm2/plain/last/siamese.json", 11),
        ("results/sts/smollm2/plain/mean/autoencoders_logvar.pt", 12),
        ("results/sts/smollm2/prompteol/last/mlp_std.json", 13),
        ("results/plots/sts/scatter.png", 14),
    ],
)
def test_sigkill_at_a_random_point_then_plain_rerun_gives_the_same_result(sts_run, target, seed):
    from conftest import kill_at_random_point, unlock_and_rerun

    wd = sts_run
    path = wd / target
    before = path.read_bytes()
    before_json = read_json(path) if path.suffix == ".json" else None
    state = kill_at_random_point(wd, target, wd / "config.yaml", seed, max_delay=10)
    if state["exists_after_kill"]:
        # the job renamed its output into place (whole: written under a dot-name first) and Snakemake was killed
        # before it exited (the race the merging kill test met on a slower CPU): what is there must read whole
        if path.suffix == ".json":
            read_json(path)
        elif path.suffix == ".pt":
            import torch

            torch.load(path, weights_only=True)
        else:
            assert path.read_bytes()[:4] == b"\x89PNG" and path.read_bytes()[-8:-4] == b"IEND", state
    # any temporary left behind is dot-named, never globbed by a reader
    assert all(p.split("/")[-1].startswith(".") for p in state["leftovers"]), state
    unlock_and_rerun(wd, target, configfile=wd / "config.yaml")
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
