"""Trained STS probes as artifacts: every head's probe reproduces the run's predictions, saves and reloads to the
same numbers, refuses latents of the wrong shape and files that are not probes; the predictions equal the ones the
heads made before probes were saved (the cosine and the MLP over cosines computed on the whole set)."""

import numpy as np
import pytest
import torch
from test_sts import _cfg

from repgeom import sts
from repgeom.artifacts import ArtifactError
from repgeom.configure.config import validate_config
from repgeom.configure.stages import sts_variant_params
from repgeom.sts.data import pair_cosines, standardised
from repgeom.sts.heads import HEADS
from repgeom.sts.job import Job

L, N, D = 3, 240, 10
TRAIN = {"epochs": 3, "mlp_epochs": 5, "patience": 2, "mlp_patience": 2, "bottleneck": 4, "bottleneck_late": 4}
VARIANTS = {
    "best_layer": {"head": "best_layer"},
    "best_layer_std": {"head": "best_layer", "standardize": True},
    "mlp_std": {"head": "mlp", "standardize": True},
    "siamese": {"head": "siamese"},
    "siamese_lv": {"head": "siamese", "loss": "logvar"},
}


def _job(variant: str) -> Job:
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(L, N, D)) + 5 * rng.normal(size=(1, 1, D))).astype(np.float32)  # an outlier offset
    P = rng.normal(size=(D, 3))
    pairs, rows = {}, {}
    for split, n in (("train", 300), ("dev", 80), ("test", 80)):
        r1, r2 = rng.integers(0, N, n), rng.integers(0, N, n)
        a, b = X[1, r1] @ P, X[1, r2] @ P
        y = ((np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)) + 1) / 2
        pairs[split] = {"y": y.astype(np.float32), "id": [f"{split}{i}" for i in range(n)]}
        rows[split] = (r1, r2)
    cfg = validate_config(_cfg(variants=VARIANTS, seeds=[0, 1], train=TRAIN))
    p = sts_variant_params(cfg, variant)
    feats = {"model": "m", "model_fingerprint": "f", "template": "plain", "position": "mean"}
    return Job(variant, p.variant, p.train, pairs, rows, [1, 2, 3], X, p.seeds, "mean", "m", progress=False,
               features=feats)  # fmt: skip


@pytest.fixture(scope="module", params=list(VARIANTS))
def trained(request, one_torch_thread):
    job = _job(request.param)
    return job, HEADS[job.variant.head](job)


def test_the_saved_probe_reproduces_the_runs_predictions(trained, tmp_path):
    job, out = trained
    probe = out["probe"]
    r1, r2 = job.rows["test"]
    Xp = job.X[[job.layers.index(L) for L in probe.layers]]
    for run in out["runs"]:
        seed = 0 if run["seed"] is None else run["seed"]
        np.testing.assert_array_equal(probe.predict_rows(Xp, r1, r2, seed=seed), np.float32(run["test_pred"]))
        np.testing.assert_array_equal(probe.predict(Xp[:, r1], Xp[:, r2], seed=seed), np.float32(run["test_pred"]))
    sts.save_probe(tmp_path / "p.probe.pt", probe)
    back = sts.load_probe(tmp_path / "p.probe.pt")
    np.testing.assert_array_equal(back.predict_rows(Xp, r1, r2), probe.predict_rows(Xp, r1, r2))
    assert back.meta["features"]["template"] == "plain" and back.layers == probe.layers
    assert back.meta["hyper"] == job.hp.params() and back.meta["variant"] == job.name
    if job.hp.loss == "logvar":
        assert all("calibration" in back.seeds[s] for s in back.seeds)


