"""The similarity measures against their definitions, their invariances, the uncertainty, and one model pair's record."""

import re

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from repgeom.artifacts import ArtifactError, write_h5
from repgeom.configure import config as rgconfig
from repgeom.configure import stages
from repgeom.similarity import tables
from repgeom.similarity.measures import (
    Features,
    debiased_cka,
    debiased_cka_gram,
    knn_sets,
    linear_cka,
    linear_cka_gram,
    mutual_knn,
    procrustes_distance,
)
from repgeom.similarity.pairs import compare_pair
from repgeom.similarity.representations import Rep, TextOrder, final_rep
from repgeom.similarity.rsa import rsa
from repgeom.similarity.uncertainty import cka_uncertainty


def _related(rng, n=60, p=12, q=9, noise=0.5):
    X = rng.normal(size=(n, p))
    return X, X @ rng.normal(size=(p, q)) + noise * rng.normal(size=(n, q))


def _rotation(rng, d):
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return Q


def test_cka_of_a_representation_with_itself_is_one():
    X = np.random.default_rng(0).normal(size=(40, 7))
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert debiased_cka(X, X) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_rotation_and_isotropic_scaling_not_to_any_linear_map():
    rng = np.random.default_rng(1)
    X, Y = _related(rng)
    ref = linear_cka(X, Y)
    assert linear_cka(X @ _rotation(rng, 12), Y) == pytest.approx(ref, abs=1e-12)
    assert linear_cka(X, 7.5 * Y @ _rotation(rng, 9)) == pytest.approx(ref, abs=1e-12)
    assert linear_cka(X + 3.0, Y - 1.0) == pytest.approx(ref, abs=1e-12)  # a shift is centred away
    assert debiased_cka(0.2 * X @ _rotation(rng, 12), Y) == pytest.approx(debiased_cka(X, Y), abs=1e-12)
    A = rng.normal(size=(12, 12)) @ np.diag(np.geomspace(1, 50, 12))  # invertible, far from orthogonal
    assert abs(np.linalg.det(A)) > 1e-6
    assert abs(linear_cka(X @ A, Y) - ref) > 0.01


def test_feature_space_cka_equals_the_kernel_definition():
    rng = np.random.default_rng(2)
    for n, p, q in ((10, 3, 4), (25, 30, 5), (40, 8, 60)):  # n < p and n > p
        X, Y = rng.normal(size=(n, p)), rng.normal(size=(n, q)) + rng.normal(size=(n, 1))
        K, L = X @ X.T, Y @ Y.T
        assert abs(linear_cka(X, Y) - linear_cka_gram(K, L)) < 1e-10
        assert abs(debiased_cka(X, Y) - debiased_cka_gram(K, L)) < 1e-10


def test_debiased_cka_of_independent_representations_is_near_zero():
    """For independent X (n×p) and Y (n×q) with iid standard normal entries, n(n−3)·HSIC_u ≈ Σ_{i≠j} (xᵢ·xⱼ)(yᵢ·yⱼ):
    terms of distinct unordered pairs are uncorrelated with variance p·q, so the sum has variance 2n(n−1)pq, while
    n(n−3)·HSIC_u(X, X) ≈ n(n−1)·p. Debiased CKA thus has mean ≈ 0 and sd ≈ √2 / n whatever p and q: here five sds,
    5√2/n, bound each draw. Plain linear CKA is not near zero (its bias grows with p·q / n²)."""
    rng = np.random.default_rng(3)
    n, p, q = 400, 60, 80
    bound = 5 * np.sqrt(2) / n
    values = [debiased_cka(rng.normal(size=(n, p)), rng.normal(size=(n, q))) for _ in range(10)]
    assert max(abs(v) for v in values) < bound, (values, bound)
    assert linear_cka(rng.normal(size=(n, p)), rng.normal(size=(n, q))) > 5 * bound


def test_mutual_knn_equals_a_brute_force_count():
    rng = np.random.default_rng(4)
    X, Y = _related(rng, n=30, noise=1.0)
    k = 5

    def neighbours(Z):
        Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
        S = Z @ Z.T
        return [
            set(sorted((j for j in range(len(Z)) if j != i), key=lambda j: (-S[i, j], j))[:k]) for i in range(len(Z))
        ]

    nx, ny = neighbours(X), neighbours(Y)
    want = np.mean([len(a & b) / k for a, b in zip(nx, ny)])
    assert mutual_knn(X, Y, k) == pytest.approx(want, abs=1e-12)
    assert [set(r) for r in knn_sets(X, k)] == nx
    assert mutual_knn(X, 3 * X @ _rotation(rng, 12), k) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="k = 30"):
        knn_sets(X, 30)


