"""What is trained on STS-B: :data:`HEADS`, the registry of the variants' ``head``.

An entry is called as ``entry(job)`` and returns the keys it adds to the variant's result: ``runs`` (one per
seed, or one for the untrained ``best_layer``), the ``probe`` (:class:`~.probes.Probe`, saved beside the result;
every prediction reported comes from it) and, for ``best_layer``, the whole layer ``curve``. The trained heads
share :func:`seed_runs`: per seed, deterministic torch, train with the epoch chosen on dev, keep the state in the
probe, calibrate a log-variance model, score dev and test.
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
from .data import cosine_scaling, layer_curve, pair_cosines, scale_cosines, standardisation, standardise
from .job import Job
from .nets import build_modules, cosine_head, layer_widths, set_standardisation
from .pretrain import PRETRAIN
from .probes import Probe
from .training import calibrate, deterministic, predict, train_pairs

log = logging.getLogger(__name__)

Head = Callable[[Job], dict]
HEADS: Registry[Head] = Registry("STS head")

SPLITS = ("train", "dev", "test")


def _standardisation(job: Job) -> tuple[np.ndarray | None, np.ndarray | None]:
    """With ``standardize: true``, the train split's per-layer mean and std: standardising with them removes the
    few huge outlier dimensions of the residual stream that make raw cosines all close to 1; else none."""
    return standardisation(job.X, job.train_rows()) if job.variant.standardize else (None, None)


def cosine_latents(job: Job) -> np.ndarray:
    """The latents whose cosines the ``best_layer`` and ``mlp`` heads use (standardised where the variant says)."""
    return standardise(job.X, *_standardisation(job))


@HEADS.register("best_layer")
def best_layer(job: Job) -> dict:
    """The raw cosine at the layer with the best dev Pearson; no training, so no seeds."""
    mean, std = _standardisation(job)
    curve = layer_curve(standardise(job.X, mean, std), job.layers, job.pairs, job.rows)
    j = int(np.nanargmax([c["dev_pearson"] for c in curve]))
    stats = {} if mean is None else {"std_mean": mean[j : j + 1], "std_std": std[j : j + 1]}
    probe = Probe(job.probe_meta("cosine", [job.layers[j]], {}, **stats), {0: {"state": {}}})
    run = {
        "seed": None,
        "layer": job.layers[j],
        "dev_pearson": curve[j]["dev_pearson"],
        "dev_spearman": curve[j]["dev_spearman"],
        "test_pearson": curve[j]["test_pearson"],
        "test_spearman": curve[j]["test_spearman"],
        # cosines are in [-1, 1]; mapped to [0, 1] so they sit beside the scores; by the saved probe
        "test_pred": probe.predict_rows(job.X[j : j + 1], *job.rows["test"], seed=0).tolist(),
    }
    return {"runs": [run], "curve": curve, "probe": probe}


@HEADS.register("mlp")
def mlp(job: Job) -> dict:
    """An MLP over the n_layers fixed cosines of each pair."""
    import torch

    dev = torch.device(pick_device(job.device))
    mean, std = _standardisation(job)
    X = standardise(job.X, mean, std)
    cos = {s: pair_cosines(X, *r) for s, r in job.rows.items()}
    # the MLP's inputs scaled per layer with the train pairs' statistics: raw cosines vary too little to train on
    cmean, cstd = cosine_scaling(cos["train"])
    tabs = {s: torch.from_numpy(scale_cosines(c, cmean, cstd))[None] for s, c in cos.items()}
    idx = {s: np.arange(len(job.pairs[s]["y"])) for s in tabs}
    hp = job.hp

    def train_one(seed: int) -> tuple[dict, dict, Any]:
        net = cosine_head(tabs["train"].shape[2], hp.head_hidden).to(dev)
        run = _fit(net, tabs, idx, idx, job, seed, dev, epochs=hp.mlp_epochs, lr=hp.mlp_lr, patience="mlp_patience")
        return run, {}, net

    stats = {} if mean is None else {"std_mean": mean, "std_std": std}
    meta = job.probe_meta("mlp", job.layers, {"head_hidden": hp.head_hidden}, cos_mean=cmean, cos_std=cstd, **stats)
    runs, probe = seed_runs(job, train_one, meta)
    return {"runs": runs, "probe": probe}


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
    widths = layer_widths(L, hp.bottleneck, hp.bottleneck_late)

    def train_one(seed: int) -> tuple[dict, dict, Any]:
        net = build_modules(d, widths, hp.activation, hp.head_hidden)
        set_standardisation(net, job.X, job.train_rows())
        extra = pretrain(net, job, seed, dev)
        net.to(dev)
        run = _fit(net, tabs, r1, r2, job, seed, dev, epochs=hp.epochs, lr=hp.lr, patience="patience")
        return run, extra, net

    arch = {"widths": widths, "activation": hp.activation, "head_hidden": hp.head_hidden}
    runs, probe = seed_runs(job, train_one, job.probe_meta("siamese", job.layers, arch))
    return {"runs": runs, "probe": probe}


def _fit(net, tabs: Mapping, r1: Mapping, r2: Mapping, job: Job, seed: int, dev, *, epochs, lr, patience: str) -> dict:
    """Train ``net`` on the train pairs (rows ``r1[split]``, ``r2[split]`` of ``tabs[split]``) keeping the best dev
    epoch; its history and that epoch. ``patience`` names the hyper-parameter."""
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
    return {"history": hist, "best_epoch": hist["best_epoch"], "epochs_cap": int(epochs)}


def seed_runs(job: Job, train_one: Callable[[int], tuple[dict, dict, Any]], meta: dict) -> tuple[list[dict], Probe]:
    """``train_one(seed)`` for every seed under :func:`~.training.deterministic`; each trained network's state
    goes into the saved probe, whose predictions (calibrated for a log-variance model, on the train split) are the
    run's, scored on dev and test."""
    probe = Probe(meta)
    runs = []
    for seed in job.seeds:
        ts = time.time()
        with deterministic(int(seed)):
            run, extra, net = train_one(int(seed))
        st: dict[str, Any] = {"state": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}}
        probe.seeds[int(seed)] = st
        preds = {s: probe.predict_rows(job.X, *job.rows[s], seed=int(seed)) for s in SPLITS}  # raw latents in
        if job.hp.loss == "logvar":
            st["calibration"] = extra["calibration"] = calibrate(preds, job.pairs["train"]["y"])
        runs.append(_scored(job, int(seed), {**run, "preds": preds}, extra, ts))
    return runs, probe