def test_predictions_equal_the_heads_before_probes(trained):
    """best_layer's and mlp's predictions were computed from the cosines of the whole (standardised) set; the probe
    computes them per chunk of pairs: the same numbers, bit for bit."""
    job, out = trained
    r1, r2 = job.rows["test"]
    X = standardised(job.X, np.concatenate(job.rows["train"])) if job.variant.standardize else job.X
    if job.variant.head == "best_layer":
        j = job.layers.index(out["runs"][0]["layer"])
        old = (pair_cosines(X[j : j + 1], r1, r2)[:, 0] + 1) / 2
        np.testing.assert_array_equal(np.float32(out["runs"][0]["test_pred"]), old)
    elif job.variant.head == "mlp":
        meta = out["probe"].meta
        np.testing.assert_allclose(
            meta["cos_mean"], pair_cosines(X, *job.rows["train"]).mean(0), rtol=1e-5
        )  # train only
        head = sts.probes._mlp_head(meta, out["probe"].seeds[0]["state"])
        cos = (pair_cosines(X, r1, r2) - meta["cos_mean"]) / meta["cos_std"]
        with torch.no_grad():
            old = head(torch.from_numpy(cos.astype(np.float32))[None], None).numpy()
        np.testing.assert_array_equal(np.float32(out["runs"][0]["test_pred"]), old)


def test_bad_latents_and_bad_files_are_refused(trained, tmp_path):
    _, out = trained
    probe = out["probe"]
    with pytest.raises(sts.STSError, match="probe expects latents"):
        probe.predict_rows(np.zeros((len(probe.layers) + 1, 4, D), np.float32), [0], [1])
    with pytest.raises(sts.STSError, match="differ in shape"):
        probe.predict(np.zeros((len(probe.layers), 4, D)), np.zeros((len(probe.layers), 3, D)))
    path = tmp_path / "x.probe.pt"
    sts.save_probe(path, probe)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ArtifactError, match="truncated or corrupt"):
        sts.load_probe(path)
    torch.save({"kind": "something else"}, path)
    with pytest.raises(ArtifactError, match="not an STS probe"):
        sts.load_probe(path)
    with pytest.raises(ArtifactError, match="missing"):
        sts.load_probe(tmp_path / "nope.pt")


def test_grid_keeps_the_point_best_on_dev(one_torch_thread):
    from repgeom.sts.variants import _search, grid_points

    assert grid_points(None) == [{}] and len(grid_points({"lr": [1, 2], "head_hidden": [3, 4, 5]})) == 6
    job = _job("mlp_std")
    job.variant = type(job.variant)(
        **{**job.variant.params(), "grid": {"mlp_lr": [0.0001, 0.05], "head_hidden": [4, 16]}}
    )
    out, grid = _search(HEADS["mlp"], job)
    assert len(grid) == 4 and sum(g["chosen"] for g in grid) == 1
    chosen = next(g for g in grid if g["chosen"])
    assert chosen["dev_pearson"] == max(g["dev_pearson"] for g in grid)  # chosen on dev, by nothing else
    assert out["point"] == chosen["point"] and all("test_pearson" not in g for g in grid)
    assert out["probe"].meta["hyper"]["mlp_lr"] == chosen["point"]["mlp_lr"]
    assert out["probe"].meta["arch"]["head_hidden"] == chosen["point"]["head_hidden"]


def test_grid_config_checks():
    from repgeom.configure.config import ConfigError

    ok = {"x": {"head": "mlp", "grid": {"mlp_lr": [0.01, 0.1], "head_hidden": [8, 32]}}}
    validate_config(_cfg(variants=ok))
    bad = [
        ({"x": {"head": "best_layer", "grid": {"lr": [0.1]}}}, "a best_layer head trains nothing"),
        ({"x": {"head": "siamese", "pretrain": "autoencoder", "grid": {"bottleneck": [8]}}}, "takes bottleneck from"),
        ({"x": {"head": "mlp", "grid": {"head_hidden": [8.5]}}}, r"8.5 is not a valid head_hidden"),
        ({"x": {"head": "siamese", "grid": {"activation": ["swish"]}}}, r"'swish' is not a valid activation"),
        ({"x": {"head": "mlp", "grid": {"loss": ["mse"]}}}, r"sts.variants.x.grid"),
    ]
    for variants, msg in bad:
        with pytest.raises(ConfigError, match=msg):
            validate_config(_cfg(variants=variants))
