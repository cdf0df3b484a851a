"""What is trained on STS-B: :data:`HEADS`, the registry of the variants' ``head``.

An entry is called as ``entry(job)`` and returns the keys it adds to the variant's result: ``runs`` (one per
seed, or one for the untrained ``best_layer``) and, for ``best_layer``, the whole layer ``curve``. The trained
heads share :func:`seed_runs`: per seed, deterministic torch, train with the epoch chosen on dev, calibrate a
log-variance model, score dev and test.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..devices import pick_device
from ..metrics import correlations
from ..registry import Registry
from .data import layer_curve, pair_cosines, standardised
from .job import Job
from .nets import build_modules, cosine_head, layer_widths, set_standardisation
from .pretrain import PRETRAIN
from .training import calibrate, deterministic, predict, train_pairs

log = logging.getLogger(__name__)

Head = Callable[[Job], dict]
HEADS: Registry[Head] = Registry("STS head")

SPLITS = ("train", "dev", "test")


def cosine_latents(job: Job) -> np.ndarray:
    """The latents whose cosines the ``best_layer`` and ``mlp`` heads use: with ``standardize: true``, standardised
    per layer and dimension with train-split statistics, which removes the few huge outlier dimensions of the
    residual stream that make raw cosines all close to 1."""
    return standardised(job.X, job.train_rows()) if job.variant.standardize else job.X


@HEADS.register("best_layer")
def best_layer(job: Job) -> dict:
    """The raw cosine at the layer with the best dev Pearson; no training, so no seeds."""
    X, pairs, rows = cosine_latents(job), job.pairs, job.rows
    curve = layer_curve(X, job.layers, pairs, rows)
    j = int(np.nanargmax([c["dev_pearson"] for c in curve]))
    cos = pair_cosines(X[j : j + 1], *rows["test"])[:, 0]
    run = {
        "seed": None,
        "layer": job.layers[j],
        "dev_pearson": curve[j]["dev_pearson"],
        "dev_spearman": curve[j]["dev_spearman"],
        "test_pearson": curve[j]["test_pearson"],
        "test_spearman": curve[j]["test_spearman"],
        # cosines are in [-1, 1]; mapped to [0, 1] so they sit beside the scores
        "test_pred": ((cos + 1) / 2).tolist(),
    }
    return {"runs": [run], "curve": curve}


@HEADS.register("mlp")
def mlp(job: Job) -> dict:
    """An MLP over the n_layers fixed cosines of each pair."""
    import torch

    dev = torch.device(pick_device(job.device))
    X = cosine_latents(job)
    tabs = {s: torch.from_numpy(pair_cosines(X, *r))[None] for s, r in job.rows.items()}
    idx = {s: np.arange(len(job.pairs[s]["y"])) for s in tabs}
    hp = job.hp

    def train_one(seed: int) -> tuple[dict, dict]:
        net = cosine_head(tabs["train"].shape[2], hp.head_hidden).to(dev)
        run = _fit(net, tabs, idx, idx, job, seed, dev, epochs=hp.mlp_epochs, lr=hp.mlp_lr, patience="mlp_patience")
        return run, {}

    return {"runs": seed_runs(job, train_one)}


@HEADS.register("siamese")
def siamese(job: Job) -> dict:
    """One network per layer over both sentences' latents, the cosines of their outputs, the MLP; pretrained as
    the variant's ``pretrain`` says (:data:`~.pretrain.PRETRAIN`), then trained end to end."""
    import torch

    dev = torch.device(pick_device(job.device))
    Xt = torch.from_numpy(job.X)
    hp, (L, _, d) = job.hp, job.X.shape
    pretrain = PRETRAIN.get_or_raise(job.variant.pretrain, f"sts.variants.{job.name}.pretrain")
    tabs = dict.fromkeys(SPLITS, Xt)
    r1 = {s: job.rows[s][0] for s in SPLITS}
    r2 = {s: job.rows[s][1] for s in SPLITS}

    def train_one(seed: int) -> tuple[dict, dict]:
        widths = layer_widths(L, hp.bottleneck, hp.bottleneck_late)
        net = build_modules(d, widths, hp.activation, hp.head_hidden)
        set_standardisation(net, job.X, job.train_rows())
        extra = pretrain(net, job, seed, dev)
        net.to(dev)
        run = _fit(net, tabs, r1, r2, job, seed, dev, epochs=hp.epochs, lr=hp.lr, patience="patience")
        return run, extra

    return {"runs": seed_runs(job, train_one)}