def test_rsa_equals_a_direct_spearman_of_condensed_rdms():
    rng = np.random.default_rng(5)
    X, Y = _related(rng, n=35, noise=2.0)
    want = spearmanr(pdist(X, "correlation"), pdist(Y, "correlation")).statistic
    assert rsa(X, Y) == pytest.approx(want, abs=1e-10)
    want_e = spearmanr(pdist(X), pdist(Y)).statistic
    assert rsa(X, Y, "euclidean") == pytest.approx(want_e, abs=1e-10)


def test_procrustes_distance_is_zero_up_to_rotation_and_scale():
    rng = np.random.default_rng(6)
    X, Y = _related(rng, q=12, noise=1.0)
    fx = Features.of(X)
    assert procrustes_distance(fx, Features.of(4 * X @ _rotation(rng, 12) + 1)) == pytest.approx(0.0, abs=1e-10)
    d = procrustes_distance(fx, Features.of(Y))
    assert 0.0 < d < 2.0


def test_uncertainty_is_seeded_covers_the_value_and_separates_alignment_from_chance():
    rng = np.random.default_rng(7)
    X, Y = _related(rng, n=80, p=20, q=30, noise=1.5)
    kw = dict(bootstrap=100, permutations=100, ci=0.9)
    a, b = cka_uncertainty(X, Y, seed=1, **kw), cka_uncertainty(X, Y, seed=1, **kw)
    assert a == b  # seeded: reproducible
    assert cka_uncertainty(X, Y, seed=2, **kw)["ci_low"] != a["ci_low"]
    assert a["cka"] == pytest.approx(linear_cka(X, Y), abs=1e-10)
    assert a["ci_low"] <= a["cka"] <= a["ci_high"]
    assert a["p_value"] == pytest.approx(1 / 101) and a["null_q"] < a["cka"]
    # independent wide representations: the naive bootstrap (copies paired with each other) would sit far above the
    # value; the interval used here covers it, and the null does not reject
    Xi, Yi = rng.normal(size=(200, 150)), rng.normal(size=(200, 170))
    u = cka_uncertainty(Xi, Yi, seed=0, **kw)
    assert u["ci_low"] <= u["cka"] <= u["ci_high"] and u["p_value"] > 0.05
    # 24 texts (the paper's set): resamples have fewer distinct texts and CKA rises as texts get fewer, so the
    # resamples sit above the value (by 0.015-0.02 here, seed after seed); the reported interval is shifted back
    B = rng.normal(size=(24, 16))
    F = B + rng.normal(size=(24, 16))
    for seed in range(3):
        u = cka_uncertainty(F, B, seed=seed, bootstrap=200, permutations=0, ci=0.95)
        assert u["bootstrap_bias"] > 0.01 and u["ci_low"] <= u["cka"] <= u["ci_high"]


def _embeddings_file(path, ids, X, model):
    write_h5(
        path,
        {"embeddings": X.astype(np.float32), "ids": np.array(ids, dtype=object), "labels": np.array(ids, dtype=object)},
        {"kind": "embeddings", "model": model, "texts_sha256": "x"},
        checksum=("embeddings",),
    )
    return Rep(model, str(path))


def _params(**kw):
    cfg = {"similarity": {"bootstrap": 30, "permutations": 30, "knn_k": 3, "max_texts": 20, **kw}}
    return stages.similarity_params(rgconfig.validate_config({**cfg, "models": {}, "sequences": {}}))


