"""Linear interpolation base → final, tensor by tensor: the control line every other merge is read against."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .registry import METHODS
from .tensors import interpolate_changed


def lerp(a: Any, b: Any, t: float) -> Any:
    """``(1 - t)·a + t·b``: returns ``a`` at t = 0 and ``b`` at t = 1 exactly."""
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    return (1 - t) * a + t * b


def interpolate_linear(a: Mapping[str, Any], b: Mapping[str, Any], t: float) -> tuple[dict, dict]:
    """:func:`lerp` of every tensor that differs between the state dicts ``a`` and ``b``; the others copied.
    Stats: ``{"n_tensors", "n_interpolated"}``."""
    return interpolate_changed(a, b, lambda x, y: lerp(x, y, t))


@METHODS.register("linear")
def linear(
    base: Mapping[str, Any], final: Mapping[str, Any], t: float, threshold: float | None = None
) -> tuple[dict, dict]:
    """The ``linear`` merge method: ``(1 − t)·base + t·final`` per tensor (``threshold`` is SLERP's, unused)."""
    return interpolate_linear(base, final, t)
