"""Task-vector merges: two fine-tuning directions (fine-tuned − base) combined linearly or by SLERP, added back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .interpolate import merge_interpolate
from .registry import METHODS
from .slerp import SLERP_THRESHOLD
from .tensors import check_same, float_keys, global_cos, torch_module


def task_vector(base: Mapping[str, Any], tuned: Mapping[str, Any]) -> dict:
    """``tuned − base`` for float tensors (zero where unchanged)."""
    check_same(["base", "tuned"], [base, tuned])
    return {k: tuned[k] - base[k] for k in float_keys(base)}


def add_task_vector(base: Mapping[str, Any], tv: Mapping[str, Any]) -> dict:
    """``base + tv`` where ``tv`` has a tensor, a copy of ``base`` elsewhere."""
    return {k: (v + tv[k] if k in tv else v.clone()) for k, v in base.items()}


def merge_task_vectors(
    method: str,
    base: Mapping[str, Any],
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    t: float,
    threshold: float = SLERP_THRESHOLD,
) -> tuple[dict, dict]:
    """``base + interp(a − base, b − base, t)``: task vectors combined linearly or by SLERP, added back."""
    tva, tvb = task_vector(base, a), task_vector(base, b)
    torch = torch_module()
    # in state-dict order, not a set's: the float sums below must not depend on the hash seed
    nz = [k for k in tva if bool(torch.any(tva[k] != 0)) or bool(torch.any(tvb[k] != 0))]
    mixed, stats = merge_interpolate(method, {k: tva[k] for k in nz}, {k: tvb[k] for k in nz}, t, threshold)
    stats["n_tensors"] = len(base)
    stats["task_vector_cos"] = global_cos([tva[k] for k in nz], [tvb[k] for k in nz])
    return add_task_vector(base, mixed), stats


@METHODS.register("tv_linear")
def tv_linear(
    base: Mapping[str, Any], a: Mapping[str, Any], b: Mapping[str, Any], t: float, threshold: float | None = None
) -> tuple[dict, dict]:
    """The ``tv_linear`` merge method: base + the linear mix of two task vectors (``threshold`` unused)."""
    return merge_task_vectors("linear", base, a, b, t)


@METHODS.register("tv_slerp")
def tv_slerp(
    base: Mapping[str, Any], a: Mapping[str, Any], b: Mapping[str, Any], t: float, threshold: float = SLERP_THRESHOLD
) -> tuple[dict, dict]:
    """The ``tv_slerp`` merge method: base + the SLERP of two task vectors."""
    return merge_task_vectors("slerp", base, a, b, t, threshold)