def test_a_pair_record_aligns_texts_by_id_and_gathers_into_tables(tmp_path):
    rng = np.random.default_rng(8)
    X, Y = _related(rng, n=30, noise=0.3)
    ids = [f"t{i}" for i in range(30)]
    perm = rng.permutation(30)
    a = _embeddings_file(tmp_path / "a.h5", ids, X, "a")
    b = _embeddings_file(tmp_path / "b.h5", [ids[i] for i in perm], Y[perm], "b")  # other order, same texts
    p = _params(measures=["cka", "cka_debiased", "mutual_knn", "rsa", "procrustes"])
    rec = compare_pair([a], [b], p)
    assert rec["measures"]["cka"][0][0] == pytest.approx(linear_cka(X, Y), abs=1e-6)
    assert rec["n_texts"] == 30 and rec["n_subsample"] == 20
    h = rec["headline"]["final"]
    assert h["a"] == h["b"] == "embedding" and h["uncertainty"]["n_texts"] == 20
    models = tables.models_table([rec])
    assert list(models.model_a) == ["a"] and models.cka.iloc[0] == pytest.approx(linear_cka(X, Y), abs=1e-6)
    md = tables.markdown("toy", models, tables.best_pairs_table([rec]), p.params())
    assert "| a `embedding` | b `embedding` |" in md
    c = _embeddings_file(tmp_path / "c.h5", ids[:29] + ["other"], X, "c")
    with pytest.raises(ArtifactError, match="not the same texts"):
        compare_pair([a], [c], p)


def test_text_order_and_final_representation():
    order = TextOrder()
    r1, r2 = Rep("m", "s1", "last", 0, 2), Rep("m", "s2", "last", 1, 2)
    X = np.arange(6.0).reshape(3, 2)
    assert order.align(r1, X, np.array(["a", "b", "c"])) is X
    np.testing.assert_array_equal(order.align(r2, X, np.array(["c", "a", "b"])), X[[1, 2, 0]])
    reps = [Rep("m", "d", "mean", 3, 3), Rep("m", "d", "last", 2, 3), Rep("m", "d", "last", 3, 3)]
    assert final_rep(reps).label == "last:3" and reps[0].depth == 1.0
    assert final_rep([Rep("m", "e.h5"), *reps]).label == "embedding"


def test_pair_records_refuse_another_kind(tmp_path):
    from repgeom.artifacts import write_json

    write_json(tmp_path / "x.json", {"kind": "sts-variant"})
    with pytest.raises(ArtifactError, match="not a similarity pair record"):
        tables.read_pair(tmp_path / "x.json")


def test_a_constant_representation_gives_nan_not_an_error():
    X = np.ones((10, 4))
    Y = np.random.default_rng(9).normal(size=(10, 3))
    assert np.isnan(linear_cka(X, Y)) and np.isnan(debiased_cka(X, Y))


def test_bad_similarity_config_is_refused_by_name():
    base = rgconfig.load_yaml(rgconfig_path())
    cases = {
        "'similarity.datasets' = 'nope': not a text set": {"datasets": ["nope"]},
        "'similarity.models' = 'ghost': unknown model": {"models": ["ghost"]},
        "'similarity.datasets' = 'numbers': 1 model(s)": {"datasets": ["numbers"], "models": ["all-minilm-l6-v2"]},
    }
    for message, sim in cases.items():
        with pytest.raises(rgconfig.ConfigError, match=re.escape(message)):
            rgconfig.validate_config({**base, "similarity": sim})
    assert stages.similarity_datasets(rgconfig.validate_config({**base, "similarity": {"enabled": False}})) == []


def rgconfig_path():
    from conftest import ROOT

    return ROOT / "config/config.yaml"


_ARRAYS: dict = {}


class _MemRep(Rep):
    """A representation held in memory (the pair logic without files)."""

    def load(self):
        return _ARRAYS[self.source], np.array([f"t{i}" for i in range(len(_ARRAYS[self.source]))])


