"""One model pair's similarity: every representation of one model against every representation of the other.

The cost that grows with the text count is the cross product ``XᵀY`` (N·d_a·d_b per layer pair, for CKA and
debiased CKA); everything else is per representation (its self-products, its neighbours and its ranked RDM on the
subsample) and is computed once. The other model's layers are held in memory when they fit ``cache_mb`` (side by
side in one matrix, so that one product per layer of the first model gives every cross product), else read again for
each layer of the first model (verified once per process, then from the page cache). Uncertainty (a
bootstrap interval and a permutation null, :mod:`.uncertainty`) is computed for the pair's headline numbers: the two
models' final representations, and the best-aligned layer pair. The products run where ``similarity.device`` says
(:mod:`.products`: a GPU when ``auto`` finds one); the subsample's measures stay on the CPU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..devices import pick_device
from ..params import SimilarityParams
from .measures import MEASURES, Features, cka_from, knn_sets, mutual_knn_from, procrustes_distance
from .products import Products
from .representations import Rep, TextOrder, final_rep, subsample
from .rsa import ranked_rdms, rsa_matrix
from .uncertainty import cka_uncertainty

log = logging.getLogger(__name__)


#: every measure the stage knows, in table order
@dataclass
class _Loaded:
    feats: Features
    sub: np.ndarray  # (n_sub, d) rows of the subsample, as stored (for RSA, kNN and the uncertainty)
    knn: np.ndarray | None


class _Side:
    """One model's representations, loaded through one :class:`TextOrder`; the per-representation work once."""

    def __init__(self, reps: Sequence[Rep], order: TextOrder, params: SimilarityParams, timer: dict, prod: Products):
        self.reps, self.order, self.p, self.timer, self.prod = list(reps), order, params, timer, prod
        self.held: dict[int, _Loaded] = {}
        self.idx: np.ndarray | None = None

    def raw(self, i: int) -> np.ndarray:
        t = time.perf_counter()
        X, ids = self.reps[i].load()
        X = self.order.align(self.reps[i], X, ids)
        self.timer["read"] += time.perf_counter() - t
        return X

    def load(self, i: int, keep: bool = False) -> _Loaded:
        if i in self.held:
            return self.held[i]
        X = self.raw(i)
        t = time.perf_counter()
        if self.idx is None:
            self.idx = subsample(X.shape[0], self.p.max_texts, self.p.seed)
        sub = X[self.idx]
        knn = knn_sets(sub, knn_k(self.p, len(sub))) if "mutual_knn" in self.p.measures else None
        out = _Loaded(Features.of(X, self.prod), sub, knn)
        self.timer["compute"] += time.perf_counter() - t
        if keep:
            self.held[i] = out
        return out


def knn_k(params: SimilarityParams, n: int) -> int:
    """The neighbours mutual kNN counts among ``n`` texts: ``knn_k``, or ``n − 1`` on a set too small for it
    (logged, and recorded in the pair's record as ``knn_k_used``)."""
    if params.knn_k < n:
        return params.knn_k
    log.warning("mutual kNN: knn_k = %d is not below the %d texts compared; using k = %d", params.knn_k, n, n - 1)
    return n - 1


def _best(M: np.ndarray) -> tuple[int, int]:
    M = np.array(M, dtype=np.float64)
    M[~np.isfinite(M)] = -np.inf
    return tuple(int(v) for v in np.unravel_index(np.argmax(M), M.shape))  # type: ignore[return-value]