def _fit(net, tabs: Mapping, r1: Mapping, r2: Mapping, job: Job, seed: int, dev, *, epochs, lr, patience: str) -> dict:
    """Train ``net`` on the train pairs (rows ``r1[split]``, ``r2[split]`` of ``tabs[split]``) keeping the best dev
    epoch; its history, that epoch and the predictions on every split. ``patience`` names the hyper-parameter."""
    hp, pairs = job.hp, job.pairs

    def evaluate() -> float:
        return correlations(predict(net, tabs["dev"], r1["dev"], r2["dev"], dev), pairs["dev"]["y"])[0]

    hist = train_pairs(
        net,
        tabs["train"],
        r1["train"],
        r2["train"],
        pairs["train"]["y"],
        params=net.parameters(),
        loss=hp.loss,
        epochs=epochs,
        lr=lr,
        weight_decay=hp.weight_decay,
        batch_size=hp.batch_size,
        seed=seed,
        dev=dev,
        evaluate=evaluate,
        patience=getattr(hp, patience),
        progress=job.progress,
        desc=job.desc(seed),
    )
    preds = {s: predict(net, tabs[s], r1[s], r2[s], dev) for s in SPLITS}
    return {"history": hist, "best_epoch": hist["best_epoch"], "preds": preds}


def seed_runs(job: Job, train_one: Callable[[int], tuple[dict, dict]]) -> list[dict]:
    """``train_one(seed)`` for every seed under :func:`~.training.deterministic`, a log-variance model's
    predictions calibrated, each run scored on dev and test."""
    runs = []
    for seed in job.seeds:
        ts = time.time()
        with deterministic(int(seed)):
            run, extra = train_one(int(seed))
            if job.hp.loss == "logvar":
                extra["calibration"] = calibrate(run["preds"], job.pairs["train"]["y"])
        runs.append(_scored(job, int(seed), run, extra, ts))
    return runs


def _scored(job: Job, seed: int, run: Mapping[str, Any], extra: Mapping[str, Any], ts: float) -> dict:
    """One seed's entry in the result (and a log line): dev and test scores, history, test predictions."""
    dp, ds_ = correlations(run["preds"]["dev"], job.pairs["dev"]["y"])
    tp, ts_ = correlations(run["preds"]["test"], job.pairs["test"]["y"])
    out = {
        "seed": seed,
        "best_epoch": run["best_epoch"],
        "dev_pearson": dp,
        "dev_spearman": ds_,
        "test_pearson": tp,
        "test_spearman": ts_,
        "history": run.get("history"),
        "seconds": round(time.time() - ts, 2),
        "test_pred": run["preds"]["test"].tolist(),
        **extra,
    }
    log.info(
        "%s/%s %s seed %s: dev %.2f / test Pearson %.2f Spearman %.2f (epoch %s, %.1f s)",
        job.model,
        job.position,
        job.name,
        seed,
        dp,
        tp,
        ts_,
        run["best_epoch"],
        time.time() - ts,
    )
    return out


def summarise_runs(runs: Sequence[Mapping[str, Any]]) -> dict:
    """Mean and std (ddof 1; 0 for one run) over the runs of the dev and test Pearson and Spearman."""
    out = {"n_seeds": len(runs)}
    for k in ("dev_pearson", "dev_spearman", "test_pearson", "test_spearman"):
        v = np.array([r[k] for r in runs], dtype=float)
        out[k] = float(np.mean(v))
        out[k + "_std"] = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return out