def test_held_and_re_read_layers_give_the_same_grid_as_direct_computation():
    rng = np.random.default_rng(10)
    base = rng.normal(size=(50, 6))
    for k in range(3):
        _ARRAYS[f"a{k}"] = (base @ rng.normal(size=(6, 8)) + (k + 1) * rng.normal(size=(50, 8))).astype(np.float32)
    for k in range(2):
        _ARRAYS[f"b{k}"] = (base @ rng.normal(size=(6, 5)) + (k + 1) * rng.normal(size=(50, 5))).astype(np.float32)
    ra = [_MemRep("a", f"a{k}", "last", k, 2) for k in range(3)]
    rb = [_MemRep("b", f"b{k}", "last", k, 1) for k in range(2)]
    grids = {}
    for cache in (0, 64):
        rec = compare_pair(ra, rb, _params(cache_mb=cache, measures=["cka", "cka_debiased", "procrustes"]))
        assert rec["held_in_memory"] == bool(cache)
        grids[cache] = rec["measures"]
    for m in ("cka", "cka_debiased", "procrustes"):
        np.testing.assert_allclose(grids[0][m], grids[64][m], rtol=1e-6, atol=1e-7)
    want = [[linear_cka(_ARRAYS[f"a{i}"].astype(np.float64), _ARRAYS[f"b{j}"].astype(np.float64)) for j in range(2)]
            for i in range(3)]  # fmt: skip
    np.testing.assert_allclose(grids[64]["cka"], want, atol=1e-6)
    own = compare_pair(ra, ra, _params(cache_mb=64))
    C = np.asarray(own["measures"]["cka"])
    assert np.allclose(C, C.T) and np.allclose(np.diag(C), 1.0, atol=1e-6) and own["headline"] == {}


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_the_torch_products_equal_numpy_s_and_give_the_same_grid(device, monkeypatch):
    """The GPU path's code (torch; on the CPU where no GPU is here) gives numpy's sums: float32 products in float32
    (TF32 off), squares summed in float64; and a pair's whole grid through it equals the numpy grid."""
    import torch

    from repgeom.similarity import pairs
    from repgeom.similarity.products import Products

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no GPU here: the torch path runs on the CPU in the other case")
    rng = np.random.default_rng(12)
    X = rng.normal(size=(300, 16)).astype(np.float32)
    wide = rng.normal(size=(300, 7 + 9 + 5)).astype(np.float32)
    bounds = np.array([0, 7, 16, 21])
    cpu, tch = Products("cpu"), Products(device, use_torch=True)
    assert tch.gram_sq(X) == pytest.approx(cpu.gram_sq(X), rel=1e-6)
    for j0 in (0, 1, 2):
        got, want = tch.cross_sq(X, tch.hold(wide), bounds, j0), cpu.cross_sq(X, wide, bounds, j0)
        assert list(got) == list(want) == list(range(j0, 3))
        for j in want:
            direct = float(np.sum((X.astype(np.float64).T @ wide[:, bounds[j] : bounds[j + 1]]) ** 2))
            assert got[j] == pytest.approx(want[j], rel=1e-6) and want[j] == pytest.approx(direct, rel=1e-5)
    assert tch.cross_dot(X, wide) == pytest.approx(cpu.cross_dot(X, wide), rel=1e-6)
    with pytest.raises(ValueError, match="rows must be aligned"):
        tch.cross_dot(X, wide[:10])
    # the pair job's grid through the torch path
    for k in range(3):
        _ARRAYS[f"ta{k}"] = rng.normal(size=(40, 6 + k)).astype(np.float32)
    ra = [_MemRep("ta", f"ta{k}", "last", k, 2) for k in range(3)]
    rb = [_MemRep("tb", f"ta{k}", "mean", k, 2) for k in range(3)]
    params = _params(cache_mb=64, measures=["cka", "cka_debiased"], bootstrap=0, permutations=0)
    want = compare_pair(ra, rb, params)
    monkeypatch.setattr(pairs, "Products", lambda dev: Products(device, use_torch=True))
    got = compare_pair(ra, rb, params)
    assert got["device"] == device and want["device"] == "cpu"
    for m in ("cka", "cka_debiased"):
        np.testing.assert_allclose(got["measures"][m], want["measures"][m], rtol=1e-6, atol=1e-7)
    assert np.allclose(np.diag(got["measures"]["cka"]), 1.0, atol=1e-6)


def test_representations_wider_than_their_text_count_give_the_same_measures():
    """Features of a representation wider than N are its principal coordinates: every measure unchanged."""
    rng = np.random.default_rng(11)
    X, Y = rng.normal(size=(20, 90)), rng.normal(size=(20, 5)) @ rng.normal(size=(5, 70)) + rng.normal(size=(20, 70))
    fx, fy = Features.of(X), Features.of(Y)
    assert fx.X.shape == (20, 20) and fy.X.shape == (20, 20)
    K, L = X @ X.T, Y @ Y.T
    assert abs(linear_cka(X, Y) - linear_cka_gram(K, L)) < 1e-10
    assert abs(debiased_cka(X, Y) - debiased_cka_gram(K, L)) < 1e-10
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    direct = 2 - 2 * np.linalg.svd(Xc.T @ Yc / (np.linalg.norm(Xc) * np.linalg.norm(Yc)), compute_uv=False).sum()
    assert procrustes_distance(fx, fy) == pytest.approx(direct, abs=1e-10)


