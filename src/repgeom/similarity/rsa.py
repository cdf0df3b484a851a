"""Representational similarity analysis with rsatoolbox: dissimilarity matrices (RDMs) of each representation,
compared by the Spearman correlation of their condensed upper triangles.

rsatoolbox's ``compare(method="spearman")`` ranks both RDMs again for every pair; a grid of 31 × 19 layers would rank
each RDM 19 or 31 times. Each RDM is ranked once here (``rank_transform``) and the ranked RDMs are compared with
``compare(method="corr")``: the Pearson correlation of ranks, which is Spearman's ρ (equal to rsatoolbox's own
Spearman to 1e-14; tested against a direct ``scipy.stats.spearmanr`` of the condensed RDMs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: dissimilarities rsatoolbox's calc_rdm computes that this stage offers
DISTANCES = ("correlation", "euclidean")


def ranked_rdms(reps: Sequence[np.ndarray], distance: str = "correlation"):
    """One rsatoolbox ``RDMs`` holding the rank-transformed RDM of each representation (rows: the same texts)."""
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm, concat
    from rsatoolbox.rdm.transform import rank_transform

    if distance not in DISTANCES:
        raise ValueError(f"RSA distance {distance!r}: known {', '.join(DISTANCES)}")
    rdms = [rank_transform(calc_rdm(Dataset(np.asarray(X, dtype=np.float64)), method=distance)) for X in reps]
    return concat(rdms)


def rsa_matrix(ranked_a, ranked_b) -> np.ndarray:
    """Spearman ρ between every RDM of ``ranked_a`` and every RDM of ``ranked_b`` (from :func:`ranked_rdms`)."""
    from rsatoolbox.rdm import compare

    return np.asarray(compare(ranked_a, ranked_b, method="corr"), dtype=np.float64)


def rsa(X: np.ndarray, Y: np.ndarray, distance: str = "correlation") -> float:
    """Spearman correlation of the two representations' RDMs."""
    return float(rsa_matrix(ranked_rdms([X], distance), ranked_rdms([Y], distance))[0, 0])
