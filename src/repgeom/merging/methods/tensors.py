"""State-dict helpers every merge method shares: which tensors to merge, shape checks, summary statistics."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MergeError

if TYPE_CHECKING:
    from types import ModuleType


def torch_module() -> ModuleType:
    """``torch``, imported on first use (importing :mod:`repgeom.merging` does not load it)."""
    import torch

    return torch


def float_keys(sd: Mapping[str, Any]) -> list[str]:
    """The names of the floating-point tensors of a state dict, in its order."""
    return [k for k, v in sd.items() if v.is_floating_point()]


def check_same(names: Sequence[str], sds: Sequence[Mapping[str, Any]]) -> None:
    """Raise :class:`MergeError` unless every state dict has the first one's tensor names and shapes."""
    ref = sds[0]
    for name, sd in zip(names[1:], sds[1:]):
        if set(sd) != set(ref):
            diff = sorted(set(sd) ^ set(ref))[:5]
            raise MergeError(
                f"{name}: its tensors differ from {names[0]}'s (e.g. {diff}); merging needs models of one architecture"
            )
        bad = [k for k in ref if sd[k].shape != ref[k].shape][:5]
        if bad:
            raise MergeError(f"{name}: tensor shapes differ from {names[0]}'s for {bad}")


def changed_keys(base: Mapping[str, Any], *others: Mapping[str, Any]) -> list[str]:
    """Float tensors that differ from ``base`` in at least one of ``others``."""
    torch = torch_module()
    return [k for k in float_keys(base) if any(not torch.equal(base[k], o[k]) for o in others)]


def interpolate_changed(
    a: Mapping[str, Any], b: Mapping[str, Any], mix: Callable[[Any, Any], Any]
) -> tuple[dict, dict]:
    """``mix(a[k], b[k])`` for every float tensor that differs between ``a`` and ``b``; a copy of ``a[k]`` for
    the rest. Returns the state dict (in ``a``'s order) and ``{"n_tensors", "n_interpolated"}``."""
    check_same(["a", "b"], [a, b])
    keys = set(changed_keys(a, b))
    out = {k: (mix(v, b[k]) if k in keys else v.clone()) for k, v in a.items()}
    return out, {"n_tensors": len(a), "n_interpolated": len(keys)}


def global_cos(xs: Sequence[Any], ys: Sequence[Any]) -> float:
    """The cosine between two lists of tensors taken as one long vector each (float64; NaN for a zero one)."""
    dot = sum(float((x.double() * y.double()).sum()) for x, y in zip(xs, ys))
    nx = math.sqrt(sum(float((x.double() ** 2).sum()) for x in xs))
    ny = math.sqrt(sum(float((y.double() ** 2).sum()) for y in ys))
    return dot / (nx * ny) if nx and ny else float("nan")


def quantiles(values: Sequence[float]) -> dict:
    """``{"n", "min", "q05", "median", "q95", "max"}`` of the finite ``values`` (just ``{"n": 0}`` for none)."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return {"n": 0}
    q = np.quantile(v, [0.0, 0.05, 0.5, 0.95, 1.0])
    return {
        "n": int(len(v)),
        "min": float(q[0]),
        "q05": float(q[1]),
        "median": float(q[2]),
        "q95": float(q[3]),
        "max": float(q[4]),
    }
