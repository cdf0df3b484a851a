"""End-to-end run of the LoRA → soup vs SLERP study on the tiny config with the real MiniLM and real STS-B pairs."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import MINILM_SOURCE as SRC
from conftest import check_code_edit_reruns_exactly_its_rules, check_duration_plan, run_shared_data_config, snakemake

from repgeom.artifacts import read_json
from repgeom.configure import stages
from repgeom.configure.config import one_model_config
from repgeom.embeddings import load_runtime
from repgeom.merging import load_eval_embeddings, load_eval_layers, load_training_data
from repgeom.models import load_manifest

pytestmark = [pytest.mark.e2e, pytest.mark.model]
VARIANTS = [
    "final",
    "soup",
    "linear_0.5",
    "slerp_0.5",
    "tv_slerp_ckpt",
    "tv_linear_ckpt",
    "tv_slerp_seeds",
    "tv_linear_seeds",
]


@pytest.fixture(scope="module")
def merging_run(tmp_path_factory, prepared_minilm):
    return run_shared_data_config(
        tmp_path_factory.mktemp("merging_run"), "tiny_merging.yaml", {"minilm": prepared_minilm}
    )


def test_data_split_is_disjoint_from_the_evaluation_windows(merging_run):
    meta, recs = load_training_data(merging_run / "results/merging/data.json")
    assert meta["counts"] == {"train": 48, "heldout": 12}
    for fam, (_lo, hi) in meta["eval_term_ranges"].items():
        rows = [r for r in recs if r["family"] == fam]
        assert all(r["first_index"] >= hi for r in rows)
        assert sum(r["split"] == "heldout" for r in rows) == 2
    assert "held out" in meta["split"]


def test_the_duration_plan_lists_the_jobs_that_ran(merging_run, monkeypatch):
    work = check_duration_plan(merging_run, merging_run / "config.yaml", monkeypatch)
    train = [w for w in work if w.job.endswith("/train")]
    scores = [w for w in work if w.job.endswith("/scores")]
    assert len(train) == 2 and len(scores) == 3  # the base model's, and each seed's
    # a seed's scores job loads each variant it scores: the recipes' count; the base job the base model alone
    n = len(pd.read_csv(merging_run / "results/merging/minilm/seed_0/variants/variants.tsv", sep="\t"))
    models = {w.job.split("/")[2]: w.models for w in scores}
    assert models == {"base": 1, "seed_0": n, "seed_1": n}


def test_adapters_variants_and_their_recipes(merging_run):
    wd = merging_run
    for seed in (0, 1):
        rec = read_json(wd / f"results/merging/minilm/seed_{seed}/adapters/recipe.json")
        assert rec["checkpoints"] == ["step_00004", "step_00008"] and rec["seed"] == seed
        assert rec["steps_per_second"] > 0 and rec["trainable_parameters"] < rec["total_parameters"] / 100
        vdir = wd / f"results/merging/minilm/seed_{seed}/variants"
        table = pd.read_csv(vdir / "variants.tsv", sep="\t")
        assert list(table.variant) == VARIANTS
        row = table.set_index("variant")
        assert row.loc["final", "position"] == pytest.approx(1.0)
        assert row.loc["linear_0.5", "position"] == pytest.approx(0.5, abs=1e-6)
        assert 0 < row.loc["soup", "position"] < 1
        # LoRA moves the weights so little that base and merged tensors are nearly parallel: SLERP falls back
        assert row.loc["slerp_0.5", "n_fallback"] == row.loc["slerp_0.5", "n_interpolated"] > 0
        assert row.loc["final", "base_cos_min"] > 0.999
        for v in VARIANTS:
            man = load_manifest(vdir / v)
            recipe = read_json(vdir / v / "recipe.json")
            assert man["source"]["type"] == "merge" and recipe["name"] == v and "geometry" in recipe
    # a variant folder is a loadable model for the spine's embedding runtimes
    rt = load_runtime(
        wd / "results/merging/minilm/seed_0/variants/slerp_0.5",
        stages.embed_params(one_model_config("m", {"runtime": "sentence-transformers", "source": SRC}), "m"),
    )
    X = rt.encode(["1, 2, 3", "2, 4, 6"], 2, progress=False)
    assert X.shape == (2, 384) and np.isfinite(X).all()


def test_scores_summary_verdict_and_figures(merging_run):
    wd = merging_run
    base = read_json(wd / "results/merging/minilm/base/scores.json")
    assert [v["variant"] for v in base["variants"]] == ["base"]
    s0 = read_json(wd / "results/merging/minilm/seed_0/scores.json")
    assert [v["variant"] for v in s0["variants"]] == VARIANTS and s0["seed"] == 0
    for v in s0["variants"]:
        assert v["sts"]["n_pairs"] == 100 and -100 <= v["sts"]["spearman"] <= 100
        for part in ("eval", "heldout"):
            assert np.isfinite(v[part]["silhouette_true"]) and "silhouette_true_lo" in v[part]
    assert base["variants"][0]["sts"]["spearman"] > 60  # MiniLM is good at STS-B
    summary = pd.read_csv(wd / "results/merging/minilm/summary.tsv", sep="\t")
    assert list(summary.variant) == ["base"] + VARIANTS
    assert (summary[summary.variant != "base"].n_seeds == 2).all()
    b = summary.set_index("variant").loc["base"]
    assert b.task_gain == 0 and b.sts_loss == 0
    long = pd.read_csv(wd / "results/merging/minilm/scores.tsv", sep="\t")
    assert len(long) == 1 + 2 * len(VARIANTS)
    fin = long[long.variant == "final"]
    assert summary.set_index("variant").loc["final", "sts_spearman"] == pytest.approx(fin.sts_spearman.mean())
    verdict = pd.read_csv(wd / "results/merging/minilm/verdict.tsv", sep="\t")
    assert verdict.claim.str.contains("erodes").any() and verdict.claim.str.contains("soup").any()
    assert verdict.claim.str.contains("SLERP recovers").any()
    assert verdict.verdict.notna().all() and verdict.evidence.str.contains("±").all()
    md = (wd / "results/merging/minilm/summary.md").read_text()
    assert "| slerp_0.5 |" in md and "held out" in md
    for fig in ("tradeoff", "tsne"):
        assert (wd / f"results/plots/merging/minilm/{fig}.png").read_bytes()[:4] == b"\x89PNG"
    emb, labels = load_eval_embeddings(wd / "results/merging/minilm/seed_0/embeddings.h5")
    assert list(emb) == VARIANTS and emb["final"].shape == (18, 384) and len(labels) == 18


def test_each_variant_is_placed_between_base_and_fine_tuned(merging_run):
    """The similarity stage's merging table: every seed × variant against the base and the fine-tuned model, CKA
    recomputed from the evaluation embeddings."""
    from repgeom.similarity.measures import linear_cka

    wd = merging_run
    df = pd.read_csv(wd / "results/similarity/merging/minilm.tsv", sep="\t")
    assert set(df.run) == {"seed_0", "seed_1"} and set(df.reference) == {"base", "final"}
    assert len(df) == 2 * len(VARIANTS) * 2
    row = df.set_index(["run", "variant", "reference"])
    assert row.loc[("seed_0", "final", "final"), "cka"] == pytest.approx(1.0)
    base, _ = load_eval_embeddings(wd / "results/merging/minilm/base/embeddings.h5")
    seed0, _ = load_eval_embeddings(wd / "results/merging/minilm/seed_0/embeddings.h5")
    Xb = next(iter(base.values())).astype(np.float64)
    for v in ("soup", "slerp_0.5"):
        want = linear_cka(seed0[v].astype(np.float64), Xb)
        assert row.loc[("seed_0", v, "base"), "cka"] == pytest.approx(want, abs=1e-5)
    s = pd.read_csv(wd / "results/similarity/merging/minilm.summary.tsv", sep="\t")
    assert set(s.variant) == set(VARIANTS) and (s.seeds == 2).all()
    md = (wd / "results/similarity/merging/minilm.md").read_text()
    assert "| slerp_0.5 |" in md
    assert (df.too_wide == (df.ci_high - df.ci_low > 0.2)).all()  # the flag the tables carry is the interval's width
    assert (wd / "results/plots/similarity/merging/minilm.png").read_bytes()[:4] == b"\x89PNG"
    # per layer: MiniLM's input embeddings and 6 blocks, each variant's layer against the same layer of each reference
    layers = pd.read_csv(wd / "results/similarity/merging/minilm.layers.tsv", sep="\t")
    assert set(layers.layer) == set(range(7)) and len(layers) == 2 * len(VARIANTS) * 2 * 7
    lrow = layers.set_index(["run", "variant", "reference", "layer"])
    assert lrow.loc[("seed_0", "final", "final", 6), "cka"] == pytest.approx(1.0)
    L = load_eval_layers(wd / "results/merging/minilm/seed_0/embeddings.h5")
    Lb = next(iter(load_eval_layers(wd / "results/merging/minilm/base/embeddings.h5").values()))
    assert L["soup"].shape == (7, 18, 384)
    for layer in (0, 3, 6):
        want = linear_cka(L["soup"][layer].astype(np.float64), Lb[layer].astype(np.float64))
        assert lrow.loc[("seed_0", "soup", "base", layer), "cka"] == pytest.approx(want, abs=1e-5)
    # LoRA adapts attention only: the input embeddings of every variant are the base model's
    assert np.allclose(lrow.xs(0, level="layer").xs("base", level="reference").cka, 1.0, atol=1e-6)
    # the last layer's token mean, normalised, is the variant's output embedding (mean pooling, Normalize)
    last = L["soup"][6] / np.linalg.norm(L["soup"][6], axis=1, keepdims=True)
    np.testing.assert_allclose(last, seed0["soup"], atol=1e-5)
    assert "Per layer: linear CKA" in md
    assert (wd / "results/plots/similarity/merging/minilm.layers.png").read_bytes()[:4] == b"\x89PNG"


def test_rerun_is_noop_and_a_variant_parameter_reruns_only_what_follows(merging_run):
    wd = merging_run
    out = snakemake(wd, "-n", configfile=wd / "config.yaml")
    assert "Nothing to be done" in out.stdout + out.stderr
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    cfg["merging"]["variants"]["slerp_t"] = [0.5, 0.75]
    (wd / "changed.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(wd, "-n", configfile=wd / "changed.yaml")
    text = out.stdout + out.stderr
    counts = {
        p[0]: int(p[1])
        for p in (line.split() for line in text.split("Job stats:")[1].split("total")[0].splitlines())
        if len(p) == 2 and p[1].isdigit()
    }
    assert counts.get("merging_variants") == 2 and counts.get("merging_scores") == 2  # seeds, not the base
    assert "merging_train" not in counts and "embeddings" not in counts


def test_report_holds_the_merging_tables_and_figures(merging_run):
    wd = merging_run
    snakemake(wd, "--report", "report.html", configfile=wd / "config.yaml")
    assert "LoRA and merging" in (wd / "report.html").read_text(errors="replace")


@pytest.mark.parametrize("module", ["merging/claims.py", "merging/methods/slerp.py"])
def test_a_merging_library_edit_reruns_only_the_jobs_that_run_it(merging_run, tmp_path, module):
    """Editing a verdict's code remakes the summary and its figures; editing SLERP rebuilds the variants and what
    scores them; neither retrains a LoRA adapter."""
    wd = merging_run
    planned = check_code_edit_reruns_exactly_its_rules(wd, tmp_path, wd / "config.yaml", Path(module))
    assert not planned & {"merging_train", "merging_data", "models", "corpora", "sequences"}, planned
    if module == "merging/claims.py":
        assert planned == {"merging_summary", "plots_merging", "report_headlines", "all"}, planned
    else:
        assert {"merging_variants", "merging_scores"} <= planned, planned


@pytest.mark.parametrize(
    "target,seed", [("results/merging/minilm/seed_1/adapters", 21), ("results/merging/minilm/seed_0/variants", 22)]
)
def test_sigkill_at_a_random_point_then_rerun_gives_the_same_weights(merging_run, target, seed):
    from conftest import kill_at_random_point, unlock_and_rerun
    from safetensors.torch import load_file

    wd = merging_run
    path = wd / target
    name = "step_00008/adapter_model.safetensors" if target.endswith("adapters") else "soup/model/model.safetensors"
    before = load_file(path / name)
    state = kill_at_random_point(wd, target, wd / "config.yaml", seed, max_delay=25)
    if state["exists_after_kill"]:
        # the job renamed its folder into place (whole: it is assembled under a dot-name first) and Snakemake was
        # killed before it exited (seen on a slower CPU, where the seeded kill fell in that last second)
        recipe = path / ("recipe.json" if target.endswith("adapters") else "soup/recipe.json")
        assert (path / name).is_file() and recipe.is_file(), state
        load_file(path / name)
    assert all(p.split("/")[-1].startswith(".") for p in state["leftovers"]), state
    unlock_and_rerun(wd, target, configfile=wd / "config.yaml")
    after = load_file(path / name)
    assert before.keys() == after.keys() and all((before[k] == after[k]).all() for k in before), state
    assert not [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.tmp-")]
    assert json.loads(
        (path / "recipe.json").read_text() if target.endswith("adapters") else (path / "soup/recipe.json").read_text()
    )["seed"] == int(target.split("seed_")[1][0])
