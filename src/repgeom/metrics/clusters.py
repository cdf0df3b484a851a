"""Clustering geometry of an embedding matrix against its family labels.

All scores come from scikit-learn: silhouette and Davies-Bouldin on the true
family labels and on KMeans labels (k = number of families), adjusted Rand and
NMI of KMeans against the truth, and bootstrap confidence intervals for the
true-label scores (sequences resampled with replacement *within* each family,
so every resample keeps every family and its size).

Degenerate inputs never produce a number that means nothing: non-finite rows
raise :class:`MetricError`; a score that is undefined (all points identical,
fewer points than clusters, one label) is recorded as NaN with a reason in
``notes``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


SCORES = ("silhouette_true", "dbi_true", "silhouette_kmeans", "dbi_kmeans", "ari", "nmi")


#: direction of "better" for each score, used in tables and plots
HIGHER_IS_BETTER = {
    "silhouette_true": True,
    "dbi_true": False,
    "silhouette_kmeans": True,
    "dbi_kmeans": False,
    "ari": True,
    "nmi": True,
}


class MetricError(ValueError):
    """The embeddings cannot be scored (e.g. NaN/inf); the message says which rows."""


def _silhouette(X, labels, metric):
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(X, labels, metric=metric))


def _dbi(X, labels):
    from sklearn.metrics import davies_bouldin_score

    return float(davies_bouldin_score(X, labels))


def _label_problem(X: np.ndarray, labels: np.ndarray) -> str | None:
    k = len(np.unique(labels))
    n = len(labels)
    if k < 2:
        return f"only {k} distinct label(s); silhouette and DBI need at least 2"
    if k >= n:
        return f"{k} labels for {n} points; silhouette needs 2 <= labels <= points - 1"
    if np.allclose(X, X[0]):
        return "all embeddings are identical (the model maps every text to one point)"
    return None


def score_labels(X: np.ndarray, labels: np.ndarray, metric: str = "euclidean") -> tuple[float, float, str | None]:
    why = _label_problem(X, labels)
    if why:
        return math.nan, math.nan, why
    return _silhouette(X, labels, metric), _dbi(X, labels), None


def kmeans_labels(X: np.ndarray, k: int, n_init: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(X)


def _dbi_from_parts(dist_to_centroid: np.ndarray, labels: np.ndarray, X: np.ndarray) -> float:
    """Davies-Bouldin index from per-point distances to their family centroid.

    With ``dist_to_centroid`` measured to the centroids of these very points this is
    exactly sklearn's ``davies_bouldin_score`` (checked in the tests).
    """
    groups = np.unique(labels)
    scatter = np.array([dist_to_centroid[labels == g].mean() for g in groups])
    centroids = np.vstack([X[labels == g].mean(axis=0) for g in groups])
    sep = np.linalg.norm(centroids[:, None, :] - centroids[None, :, :], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (scatter[:, None] + scatter[None, :]) / sep
    np.fill_diagonal(r, -np.inf)
    return float(np.mean(np.max(r, axis=1)))


def bootstrap_ci(
    X: np.ndarray, labels: np.ndarray, n_boot: int, ci: float, seed: int, metric: str = "euclidean"
) -> dict:
    """Percentile CIs of the true-label silhouette and DBI, resampling sequences within families.

    Each resample draws, for every family, as many of its sequences as it has, with
    replacement, so every family keeps its size. Recomputing either score on a resample
    would be biased by the duplicates it contains (a duplicate sits at distance 0 from its
    twin, which inflates the silhouette; duplicates pull a family's centroid towards
    themselves, which shrinks its scatter and the DBI): with 4 sequences per family the
    whole bootstrap distribution can miss the point estimate. So the per-sequence parts
    are measured once on the full data and resampled: the silhouette CI bootstraps the
    mean of sklearn's ``silhouette_samples``; the DBI CI recomputes the index from each
    resample's family centroids and its members' distances to their full-data centroid.
    """
    from sklearn.metrics import silhouette_samples

    if n_boot <= 0:
        return {}
    rng = np.random.default_rng(seed)
    uniq = np.unique(labels)
    groups = [np.flatnonzero(labels == g) for g in uniq]
    per_point = silhouette_samples(X, labels, metric=metric)
    centroids = {g: X[labels == g].mean(axis=0) for g in uniq}
    d_full = np.array([np.linalg.norm(X[i] - centroids[labels[i]]) for i in range(len(labels))])
    sil, dbi = [], []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        sil.append(float(per_point[idx].mean()))
        v = _dbi_from_parts(d_full[idx], labels[idx], X[idx])
        if np.isfinite(v):
            dbi.append(v)
    lo, hi = (1 - ci) / 2 * 100, (1 + ci) / 2 * 100
    out = {"bootstrap_n": n_boot, "bootstrap_valid": len(dbi), "ci": ci}
    for name, vals in (("silhouette_true", sil), ("dbi_true", dbi)):
        if vals:
            out[f"{name}_lo"], out[f"{name}_hi"] = (float(v) for v in np.percentile(vals, [lo, hi]))
            out[f"{name}_boot_mean"] = float(np.mean(vals))
        else:
            out[f"{name}_lo"] = out[f"{name}_hi"] = out[f"{name}_boot_mean"] = math.nan
    return out


def _flag_biased_intervals(res: dict, notes: dict) -> None:
    """Say so when a point estimate falls outside its own bootstrap interval."""
    for name in ("silhouette_true", "dbi_true"):
        est, lo, hi = res.get(name), res.get(f"{name}_lo"), res.get(f"{name}_hi")
        if est is None or lo is None or any(map(math.isnan, (est, lo, hi))):
            continue
        if not lo <= est <= hi:
            bias = res[f"{name}_boot_mean"] - est
            notes[f"{name}_ci"] = (
                f"estimate {est:.3f} lies outside its bootstrap interval (bootstrap bias "
                f"{bias:+.3f}): with this few sequences per family the score is biased "
                "under resampling; read the interval as spread, not as location"
            )


def cluster_metrics(
    X: np.ndarray,
    labels: Sequence[str],
    *,
    n_init: int = 10,
    seed: int = 0,
    bootstrap: int = 1000,
    ci: float = 0.95,
    metric: str = "euclidean",
) -> dict:
    """Every clustering score of one embedding matrix; see the module docstring."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels).astype(str)
    if X.ndim != 2 or X.shape[0] != len(labels):
        raise MetricError(f"embeddings of shape {X.shape} do not match {len(labels)} labels")
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if len(bad):
        raise MetricError(
            f"{len(bad)} embedding rows contain NaN or inf (rows {bad[:10].tolist()}); refusing to score them"
        )
    k = len(np.unique(labels))
    notes: dict[str, str] = {}
    res: dict = {
        "n": int(X.shape[0]),
        "d": int(X.shape[1]),
        "k": k,
        "metric": metric,
        "kmeans_n_init": n_init,
        "seed": seed,
    }
    sizes = {g: int((labels == g).sum()) for g in np.unique(labels)}
    if min(sizes.values()) < 2:
        notes["families"] = (
            "families with a single sequence: "
            + ", ".join(g for g, s in sizes.items() if s < 2)
            + " (their silhouette is 0 by definition)"
        )
    s, d, why = score_labels(X, labels, metric)
    res["silhouette_true"], res["dbi_true"] = s, d
    if why:
        notes["true"] = why
    if why is None and X.shape[0] > k:
        km = kmeans_labels(X, k, n_init, seed)
        s, d, why_k = score_labels(X, km, metric)
        res["silhouette_kmeans"], res["dbi_kmeans"] = s, d
        if why_k:
            notes["kmeans"] = f"KMeans found {len(np.unique(km))} clusters: {why_k}"
        res["ari"] = float(adjusted_rand_score(labels, km))
        res["nmi"] = float(normalized_mutual_info_score(labels, km))
        res["kmeans_sizes"] = np.bincount(km, minlength=k).tolist()
    else:
        res.update({"silhouette_kmeans": math.nan, "dbi_kmeans": math.nan, "ari": math.nan, "nmi": math.nan})
        notes["kmeans"] = why or f"{X.shape[0]} points for k={k} clusters: KMeans needs more points than clusters"
    if why is None:
        res.update(bootstrap_ci(X, labels, bootstrap, ci, seed, metric))
        _flag_biased_intervals(res, notes)
    res["notes"] = notes
    return res
