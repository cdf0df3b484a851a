"""Scores of the base model and of every variant: the task (evaluation set and held-out split) and STS-B.

Task: the spine's clustering metrics (with bootstrap CIs) on the evaluation set and on the held-out windows of
the training range. General ability: STS-B Spearman of the cosine similarity of each pair's embeddings.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import ArtifactError, library_versions, read_json, write_json
from ..corpora import stsb_pairs
from ..metrics import cluster_metrics, correlations
from ..params import MergingScoresParams
from ..sequences import load_dataset
from .data import load_training_data
from .eval_embeddings import write_eval_embeddings

log = logging.getLogger(__name__)


def base_recipe() -> dict:
    """The recipe of the untouched base model, scored beside the variants."""
    return {
        "name": "base",
        "method": "base",
        "what": "the prepared model, untouched",
        "geometry": {"position": 0.0, "off_direction": 0.0, "relative_change": 0.0},
    }


def sts_inputs(corpus_path: str | os.PathLike, split: str, max_pairs: int | None) -> dict:
    """The first ``max_pairs`` STS-B pairs of ``split`` (all when None): ``sentences`` (each distinct one once,
    in first-appearance order), ``r1``/``r2`` (each pair's rows in it), ``gold`` and ``n_pairs``."""
    pairs = stsb_pairs(corpus_path, splits=(split,))[split]
    n_pairs = len(pairs["y"]) if not max_pairs else min(max_pairs, len(pairs["y"]))
    s1, s2, gold = pairs["s1"][:n_pairs], pairs["s2"][:n_pairs], pairs["y"][:n_pairs]
    sentences = list(dict.fromkeys(s1 + s2))
    row = {s: i for i, s in enumerate(sentences)}
    return {
        "sentences": sentences,
        "r1": np.array([row[s] for s in s1]),
        "r2": np.array([row[s] for s in s2]),
        "gold": gold,
        "n_pairs": n_pairs,
    }


def score_one(
    recipe: Mapping[str, Any],
    folder: Path,
    *,
    eval_set: tuple[list[str], list[str]],
    held_set: tuple[list[str], list[str]],
    sts: Mapping[str, Any],
    params: MergingScoresParams,
    run: str,
    progress: bool,
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Embed the evaluation set, the held-out split and the STS sentences with one model folder; returns its
    scores, the evaluation set's embeddings and its per-layer token means (``(L + 1, N, d)``, see
    :meth:`repgeom.embeddings.SentenceTransformersRuntime.layer_means`). ``eval_set``/``held_set`` = (texts,
    labels)."""
    from ..embeddings import load_runtime

    t0 = time.time()
    rt = load_runtime(folder, params.embed)
    t_load = time.time() - t0
    batch_size, mkw = params.embed.batch_size, params.metrics.cluster_kwargs()
    X = rt.encode(eval_set[0], batch_size, progress=False)
    layers = rt.layer_means(eval_set[0], batch_size)
    H = rt.encode(held_set[0], batch_size, progress=False)
    S = rt.encode(sts["sentences"], batch_size, progress=progress)
    Sn = S / np.maximum(np.linalg.norm(S, axis=1, keepdims=True), 1e-12)
    cos = np.einsum("nd,nd->n", Sn[sts["r1"]], Sn[sts["r2"]])
    pearson, spearman = correlations(cos, sts["gold"])
    res = {
        "variant": recipe["name"],
        "recipe": recipe,
        "fingerprint": rt.manifest["fingerprint"],
        "eval": cluster_metrics(X, eval_set[1], **mkw),
        "heldout": cluster_metrics(H, held_set[1], **mkw),
        "sts": {"split": params.sts_split, "n_pairs": sts["n_pairs"], "pearson": pearson, "spearman": spearman},
        "seconds": {"load": round(t_load, 2), "total": round(seconds := time.time() - t0, 2)},
    }
    log.info(
        "%s %-16s eval silhouette %.3f, held-out silhouette %.3f, STS-B %s Spearman %.2f (%.1f s)",
        run,
        recipe["name"],
        res["eval"]["silhouette_true"],
        res["heldout"]["silhouette_true"],
        params.sts_split,
        spearman,
        seconds,
    )
    return res, X, layers


def score_variants(
    folders: Sequence[tuple[dict, Path]],
    *,
    data_path: str | os.PathLike,
    eval_path: str | os.PathLike,
    corpus_path: str | os.PathLike,
    out_h5: str | os.PathLike,
    run: str,
    params: MergingScoresParams,
    progress: bool = True,
) -> dict:
    """Embed the evaluation set, the held-out split and the STS pairs with every variant and score them.

    ``folders`` = [(recipe, model folder)]. Returns every score; writes ``out_h5`` (the evaluation set's
    embeddings and per-layer token means per variant, for the t-SNE maps and the similarity stage).
    """
    eval_meta, eval_records = load_dataset(eval_path)
    dmeta, drecords = load_training_data(data_path)
    if dmeta["eval_texts_sha256"] != eval_meta["texts_sha256"]:
        raise ArtifactError(f"{data_path}: made beside another evaluation set than {eval_path}; rerun merging_data")
    held = [r for r in drecords if r["split"] == "heldout"]
    sts = sts_inputs(corpus_path, params.sts_split, params.sts_max_pairs)
    eval_set = ([r["text"] for r in eval_records], [r["family"] for r in eval_records])
    held_set = ([r["text"] for r in held], [r["family"] for r in held])
    out, eval_emb, eval_layers = [], [], []
    t_all = time.time()
    for recipe, folder in folders:
        res, X, layers = score_one(
            recipe,
            folder,
            eval_set=eval_set,
            held_set=held_set,
            sts=sts,
            params=params,
            run=run,
            progress=progress,
        )
        out.append(res)
        eval_emb.append(X)
        eval_layers.append(layers)
    blob = {
        "kind": "merging-scores",
        "run": run,
        "eval_dataset": eval_meta["dataset"],
        "eval_texts_sha256": eval_meta["texts_sha256"],
        "data_texts_sha256": dmeta["texts_sha256"],
        "split": dmeta["split"],
        "n_eval": len(eval_set[0]),
        "n_heldout": len(held_set[0]),
        "n_sts_sentences": len(sts["sentences"]),
        "variants": out,
        "seconds": round(time.time() - t_all, 2),
        "versions": library_versions(),
    }
    names = [r["variant"] for r in out]
    write_eval_embeddings(out_h5, run, names, eval_emb, eval_meta, eval_records, layers=eval_layers)
    return blob


def scores_for_run(
    run: str,
    models: str | os.PathLike,
    *,
    out_json: str | os.PathLike,
    **kw: Any,
) -> dict:
    """Score the base model (``run`` = "base", ``models`` = its prepared folder) or every variant folder of one
    seed (``run`` = "seed_N", ``models`` = the variants folder), in the order the variants were built; ``kw`` are
    :func:`score_variants`' keywords. Writes ``out_json``."""
    models = Path(models)
    if run == "base":
        folders = [(base_recipe(), models)]
        seed = None
    else:
        order = [line.split("\t")[0] for line in (models / "variants.tsv").read_text().splitlines()[1:]]
        folders = [(read_json(models / v / "recipe.json"), models / v) for v in order]
        seed = int(run.split("_", 1)[1])
    blob = score_variants(folders, run=run, **kw)
    blob["seed"] = seed
    write_json(out_json, blob)
    return blob
