"""SLERP base → final, tensor by tensor, as mergekit does it (falling back to a line for near-parallel tensors)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .linear import lerp
from .registry import METHODS
from .tensors import interpolate_changed, quantiles, torch_module

#: SLERP falls back to linear interpolation when two tensors are this close to parallel (|cos| above it):
#: the usual threshold (mergekit's DOT_THRESHOLD)
SLERP_THRESHOLD = 0.9995


def slerp(a: Any, b: Any, t: float, threshold: float = SLERP_THRESHOLD) -> tuple[Any, bool, float]:
    """Spherical interpolation of two tensors viewed as flat vectors, as mergekit does it.

    The angle comes from the normalised vectors; the weights ``sin((1-t)θ)/sin θ`` and ``sin(tθ)/sin θ`` are
    applied to the *unnormalised* tensors, so the result's norm interpolates smoothly between the two. When
    ``|cos θ| > threshold`` the tensors are nearly parallel, the formula is ill-conditioned and no different
    from a line: it falls back to :func:`lerp`. Returns ``(tensor, fell_back, cos)``; computed in float64.
    """
    torch = torch_module()
    a64, b64 = a.double().flatten(), b.double().flatten()
    na, nb = torch.linalg.vector_norm(a64), torch.linalg.vector_norm(b64)
    if na == 0 or nb == 0:
        return lerp(a, b, t), True, float("nan")
    cos = float(torch.dot(a64 / na, b64 / nb).clamp(-1.0, 1.0))
    if abs(cos) > threshold:
        return lerp(a, b, t), True, cos
    theta = math.acos(cos)
    s = math.sin(theta)
    wa, wb = math.sin((1 - t) * theta) / s, math.sin(t * theta) / s
    out = (wa * a64 + wb * b64).reshape(a.shape).to(a.dtype)
    return out, False, cos


def interpolate_slerp(
    a: Mapping[str, Any], b: Mapping[str, Any], t: float, threshold: float = SLERP_THRESHOLD
) -> tuple[dict, dict]:
    """:func:`slerp` of every tensor that differs between the state dicts ``a`` and ``b``; the others copied.

    Stats: ``n_tensors``, ``n_interpolated``, how many fell back to linear (``n_fallback``), the threshold and
    quantiles of the cosines between the two inputs (``input_cos``).
    """
    cosines: list[float] = []
    fell = 0

    def mix(x, y):
        nonlocal fell
        out, fb, c = slerp(x, y, t, threshold)
        fell += fb
        cosines.append(c)
        return out

    out, stats = interpolate_changed(a, b, mix)
    stats.update(n_fallback=fell, slerp_threshold=threshold, input_cos=quantiles(cosines))
    return out, stats


@METHODS.register("slerp")
def slerp_merge(
    base: Mapping[str, Any], final: Mapping[str, Any], t: float, threshold: float = SLERP_THRESHOLD
) -> tuple[dict, dict]:
    """The ``slerp`` merge method: SLERP base → final per tensor at ``t``."""
    return interpolate_slerp(base, final, t, threshold)
