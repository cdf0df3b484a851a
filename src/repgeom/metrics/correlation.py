"""Agreement of predicted with gold similarity scores (Pearson and Spearman), and picking the best result."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


def correlations(pred: np.ndarray, gold: np.ndarray) -> tuple[float, float]:
    """Pearson and Spearman ×100 (NaN when the prediction is constant)."""
    from scipy.stats import pearsonr, spearmanr

    pred, gold = np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if not np.isfinite(pred).all():
        raise ValueError("predictions hold NaN/inf")
    if np.ptp(pred) == 0:
        return float("nan"), float("nan")
    return float(pearsonr(pred, gold)[0] * 100), float(spearmanr(pred, gold)[0] * 100)


def best_result(results: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The result with the best mean dev Pearson (never chosen on test)."""
    return max(results, key=lambda r: np.nan_to_num(r["summary"]["dev_pearson"], nan=-np.inf))
