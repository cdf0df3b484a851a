"""Representational similarity measures between two representations of the same N texts (rows aligned).

Linear CKA (Kornblith et al., 2019) and its debiased form (the unbiased HSIC estimator of Song et al., 2012) are
computed in feature space: ``||XᵀY||²_F`` and the rows' squared norms, so the cost grows linearly in N. The
kernel-matrix forms (:func:`linear_cka_gram`, :func:`debiased_cka_gram`) are the definitions, kept for the tests
and the bootstrap (:mod:`.uncertainty`). Mutual k-nearest-neighbour alignment follows the platonic-representation
code (Huh et al., 2024): cosine neighbours, self excluded, the mean fraction of shared neighbours. The orthogonal
Procrustes distance is Ding et al.'s (2021) on centred, unit-Frobenius-norm representations.

Every function takes arrays as they come: float64 inputs are computed in float64 (the tests compare with the
definitions to 1e-10); float32 inputs (activation shards) use float32 products with float64 sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .products import Products

#: every measure a pair artifact can hold, in the order tables list them
MEASURES = ("cka", "cka_debiased", "mutual_knn", "rsa", "procrustes")


def center(X: np.ndarray) -> np.ndarray:
    """Columns centred (the feature-space form of centring the kernel matrix)."""
    X = np.asarray(X)
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    return X - X.mean(axis=0, dtype=np.float64).astype(X.dtype)


@dataclass
class Features:
    """One representation, centred, with what every pair it enters reuses: its self-products."""

    X: np.ndarray  # (N, d) centred
    row_sq: np.ndarray  # (N,) squared row norms, float64
    self_dot: float  # ||XᵀX||²_F
    self_hsic_u: float  # unbiased HSIC of X with itself (times n(n-3))

    @classmethod
    def of(cls, X: np.ndarray, products: Products | None = None) -> Features:
        """``X`` centred; wider than its text count, in its principal coordinates (``U·S`` of its SVD: the same
        rows up to a rotation, which no measure here sees), so that a pair costs N³ rather than N·d_a·d_b and
        Procrustes an N × N SVD rather than a d_a × d_b one (24 texts, 640 wide: 0.3 s → 1 ms per pair).
        ``products``: where ``XᵀX`` is computed (:class:`~.products.Products`; the CPU by default)."""
        Xc = center(X)
        n, d = Xc.shape
        if n < 4:
            raise ValueError(f"CKA needs at least 4 texts, got {n}")
        if d > n:
            U, S, _ = np.linalg.svd(Xc.astype(np.float64), full_matrices=False)
            Xc = (U * S).astype(Xc.dtype)
        self_dot = (products or Products()).gram_sq(Xc)
        row_sq = np.einsum("ij,ij->i", Xc, Xc, dtype=np.float64)
        return cls(Xc, row_sq, self_dot, _hsic_u(self_dot, row_sq, row_sq, n))


def _hsic_u(xty_sq: float, row_x: np.ndarray, row_y: np.ndarray, n: int) -> float:
    """n(n-3)·HSIC_unbiased from feature-space terms of centred X, Y (Song et al., 2012, eq. 5).

    With K = XXᵀ and K̃ its off-diagonal part: tr(K̃L̃) = ||XᵀY||² − Σ kᵢᵢlᵢᵢ; centred columns give 1ᵀK̃1 = −Σ kᵢᵢ and
    1ᵀK̃L̃1 = Σ kᵢᵢlᵢᵢ, so the estimator needs only the cross product's norm and the rows' squared norms.
    """
    diag = float(row_x @ row_y)
    return xty_sq - n / (n - 2) * diag + float(row_x.sum()) * float(row_y.sum()) / ((n - 1) * (n - 2))


def cross_dot(a: Features, b: Features) -> float:
    """``||XᵀY||²_F`` of two centred representations (the one product a pair costs: N·d_a·d_b)."""
    return Products().cross_dot(a.X, b.X)


def cka_from(a: Features, b: Features, xty_sq: float | None = None) -> tuple[float, float]:
    """``(linear CKA, debiased linear CKA)`` of two :class:`Features`; ``xty_sq`` reuses :func:`cross_dot`."""
    xty = cross_dot(a, b) if xty_sq is None else xty_sq
    n = a.X.shape[0]
    cka = xty / np.sqrt(a.self_dot * b.self_dot) if a.self_dot > 0 and b.self_dot > 0 else float("nan")
    den = a.self_hsic_u * b.self_hsic_u
    deb = _hsic_u(xty, a.row_sq, b.row_sq, n) / np.sqrt(den) if den > 0 else float("nan")
    return float(cka), float(deb)


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA in feature space: ``||XᵀY||²_F / (||XᵀX||_F ||YᵀY||_F)`` on centred columns."""
    return cka_from(Features.of(X), Features.of(Y))[0]


