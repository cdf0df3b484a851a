"""Interpolation of two state dicts by name (``linear`` or ``slerp``), for callers that pick the kind at run time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import MergeError
from .linear import interpolate_linear
from .slerp import SLERP_THRESHOLD, interpolate_slerp


def merge_interpolate(
    method: str, a: Mapping[str, Any], b: Mapping[str, Any], t: float, threshold: float = SLERP_THRESHOLD
) -> tuple[dict, dict]:
    """Interpolate two state dicts tensor by tensor (``linear`` or ``slerp``).

    Tensors equal in both are copied. Returns the state dict and counts: tensors interpolated and, for SLERP,
    how many fell back to linear (nearly parallel), with the cosines between the two inputs.
    """
    if method not in ("linear", "slerp"):
        raise MergeError(f"unknown interpolation {method!r} (linear, slerp)")
    if method == "linear":
        return interpolate_linear(a, b, t)
    return interpolate_slerp(a, b, t, threshold)
