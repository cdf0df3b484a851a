"""Clustering scores of every layer of a decoder, read one shard at a time."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .clusters import HIGHER_IS_BETTER, MetricError, cluster_metrics
from .tables import SCORE_COLUMNS, format_ci

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


LAYER_COLUMNS = ["model", "layer", "n_blocks", "depth", *SCORE_COLUMNS, "notes"]


def layer_metrics(
    shard_dir: str | os.PathLike,
    labels: Sequence[str],
    *,
    model: str,
    expect: dict | None = None,
    n_init: int = 10,
    seed: int = 0,
    bootstrap: int = 200,
    ci: float = 0.95,
    metric: str = "euclidean",
    position: str = "last",
    ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Clustering scores of every layer's activations; ``depth`` = layer / n_blocks (0 = embeddings, 1 = last)."""
    import pandas as pd

    from ..activations import iter_layers

    rows = []
    for layer, X, got_ids, attrs in iter_layers(shard_dir, expect=expect, position=position):
        if ids is not None and list(got_ids) != list(ids):
            from ..artifacts import ArtifactError

            raise ArtifactError(f"{shard_dir}: layer {layer} rows are not in the dataset's order")
        n_blocks = int(attrs.get("n_blocks") or attrs.get("n_layers_total") or 0)
        r = cluster_metrics(X, labels, n_init=n_init, seed=seed, bootstrap=bootstrap, ci=ci, metric=metric)
        row = {k: r.get(k, math.nan) for k in LAYER_COLUMNS if k in r}
        row.update(
            model=model,
            layer=layer,
            n_blocks=n_blocks,
            depth=layer / n_blocks if n_blocks else math.nan,
            notes="; ".join(f"{k}: {v}" for k, v in r["notes"].items()),
        )
        rows.append(row)
        log.info(
            "layer %d: silhouette %.3f DBI %.3f ARI %.3f",
            layer,
            r["silhouette_true"],
            r["dbi_true"],
            r.get("ari", math.nan),
        )
    return pd.DataFrame(rows, columns=LAYER_COLUMNS)


def best_layer(df: pd.DataFrame, score: str = "silhouette_true") -> int:
    """The layer with the best score (ties: the shallower one)."""
    col = df[score].astype(float)
    if col.isna().all():
        raise MetricError(f"no layer has a finite {score}")
    best = col.idxmax() if HIGHER_IS_BETTER[score] else col.idxmin()
    return int(df.loc[best, "layer"])


def layers_markdown(df: pd.DataFrame) -> str:
    """Per model: best layer by true-label silhouette vs the last layer."""
    import pandas as pd

    out = []
    for model, g in df.groupby("model", sort=False):
        g = g.reset_index(drop=True)
        b = g[g["layer"] == best_layer(g)].iloc[0]
        last = g.loc[g["layer"].idxmax()]
        out.append(
            {
                "Model": model,
                "Blocks": int(last["n_blocks"]),
                "Best layer": int(b["layer"]),
                "Depth": b["depth"],
                "Silhouette (best)": b["silhouette_true"],
                "CI (best)": format_ci(b["silhouette_true_lo"], b["silhouette_true_hi"]),
                "Silhouette (last)": last["silhouette_true"],
                "CI (last)": format_ci(last["silhouette_true_lo"], last["silhouette_true_hi"]),
                "DBI (best)": b["dbi_true"],
                "DBI (last)": last["dbi_true"],
                "ARI (best)": b["ari"],
                "ARI (last)": last["ari"],
            }
        )
    return pd.DataFrame(out).to_markdown(index=False, floatfmt=".3f")
