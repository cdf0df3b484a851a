"""The probe stage: one variant of the progression, for one model and pooling position, over all seeds."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from ..artifacts import now_iso
from ..params import StsVariantParams
from .data import stsb_latents
from .heads import HEADS, summarise_runs
from .job import Job

log = logging.getLogger(__name__)


def run_variant(
    name: str,
    params: StsVariantParams,
    *,
    shard_dir: str | os.PathLike,
    corpus_path: str | os.PathLike,
    position: str,
    autoencoder: str | os.PathLike | None = None,
    snli_shards: str | os.PathLike | None = None,
    snli_corpus: str | os.PathLike | None = None,
    progress: bool = True,
    model: str = "",
) -> dict:
    """Run one variant of the progression for one model and pooling position, over ``params.seeds``.

    ``params.train`` holds the hyper-parameters with the variant's own overrides applied. Returns a JSON-able
    result: per seed the dev and test scores, the chosen epoch or layer, the test predictions; the mean ± std over
    seeds; for ``best_layer`` the whole layer curve. The variant's ``head`` picks the entry of
    :data:`~.heads.HEADS` that runs it.
    """
    head = HEADS.get_or_raise(params.variant.head, f"sts.variants.{name}.head")
    t0 = time.time()
    pairs, rows, layers, X = stsb_latents(shard_dir, corpus_path, position, params.train.layers or None)
    job = Job(
        name=name,
        variant=params.variant,
        hp=params.train,
        pairs=pairs,
        rows=rows,
        layers=layers,
        X=X,
        seeds=params.seeds,
        position=position,
        model=model,
        device=params.device,
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
    result.update(head(job))
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
        "spec": job.variant.params(),
        "hyper": job.hp.params(),
        "layers": job.layers,
        "n_pairs": {s: len(p["y"]) for s, p in job.pairs.items()},
        "test_ids": job.pairs["test"]["id"],
        "test_gold": job.pairs["test"]["y"].tolist(),
        "runs": [],
    }