def test_mutual_knn_on_a_set_smaller_than_k_uses_every_other_text(tmp_path):
    """A tiny text set (a config that never mentions the similarity study) is not refused for the default k: k
    becomes N − 1, which the record says."""
    rng = np.random.default_rng(12)
    X, Y = _related(rng, n=8, noise=0.5)
    ids = [f"t{i}" for i in range(8)]
    a, b = _embeddings_file(tmp_path / "a.h5", ids, X, "a"), _embeddings_file(tmp_path / "b.h5", ids, Y, "b")
    rec = compare_pair([a], [b], _params(knn_k=10, measures=["cka", "mutual_knn"]))
    assert rec["knn_k_used"] == 7 and rec["measures"]["mutual_knn"][0][0] == pytest.approx(1.0)
    cfg = rgconfig.load_yaml(rgconfig_path())
    cfg["sequences"]["numbers"]["n_sequences"] = 1  # 6 texts, below the default k = 10: still a valid config
    rgconfig.validate_config(cfg)


def test_merging_layer_similarity_compares_each_layer_with_the_same_layer_of_each_reference():
    from repgeom.similarity.merging import layer_markdown, layer_similarity, layer_summary

    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 40, 16))  # 3 blocks and the input embeddings, 40 texts
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    final = rng.normal(size=(4, 40, 16))
    mixed = base.copy()
    mixed[2:] = final[2:]  # the first layers as the base's, the last as the fine-tuned model's
    seeds = {"seed_0": {"final": final, "linear_0.5": base @ q * 3.0, "soup": mixed}}
    df = layer_similarity({"base": base}, seeds, _params(measures=["cka", "mutual_knn"], knn_k=5))
    assert len(df) == 3 * 2 * 4 and set(df.depth) == {0, 1 / 3, 2 / 3, 1}
    r = df.set_index(["variant", "reference", "layer"])
    for layer in range(4):  # a rotated, scaled copy of the base is the base, layer by layer
        assert r.loc[("linear_0.5", "base", layer), "cka"] == pytest.approx(1.0)
        assert r.loc[("linear_0.5", "base", layer), "mutual_knn"] == pytest.approx(1.0)
        assert r.loc[("final", "final", layer), "cka"] == pytest.approx(1.0)
    assert r.loc[("soup", "base", 1), "cka"] == pytest.approx(1.0) and r.loc[("soup", "final", 3), "cka"] == 1.0
    assert r.loc[("soup", "base", 3), "cka"] < 0.9 and r.loc[("soup", "final", 0), "cka"] < 0.9
    assert r.loc[("linear_0.5", "base", 0), "method"] == "linear" and r.loc[("linear_0.5", "base", 0), "t"] == 0.5
    md = layer_markdown(layer_summary(df))
    assert md.count("| soup |") == 2 and "| variant | 0 | 1 | 2 | 3 |" in md
    with pytest.raises(ArtifactError, match=r"seed_0/soup: 3 layers × 40 texts, the base run 4 × 40"):
        layer_similarity({"base": base}, {"seed_0": {"final": final, "soup": mixed[:3]}}, _params())


def test_an_evaluation_embeddings_file_without_layers_is_refused_by_name(tmp_path):
    from repgeom.merging import load_eval_embeddings, load_eval_layers, write_eval_embeddings

    rec = [{"id": f"s{i}", "family": "even"} for i in range(3)]
    X = np.ones((3, 4), np.float32)
    write_eval_embeddings(tmp_path / "old.h5", "seed_0", ["final"], [X], {"texts_sha256": "x"}, rec)
    assert load_eval_embeddings(tmp_path / "old.h5")[0]["final"].shape == (3, 4)
    with pytest.raises(ArtifactError, match=r"old\.h5: no per-layer states .*rerun merging_scores"):
        load_eval_layers(tmp_path / "old.h5")
    L = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    write_eval_embeddings(tmp_path / "new.h5", "seed_0", ["final"], [X], {"texts_sha256": "x"}, rec, layers=[L])
    np.testing.assert_array_equal(load_eval_layers(tmp_path / "new.h5")["final"], L)
