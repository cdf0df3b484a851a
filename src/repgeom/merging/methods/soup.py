"""The model soup: a uniform average of several fine-tuned state dicts (the ``soup`` variant's checkpoints)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import MergeError
from .tensors import check_same


def average(sds: Sequence[Mapping[str, Any]]) -> dict:
    """Uniform average of state dicts (the model soup); non-float tensors are taken from the first."""
    if not sds:
        raise MergeError("a soup needs at least one model")
    check_same([f"model {i}" for i in range(len(sds))], sds)
    out = {}
    for k, v in sds[0].items():
        if v.is_floating_point():
            acc = sum(sd[k].double() for sd in sds) / len(sds)
            out[k] = acc.to(v.dtype)
        else:
            out[k] = v.clone()
    return out
