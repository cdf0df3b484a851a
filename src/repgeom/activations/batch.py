"""One padded batch of texts as the model takes it: apart from :mod:`.batching` (which makes batches) and
:mod:`.backoff` (which splits one that does not fit), which both use it without importing each other both ways."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Batch:
    """One padded batch: the model's keyword arguments, the mask, the last real token per row, the rows."""

    rows: np.ndarray  # original indices of the batch's texts
    inputs: dict[str, Any]  # input_ids, attention_mask, position_ids (where the model takes them), use_cache
    mask: Any  # (B, T) int64 attention mask
    last: Any  # (B,) int64 index of each row's last real token
    pool_mask: Any  # (B, T) int64: the tokens a mean averages (the mask without the prompt's leading tokens)
