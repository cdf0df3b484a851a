"""Transfer: every saved probe of one model, template and pooling, applied unchanged to another similarity set.

A transfer set is any corpus of sentence pairs with scores (kind ``stsb`` or ``pairs``; ``sts.transfer``), whose
sentences were extracted with the same template and pooling. Its ``test`` split is scored by each probe (no
training, no choice made on it), beside the zero-shot curve on the same pairs: the cosine at every layer, whose best
layer is hindsight and only shows how much a probe or the STS-B-chosen layer leaves on the table.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..artifacts import now_iso
from ..corpora import corpus_sentences, stsb_pairs
from ..metrics import correlations
from .data import layer_curve, load_latents, rows_for
from .probes import FEATURE_KEYS, load_probe

if TYPE_CHECKING:
    import pandas as pd

SPLIT = "test"


def transfer_scores(
    probe_paths: Sequence[str | os.PathLike],
    *,
    shard_dir: str | os.PathLike,
    corpus_path: str | os.PathLike,
    corpus: str,
    model: str,
    template: str,
    position: str,
) -> dict:
    """Score the transfer set's test pairs with every probe in ``probe_paths`` (each reads its own layers of the
    set's shards, refused where they are not the features it was trained on) and compute the zero-shot curve.
    Returns a JSON-able result: per probe (variant) the Pearson and Spearman of each seed's scores, their mean
    and std; the curve; the pairs' ids and gold scores."""
    from ..artifacts import texts_sha256

    t0 = time.time()
    pairs = stsb_pairs(corpus_path, (SPLIT,))[SPLIT]
    _, texts = corpus_sentences(corpus_path)
    layers, row_of_id, X = load_latents(
        shard_dir, position, expect={"texts_sha256": texts_sha256(texts), "template": template}
    )
    r1, r2 = rows_for(row_of_id, pairs["id1"], "transfer"), rows_for(row_of_id, pairs["id2"], "transfer")
    curve = layer_curve(X, layers, {SPLIT: pairs}, {SPLIT: (r1, r2)})
    probes = {}
    for path in probe_paths:
        probe = load_probe(path)
        _check_features(probe, path, shard_dir, layers, position)
        preds = probe.predict_rows(X[[layers.index(L) for L in probe.layers]], r1, r2)
        scores = [correlations(p, pairs["y"]) for p in preds]
        probes[probe.meta["variant"]] = {
            "kind": probe.kind,
            "layers": probe.layers,
            "seeds": list(probe.seeds),
            "pearson": [s[0] for s in scores],
            "spearman": [s[1] for s in scores],
            "pearson_mean": float(np.mean([s[0] for s in scores])),
            "pearson_std": float(np.std([s[0] for s in scores], ddof=1)) if len(scores) > 1 else 0.0,
            "spearman_mean": float(np.mean([s[1] for s in scores])),
            "spearman_std": float(np.std([s[1] for s in scores], ddof=1)) if len(scores) > 1 else 0.0,
            "pred_mean": np.mean(preds, axis=0).tolist(),
        }
    best = max(curve, key=lambda c: np.nan_to_num(c[f"{SPLIT}_pearson"], nan=-np.inf))
    return {
        "kind": "sts_transfer",
        "model": model,
        "template": template,
        "position": position,
        "corpus": corpus,
        "n_pairs": len(pairs["y"]),
        "ids": pairs["id"],
        "gold": pairs["y"].tolist(),
        "probes": probes,
        "curve": curve,
        "best_layer_hindsight": {"layer": best["layer"], "pearson": best[f"{SPLIT}_pearson"], "spearman": best[f"{SPLIT}_spearman"]},
        "seconds": round(time.time() - t0, 2),
        "created": now_iso(),
    }  # fmt: skip


