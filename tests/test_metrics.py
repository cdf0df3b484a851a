import math

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, davies_bouldin_score, normalized_mutual_info_score, silhouette_score

from repgeom.metrics import MetricError, bootstrap_ci, cluster_metrics, markdown_table, summary_frame


def blobs(k=4, per=6, d=5, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 5
    X = np.vstack([c + rng.normal(scale=spread, size=(per, d)) for c in centers])
    y = np.repeat([f"f{i}" for i in range(k)], per)
    return X, y


def test_matches_direct_sklearn_calls():
    X, y = blobs(spread=2.0)
    r = cluster_metrics(X, y, n_init=10, seed=3, bootstrap=0)
    km = KMeans(n_clusters=4, n_init=10, random_state=3).fit_predict(X)
    assert r["silhouette_true"] == pytest.approx(silhouette_score(X, y))
    assert r["dbi_true"] == pytest.approx(davies_bouldin_score(X, y))
    assert r["silhouette_kmeans"] == pytest.approx(silhouette_score(X, km))
    assert r["dbi_kmeans"] == pytest.approx(davies_bouldin_score(X, km))
    assert r["ari"] == pytest.approx(adjusted_rand_score(y, km))
    assert r["nmi"] == pytest.approx(normalized_mutual_info_score(y, km))


def test_cosine_silhouette_option():
    X, y = blobs()
    r = cluster_metrics(X, y, bootstrap=0, metric="cosine")
    assert r["silhouette_true"] == pytest.approx(silhouette_score(X, y, metric="cosine"))


def test_separated_blobs_score_well_and_kmeans_recovers_them():
    X, y = blobs(spread=0.05)
    r = cluster_metrics(X, y, bootstrap=100, seed=0)
    assert r["silhouette_true"] > 0.9 and r["ari"] == pytest.approx(1.0)
    assert r["silhouette_true_lo"] <= r["silhouette_true"] <= r["silhouette_true_hi"] + 1e-9
    assert r["bootstrap_valid"] == 100


def test_bootstrap_keeps_family_sizes_and_is_seeded():
    X, y = blobs(spread=1.5)
    a = bootstrap_ci(X, y, 200, 0.9, seed=1)
    b = bootstrap_ci(X, y, 200, 0.9, seed=1)
    c = bootstrap_ci(X, y, 200, 0.9, seed=2)
    assert a == b and a != c
    assert a["silhouette_true_lo"] < a["silhouette_true_hi"]


def test_nonfinite_rows_are_refused_with_their_index():
    X, y = blobs()
    X[5, 2] = np.nan
    X[7, 0] = np.inf
    with pytest.raises(MetricError, match=r"rows \[5, 7\]"):
        cluster_metrics(X, y)


def test_all_points_identical_gives_nan_with_reason():
    X = np.ones((12, 3))
    y = np.repeat(["a", "b", "c"], 4)
    r = cluster_metrics(X, y, bootstrap=10)
    assert math.isnan(r["silhouette_true"]) and math.isnan(r["silhouette_kmeans"])
    assert "identical" in r["notes"]["true"]


def test_fewer_points_than_clusters():
    X = np.random.default_rng(0).normal(size=(3, 2))
    y = np.array(["a", "b", "c"])
    r = cluster_metrics(X, y, bootstrap=0)
    assert math.isnan(r["silhouette_true"]) and "labels for 3 points" in r["notes"]["true"]
    assert math.isnan(r["ari"])


def test_family_with_one_sequence_is_noted():
    X, y = blobs(k=3, per=4)
    X, y = X[:9], y[:9]  # third family keeps one point
    r = cluster_metrics(X, y, bootstrap=0)
    assert "single sequence" in r["notes"]["families"]
    assert np.isfinite(r["silhouette_true"])


def test_summary_tables_have_paper_columns_first():
    X, y = blobs()
    r = cluster_metrics(X, y, bootstrap=20)
    r["model"] = "m"
    df = summary_frame([r, {**r, "model": "n"}])
    assert list(df["model"]) == ["m", "n"]
    md = markdown_table(df)
    header = md.splitlines()[0]
    assert (
        header.index("Silhouette (true)")
        < header.index("DBI (true)")
        < header.index("Silhouette (KMeans)")
        < header.index("DBI (KMeans)")
        < header.index("ARI")
    )


def test_dbi_parts_reproduce_sklearn():
    from repgeom.metrics.clusters import _dbi_from_parts

    X, y = blobs(spread=1.0)
    cents = {g: X[y == g].mean(axis=0) for g in np.unique(y)}
    d = np.array([np.linalg.norm(x - cents[g]) for x, g in zip(X, y)])
    assert _dbi_from_parts(d, y, X) == pytest.approx(davies_bouldin_score(X, y))


def test_bootstrap_intervals_cover_the_estimate_on_small_families():
    # 4 points per family, as in the paper: resampling bias must not push the CI off the estimate
    for seed in range(5):
        X, y = blobs(k=6, per=4, d=20, spread=3.0, seed=seed)
        r = cluster_metrics(X, y, bootstrap=500, seed=seed)
        assert r["dbi_true_lo"] <= r["dbi_true"] <= r["dbi_true_hi"], seed
        assert r["silhouette_true_lo"] <= r["silhouette_true"] <= r["silhouette_true_hi"], seed
