"""The probe stage: one variant of the progression, for one model and pooling position, over all seeds."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..artifacts import now_iso
from .data import stsb_latents
from .heads import HEADS, summarise_runs
from .job import Job, hyper_parameters
from .pretrain import PRETRAIN

log = logging.getLogger(__name__)


def _check_variant(name: str, v: Mapping[str, Any]) -> None:
    """A ValueError naming the config key when the variant's head or pretraining is unknown."""
    if v["head"] not in HEADS:
        raise ValueError(HEADS.unknown(v["head"], f"sts.variants.{name}.head"))
    if v.get("pretrain", "none") not in PRETRAIN:
        raise ValueError(PRETRAIN.unknown(v.get("pretrain"), f"sts.variants.{name}.pretrain"))


def run_variant(
    name: str,
    variant: Mapping[str, Any],
    *,
    shard_dir: str | os.PathLike,
    corpus_path: str | os.PathLike,
    position: str,
    seeds: Sequence[int],
    train: Mapping[str, Any],
    autoencoder: str | os.PathLike | None = None,
    snli_shards: str | os.PathLike | None = None,
    snli_corpus: str | os.PathLike | None = None,
    device: str = "auto",
    progress: bool = True,
    model: str = "",
) -> dict:
    """Run one variant of the progression for one model and pooling position, over ``seeds``.

    ``train`` holds the shared hyper-parameters (``epochs``, ``lr``, ``weight_decay``, ``batch_size``,
    ``patience``, ``head_hidden``, ``bottleneck``, ``bottleneck_late``, ``activation``); the variant's own keys
    override them. Returns a JSON-able result: per seed the dev and test scores, the chosen epoch or layer, the
    test predictions; the mean ± std over seeds; for ``best_layer`` the whole layer curve. The variant's ``head``
    picks the entry of :data:`~.heads.HEADS` that runs it.
    """
    _check_variant(name, variant)
    hp = hyper_parameters(train, variant)
    t0 = time.time()
    pairs, rows, layers, X = stsb_latents(shard_dir, corpus_path, position, hp.get("layers") or None)
    job = Job(
        name=name,
        variant=variant,
        hp=hp,
        pairs=pairs,
        rows=rows,
        layers=layers,
        X=X,
        seeds=seeds,
        position=position,
        model=model,
        device=device,
        progress=progress,
        autoencoder=autoencoder,
        snli_shards=snli_shards,
        snli_corpus=snli_corpus,
    )
    log.info(
        "%s/%s %s: %d layers × %d sentences × %d dims; pairs %s",
        model,
        position,
        name,
        *X.shape,
        {s: len(p["y"]) for s, p in pairs.items()},
    )
    result = _result_head(job)
    result.update(HEADS[variant["head"]](job))
    result["summary"] = summarise_runs(result["runs"])
    result["seconds"] = round(time.time() - t0, 2)
    result["created"] = now_iso()
    return result


def _result_head(job: Job) -> dict[str, Any]:
    """The result's leading keys: what was run on which data (the runs follow)."""
    return {
        "kind": "sts_variant",
        "model": job.model,
        "position": job.position,
        "variant": job.name,
        "spec": dict(job.variant),
        "hyper": job.hp,
        "layers": job.layers,
        "n_pairs": {s: len(p["y"]) for s, p in job.pairs.items()},
        "test_ids": job.pairs["test"]["id"],
        "test_gold": job.pairs["test"]["y"].tolist(),
        "runs": [],
    }