def compare_pair(
    reps_a: Sequence[Rep],
    reps_b: Sequence[Rep],
    params: SimilarityParams,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Every measure of ``params.measures`` for every representation of ``reps_a`` × ``reps_b`` (one model each; the
    same list for a model with itself, whose grid is symmetric and computed once per unordered pair), and the
    uncertainty of the headline pairs (two distinct models only: their final representations and their
    best-aligned layer pair). Returns the pair's record (see :func:`repgeom.similarity.tables`)."""
    timer = {"read": 0.0, "compute": 0.0}
    t0 = time.perf_counter()
    same = reps_a[0].model == reps_b[0].model
    order = TextOrder()
    prod = Products(pick_device(params.device))
    A = _Side(reps_a, order, params, timer, prod)
    B = A if same else _Side(reps_b, order, params, timer, prod)
    na, nb = len(reps_a), len(reps_b)
    want = set(params.measures)
    M = {m: np.full((na, nb), np.nan) for m in MEASURES if m in want}
    # the second model's layers: held when they fit, else read again per layer of the first
    first_b = B.load(0)
    row_bytes = first_b.feats.X.nbytes
    # held: the layers side by side in one matrix (copied there once: twice their size for a moment), so that one
    # product per layer of the first model gives its cross products with every layer of the second
    hold = 2 * nb * row_bytes <= params.cache_mb * 2**20
    log.info(
        "%s × %s: %d × %d representations of %d texts (%s the second model's layers: %.0f MB; products on %s)",
        reps_a[0].model, reps_b[0].model, na, nb, first_b.feats.X.shape[0],
        "holding" if hold else "re-reading", nb * row_bytes / 2**20, prod.device,
    )  # fmt: skip
    subs_a: list[np.ndarray] = [None] * na  # type: ignore[list-item]
    subs_b: list[np.ndarray] = [None] * nb  # type: ignore[list-item]
    subs_b[0] = first_b.sub
    wide, offs, on_device = None, None, None
    if hold:
        B.held[0] = first_b
        held = [B.load(j, keep=True) for j in range(nb)]
        offs = np.cumsum([0] + [h.feats.X.shape[1] for h in held])
        wide = np.concatenate([h.feats.X for h in held], axis=1)
        for j, h in enumerate(held):
            h.feats.X = wide[:, offs[j] : offs[j + 1]]
        del held
        on_device = prod.hold(wide) if want & {"cka", "cka_debiased"} else None
    for i in range(na):
        a = A.load(i, keep=same and hold)
        subs_a[i] = a.sub
        j0 = i if same else 0
        xty: dict[int, float] = {}
        if on_device is not None:
            t = time.perf_counter()
            xty = prod.cross_sq(a.feats.X, on_device, offs, j0)
            timer["compute"] += time.perf_counter() - t
        for j in range(j0, nb):
            b = B.load(j, keep=hold)
            if subs_b[j] is None:
                subs_b[j] = b.sub
            t = time.perf_counter()
            if want & {"cka", "cka_debiased"}:
                cka, deb = cka_from(a.feats, b.feats, xty[j] if j in xty else prod.cross_dot(a.feats.X, b.feats.X))
                if "cka" in M:
                    M["cka"][i, j] = cka
                if "cka_debiased" in M:
                    M["cka_debiased"][i, j] = deb
            if "procrustes" in M:
                M["procrustes"][i, j] = procrustes_distance(a.feats, b.feats)
            if "mutual_knn" in M:
                M["mutual_knn"][i, j] = mutual_knn_from(a.knn, b.knn)
            timer["compute"] += time.perf_counter() - t
        if progress:
            progress(i + 1)
    if same:
        for m in M.values():
            low = np.tril_indices(na, -1)
            m[low] = m.T[low]
    if "rsa" in M:
        t = time.perf_counter()
        ra = ranked_rdms(subs_a, params.rsa_distance)
        M["rsa"] = rsa_matrix(ra, ra if same else ranked_rdms(subs_b, params.rsa_distance))
        timer["compute"] += time.perf_counter() - t
    # headline pairs: the final representations, and the best-aligned layer pair (by CKA, else the first measure)
    t = time.perf_counter()
    key = "cka" if "cka" in M else next(iter(M))
    fa, fb = final_rep(reps_a), final_rep(reps_b)
    ia, jb = list(reps_a).index(fa), list(reps_b).index(fb)
    headline = {}
    pairs = {} if same else {"final": (ia, jb), "best": _best(M[key] if key != "procrustes" else -M[key])}
    for name, (i, j) in pairs.items():
        u = cka_uncertainty(
            subs_a[i], subs_b[j], bootstrap=params.bootstrap, permutations=params.permutations, ci=params.ci,
            seed=params.seed,
        )  # fmt: skip
        headline[name] = {
            "a": reps_a[i].label, "b": reps_b[j].label, "depth_a": reps_a[i].depth, "depth_b": reps_b[j].depth,
            **{m: float(M[m][i, j]) for m in M}, "uncertainty": u,
        }  # fmt: skip
    timer["compute"] += time.perf_counter() - t
    n = order.ids.shape[0] if order.ids is not None else 0
    return {
        "kind": "similarity-pair",
        "model_a": reps_a[0].model,
        "model_b": reps_b[0].model,
        "n_texts": int(n),
        "n_subsample": int(len(A.idx)) if A.idx is not None else 0,
        "knn_k_used": knn_k(params, len(A.idx)) if "mutual_knn" in want and A.idx is not None else None,
        "reps_a": [r.record() for r in reps_a],
        "reps_b": [r.record() for r in reps_b],
        "measures": {m: v.tolist() for m, v in M.items()},
        "headline": headline,
        "params": params.params(),
        "seconds": {
            "read": round(timer["read"], 3),
            "compute": round(timer["compute"], 3),
            "total": round(time.perf_counter() - t0, 3),
        },  # fmt: skip
        "held_in_memory": bool(hold),
        "device": prod.device,
    }