def _scored(job: Job, seed: int, run: Mapping[str, Any], extra: Mapping[str, Any], ts: float) -> dict:
    """One seed's entry in the result (and a log line): dev and test scores, history, test predictions."""
    dp, ds_ = correlations(run["preds"]["dev"], job.pairs["dev"]["y"])
    tp, ts_ = correlations(run["preds"]["test"], job.pairs["test"]["y"])
    out = {
        "seed": seed,
        "best_epoch": run["best_epoch"],
        "epochs_cap": run.get("epochs_cap"),
        # the best dev epoch is the last allowed: the probe may not have converged (raise the epochs)
        "best_at_cap": run.get("epochs_cap") is not None and run["best_epoch"] == run["epochs_cap"],
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
        "%s/%s/%s %s seed %s: dev %.2f / test Pearson %.2f Spearman %.2f (epoch %s, %.1f s)",
        job.model,
        job.template,
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
    """Mean and std (ddof 1; 0 for one run) over the runs of the dev and test Pearson and Spearman; the best
    epochs, and whether any run's best dev epoch was its last allowed (``best_at_cap``: maybe not converged)."""
    out: dict[str, Any] = {"n_seeds": len(runs)}
    trained = [r for r in runs if r.get("epochs_cap")]
    if trained:
        out["best_epochs"] = [int(r["best_epoch"]) for r in trained]
        out["epochs_cap"] = int(trained[0]["epochs_cap"])
        out["best_at_cap"] = any(r.get("best_at_cap") for r in trained)
    for k in ("dev_pearson", "dev_spearman", "test_pearson", "test_spearman"):
        v = np.array([r[k] for r in runs], dtype=float)
        out[k] = float(np.mean(v))
        out[k + "_std"] = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return out
