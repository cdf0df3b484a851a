"""How sure a CKA value is: a bootstrap interval over texts and a permutation null (one side's rows shuffled).

Both work on the two kernel matrices of the texts (N × N, built once), so each resample costs O(N²) whatever the
representations' widths. A permutation shuffles one kernel's rows and columns together (the texts no longer match,
the geometry of each side is kept): the null of "no alignment beyond chance" for these N texts.

A bootstrap resample draws N texts with replacement and weighs each text by its count c. Taken literally, the
resample's k copies of one text would form k(k−1) pairs of identical texts, perfectly aligned in both
representations: with wide representations that alone lifts CKA far above its value (two independent 576- and
640-wide Gaussians at N = 1000: CKA 0.38, naive bootstrap interval [0.53, 0.56]). The copies are therefore not paired
with each other: pair (i, j) of distinct texts weighs c_i·c_j, a text with itself c_i (as in the original, where each
text meets itself once), and the centring is weighted by c. A resample still holds only about 63% distinct texts,
and linear CKA grows as the text count falls (its finite-sample bias), so the resamples sit above the value: with 24
texts, a whole percentile interval can lie above it. The interval reported is the percentile interval shifted by that
bias (the resamples' median minus the value), clipped to [0, 1]. In a simulation (16-wide related Gaussians, 150 draws,
200 resamples each) it covered the expected CKA at that text count 98.7% of the time at N = 24 and 96.7% at N = 100
for a nominal 95% (the unshifted percentile interval: 93% and 96%), and it holds the value it belongs to.
"""

from __future__ import annotations

import numpy as np

from .measures import center


def _weighted_center(K: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``K`` centred under text weights ``c`` (the feature-space mean weighted by c, in kernel form)."""
    W = c.sum()
    m = K @ c / W
    return K - m[None, :] - m[:, None] + (c @ m) / W


def _weighted_hsic(Kc: np.ndarray, Lc: np.ndarray, c: np.ndarray) -> float:
    """Σ_ij w_ij Kc_ij Lc_ij with w_ij = c_i c_j (i ≠ j) and w_ii = c_i: copies of a text are not paired."""
    P = Kc * Lc
    d = np.diagonal(P)
    return float(c @ P @ c - (c * c) @ d + c @ d)


def _weighted_cka(K: np.ndarray, L: np.ndarray, c: np.ndarray) -> float:
    keep = c > 0
    K, L, c = K[np.ix_(keep, keep)], L[np.ix_(keep, keep)], c[keep]
    Kc, Lc = _weighted_center(K, c), _weighted_center(L, c)
    den = np.sqrt(_weighted_hsic(Kc, Kc, c) * _weighted_hsic(Lc, Lc, c))
    return _weighted_hsic(Kc, Lc, c) / den if den > 0 else float("nan")


def _cka_centered(Kc: np.ndarray, Lc: np.ndarray) -> float:
    den = np.sqrt(np.sum(Kc * Kc) * np.sum(Lc * Lc))
    return float(np.sum(Kc * Lc) / den) if den > 0 else float("nan")


def cka_uncertainty(
    X: np.ndarray, Y: np.ndarray, *, bootstrap: int, permutations: int, ci: float, seed: int
) -> dict[str, float | int]:
    """Linear CKA of ``X`` and ``Y`` (rows aligned) with a bias-shifted percentile bootstrap interval at level ``ci``
    over ``bootstrap`` resamples of the texts (see the module's notes), and a null of ``permutations`` shuffles of ``Y``'s rows: its mean, its
    ``ci`` quantile and the permutation p-value ``(1 + #null ≥ observed) / (1 + permutations)``. Seeded: the same
    inputs and seed give the same numbers."""
    Xc = center(np.asarray(X, dtype=np.float64))
    Yc = center(np.asarray(Y, dtype=np.float64))
    n = Xc.shape[0]
    if Yc.shape[0] != n:
        raise ValueError(f"representations of {n} and {Yc.shape[0]} texts: rows must be aligned")
    K, L = Xc @ Xc.T, Yc @ Yc.T
    if n > 256:  # float32 kernels halve each resample's cost; the products above stay float64
        K, L = K.astype(np.float32), L.astype(np.float32)
    obs = _cka_centered(K, L)  # centred columns: the kernels are already centred
    rng = np.random.default_rng(seed)
    out: dict[str, float | int] = {"cka": obs, "n_texts": n, "bootstrap": bootstrap, "permutations": permutations}
    if bootstrap:
        boots = np.empty(bootstrap)
        for b in range(bootstrap):
            c = np.bincount(rng.integers(0, n, n), minlength=n).astype(K.dtype)
            boots[b] = _weighted_cka(K, L, c)
        lo, hi = np.nanquantile(boots, [(1 - ci) / 2, 1 - (1 - ci) / 2])
        bias = float(np.nanmedian(boots)) - obs  # the median: the shifted interval always holds the value
        out.update(
            ci_low=float(np.clip(lo - bias, 0.0, 1.0)), ci_high=float(np.clip(hi - bias, 0.0, 1.0)), bootstrap_bias=bias
        )
    else:
        out.update(ci_low=float("nan"), ci_high=float("nan"), bootstrap_bias=float("nan"))
    if permutations:
        null = np.empty(permutations)
        for p in range(permutations):
            perm = rng.permutation(n)
            null[p] = _cka_centered(K, L[np.ix_(perm, perm)])
        out.update(
            null_mean=float(null.mean()),
            null_q=float(np.quantile(null, ci)),
            p_value=float((1 + np.sum(null >= obs)) / (1 + permutations)),
        )
    else:
        out.update(null_mean=float("nan"), null_q=float("nan"), p_value=float("nan"))
    return out


def too_wide(row: dict, width: float) -> bool:
    """Whether an interval is too wide to mean anything (wider than ``width``, or missing)."""
    lo, hi = row.get("ci_low", float("nan")), row.get("ci_high", float("nan"))
    return not (np.isfinite(lo) and np.isfinite(hi)) or (hi - lo) > width