def debiased_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA with the unbiased HSIC estimator (≈ 0 for independent representations at any N)."""
    return cka_from(Features.of(X), Features.of(Y))[1]


def centering_matrix(n: int) -> np.ndarray:
    return np.eye(n) - np.full((n, n), 1.0 / n)


def linear_cka_gram(K: np.ndarray, L: np.ndarray) -> float:
    """CKA from kernel matrices by its definition: HSIC(K, L) / sqrt(HSIC(K, K)·HSIC(L, L)), HSIC = tr(KHLH)."""
    H = centering_matrix(K.shape[0])
    Kc, Lc = H @ K @ H, H @ L @ H
    return float(np.sum(Kc * Lc) / np.sqrt(np.sum(Kc * Kc) * np.sum(Lc * Lc)))


def hsic_unbiased_gram(K: np.ndarray, L: np.ndarray) -> float:
    """The unbiased HSIC estimator from kernel matrices (Song et al., 2012), diagonals zeroed."""
    n = K.shape[0]
    Kt, Lt = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    one = np.ones(n)
    t = np.trace(Kt @ Lt) + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
    t -= 2.0 / (n - 2) * (one @ Kt @ Lt @ one)
    return float(t / (n * (n - 3)))


def debiased_cka_gram(K: np.ndarray, L: np.ndarray) -> float:
    return hsic_unbiased_gram(K, L) / np.sqrt(hsic_unbiased_gram(K, K) * hsic_unbiased_gram(L, L))


def procrustes_distance(a: Features, b: Features) -> float:
    """Orthogonal Procrustes distance ``2 − 2‖X̂ᵀŶ‖_*`` of the centred, unit-Frobenius-norm representations
    (0: the same up to rotation and scale; 2: orthogonal). Costs an SVD of the d_a × d_b cross product."""
    nx = np.sqrt(float(a.row_sq.sum()))
    ny = np.sqrt(float(b.row_sq.sum()))
    if nx == 0 or ny == 0:
        return float("nan")
    P = (a.X.T @ b.X).astype(np.float64) / (nx * ny)
    return float(max(0.0, 2.0 - 2.0 * np.linalg.svd(P, compute_uv=False).sum()))


def knn_sets(X: np.ndarray, k: int) -> np.ndarray:
    """Indices ``(N, k)`` of each row's k nearest rows by cosine similarity, itself excluded (ties: lower index)."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"mutual kNN: k = {k} needs 1 ≤ k < N = {n} texts")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    Xn = X / np.where(norms > 0, norms, 1.0)
    S = Xn @ Xn.T
    np.fill_diagonal(S, -np.inf)
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


def mutual_knn_from(nx: np.ndarray, ny: np.ndarray) -> float:
    """Mean fraction of the k neighbours two representations share, from :func:`knn_sets` of each."""
    n, k = nx.shape
    mx = np.zeros((n, n), dtype=bool)
    my = np.zeros((n, n), dtype=bool)
    rows = np.arange(n)[:, None]
    mx[rows, nx] = True
    my[rows, ny] = True
    return float((mx & my).sum(axis=1).mean() / k)


def mutual_knn(X: np.ndarray, Y: np.ndarray, k: int) -> float:
    """Mutual k-nearest-neighbour alignment of two representations of the same texts (1: identical neighbours)."""
    return mutual_knn_from(knn_sets(X, k), knn_sets(Y, k))