def _check_features(probe, path, shard_dir, layers: Sequence[int], position: str) -> None:
    """The set's shards must be the features the probe was trained on (same model weights, template, pooling)."""
    from ..activations import check_shard, shard_path
    from .errors import STSError

    missing = [L for L in probe.layers if L not in layers]
    if missing:
        raise STSError(f"{path}: the probe reads layers {missing}, which {shard_dir} does not hold")
    attrs = check_shard(shard_path(shard_dir, probe.layers[0], position), verify=False)
    want = probe.meta["features"]
    bad = {k: (want.get(k), attrs.get(k)) for k in FEATURE_KEYS if want.get(k) != attrs.get(k)}
    if bad:
        raise STSError(
            f"{path}: trained on other features than {shard_dir} holds ("
            + ", ".join(f"{k}: probe {a!r}, shards {b!r}" for k, (a, b) in bad.items())
            + "); extract the set with the probe's model and template"
        )


def transfer_frame(
    results: Sequence[Mapping[str, Any]],
    variant_results: Sequence[Mapping[str, Any]] = (),
    order: Sequence[str] | None = None,
    templates: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per (model, template, pooling, transfer set, variant): test Pearson and Spearman ×100 (mean ± std
    over seeds) on the set, the variant's own STS-B test Pearson beside it, and per (…, set) a ``zero-shot best
    layer (hindsight)`` row."""
    import pandas as pd

    own = {(r["model"], r.get("template", "plain"), r["position"], r["variant"]): r["summary"] for r in variant_results}
    rows = []
    for r in results:
        key = (r["model"], r["template"], r["position"])
        for v, p in r["probes"].items():
            stsb = own.get((*key, v), {})
            rows.append(
                {"model": r["model"], "template": r["template"], "pooling": r["position"], "corpus": r["corpus"],
                 "variant": v, "n_seeds": len(p["seeds"]) if p["kind"] != "cosine" else 0,
                 "pearson": p["pearson_mean"], "pearson_std": p["pearson_std"], "spearman": p["spearman_mean"],
                 "spearman_std": p["spearman_std"], "layers": " ".join(map(str, p["layers"])) if p["kind"] == "cosine" else "",
                 "stsb_test_pearson": stsb.get("test_pearson", np.nan), "n_pairs": r["n_pairs"]}
            )  # fmt: skip
        h = r["best_layer_hindsight"]
        rows.append(
            {"model": r["model"], "template": r["template"], "pooling": r["position"], "corpus": r["corpus"],
             "variant": "zero-shot best layer (hindsight)", "n_seeds": 0, "pearson": h["pearson"], "pearson_std": 0.0,
             "spearman": h["spearman"], "spearman_std": 0.0, "layers": str(h["layer"]), "stsb_test_pearson": np.nan,
             "n_pairs": r["n_pairs"]}
        )  # fmt: skip
    df = pd.DataFrame(rows)
    if len(df):
        vo = {v: i for i, v in enumerate(order or [])}
        to = {t: i for i, t in enumerate(templates or [])}
        df["_v"] = df["variant"].map(lambda v: vo.get(v, len(vo)))
        df["_t"] = df["template"].map(lambda t: to.get(t, len(to)))
        df = df.sort_values(["corpus", "model", "_t", "pooling", "_v"], kind="stable").drop(columns=["_v", "_t"])
    return df.reset_index(drop=True)


def transfer_markdown(df: pd.DataFrame) -> str:
    """:func:`transfer_frame` in Markdown."""
    lines = [
        "| transfer set | model | template | pooling | probe | Pearson | Spearman | seeds | STS-B test Pearson |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in df.iterrows():
        n = int(r["n_seeds"])

        def pm(m, s, n=n):
            return f"{m:.2f} ± {s:.2f}" if n > 1 else f"{m:.2f}"

        probe = r["variant"] + (f" (layer {r['layers']})" if r["layers"] else "")
        own = "—" if not np.isfinite(r["stsb_test_pearson"]) else f"{r['stsb_test_pearson']:.2f}"
        lines.append(
            f"| {r['corpus']} ({r['n_pairs']} pairs) | {r['model']} | {r['template']} | {r['pooling']} | {probe} | "
            f"{pm(r['pearson'], r['pearson_std'])} | {pm(r['spearman'], r['spearman_std'])} | {n or '—'} | {own} |"
        )
    return "\n".join(lines) + "\n"
