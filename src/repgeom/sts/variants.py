"""The probe stage: one variant of the progression, for one model and pooling position, over all seeds."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..activations import check_shard, shard_path
from ..artifacts import now_iso
from ..params import StsVariantParams
from .data import stsb_latents
from .heads import HEADS, summarise_runs
from .job import Job
from .probes import FEATURE_KEYS, save_probe

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
    template: str = "plain",
    probe_path: str | os.PathLike | None = None,
) -> dict:
    """Run one variant of the progression for one model, prompt template and pooling position, over
    ``params.seeds``.

    ``params.train`` holds the hyper-parameters with the variant's own overrides applied. Returns a JSON-able
    result: per seed the dev and test scores, the chosen epoch or layer, the test predictions; the mean ± std over
    seeds; for ``best_layer`` the whole layer curve. The variant's ``head`` picks the entry of
    :data:`~.heads.HEADS` that runs it. The trained probe (every seed's state; :mod:`.probes`) is written to
    ``probe_path`` where given; the reported predictions are its own.
    """
    head = HEADS.get_or_raise(params.variant.head, f"sts.variants.{name}.head")
    t0 = time.time()
    pairs, rows, layers, X = stsb_latents(shard_dir, corpus_path, position, params.train.layers or None, template)
    attrs = check_shard(shard_path(shard_dir, layers[0], position), verify=False)
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
        template=template,
        device=params.device,
        progress=progress,
        autoencoder=autoencoder,
        snli_shards=snli_shards,
        snli_corpus=snli_corpus,
        features={k: attrs.get(k) for k in FEATURE_KEYS},
    )
    log.info(
        "%s/%s/%s %s: %d layers × %d sentences × %d dims; pairs %s",
        model,
        template,
        position,
        name,
        *X.shape,
        {s: len(p["y"]) for s, p in pairs.items()},
    )
    out, grid = _search(head, job)
    job = replace(job, hp=replace(job.hp, **out.pop("point")))
    result = _result_head(job)
    probe = out.pop("probe")
    result.update(out)
    if grid:
        result["grid"] = grid
    if probe_path is not None:
        save_probe(probe_path, probe)
        result["probe"] = {"file": os.path.basename(os.fspath(probe_path)), "kind": probe.kind, "layers": probe.layers}
    result["summary"] = summarise_runs(result["runs"])
    result["seconds"] = round(time.time() - t0, 2)
    result["created"] = now_iso()
    return result


def grid_points(grid: Mapping[str, Sequence[Any]] | None) -> list[dict[str, Any]]:
    """Every combination of a variant's ``grid`` (hyper-parameter → values), keys in sorted order; ``[{}]`` for
    none."""
    keys = sorted(grid or {})
    return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def _search(head, job: Job) -> tuple[dict, list[dict]]:
    """Run ``head`` at every point of the variant's grid (all seeds each) and keep the point with the best mean
    dev Pearson; the test split decides nothing (the other points' test scores are not kept). Returns the kept
    output (with its ``point``) and, for a grid, every point's dev scores and best epochs."""
    points = grid_points(job.variant.grid)
    best, best_dev, record = None, -np.inf, []
    for point in points:
        out = head(replace(job, hp=replace(job.hp, **point)))
        s = summarise_runs(out["runs"])
        dev = float(np.nan_to_num(s["dev_pearson"], nan=-np.inf))
        record.append({"point": point, **{k: s[k] for k in ("dev_pearson", "dev_pearson_std", "dev_spearman")},
                       "best_epochs": s.get("best_epochs"), "best_at_cap": s.get("best_at_cap")})  # fmt: skip
        if len(points) > 1:
            log.info(
                "%s/%s/%s %s grid %s: dev Pearson %.2f", job.model, job.template, job.position, job.name, point, dev
            )
        if best is None or dev > best_dev:
            best, best_dev = {**out, "point": point}, dev
    if len(points) > 1:
        for r in record:
            r["chosen"] = r["point"] == best["point"]
    return best, record if len(points) > 1 else []


def _result_head(job: Job) -> dict[str, Any]:
    """The result's leading keys: what was run on which data (the runs follow)."""
    return {
        "kind": "sts_variant",
        "model": job.model,
        "template": job.template,
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
