"""Where a merged variant sits between the base and the fine-tuned model (recorded in every variant's recipe)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .methods.tensors import changed_keys, quantiles


def geometry(base: Mapping[str, Any], final: Mapping[str, Any], variant: Mapping[str, Any]) -> dict:
    """Where a variant sits relative to the base and the fine-tuned model.

    ``position``: the projection of (variant − base) on the fine-tuning direction (final − base), summed over
    all tensors, in units of that direction: 0 is the base, 1 the fine-tuned model; a linear interpolation at
    ``t`` sits at exactly ``t``. ``off_direction``: the norm of what is left of (variant − base) after that
    projection, relative to ``‖final − base‖`` (0 on the line). ``base_cos``: quantiles of the cosine between
    each changed base tensor and the variant's; ``relative_change``: ‖variant − base‖ / ‖base‖ over the changed
    tensors. When the changes are this small, the angle between base and merged tensors is tiny and SLERP
    cannot differ from linear interpolation.
    """
    keys = changed_keys(base, final, variant)
    dot = dd = vv = bb = 0.0
    cos = []
    for k in keys:
        b0 = base[k].double()
        d = final[k].double() - b0
        v = variant[k].double() - b0
        dot += float((v * d).sum())
        dd += float((d * d).sum())
        vv += float((v * v).sum())
        bb += float((b0 * b0).sum())
        vk = variant[k].double().flatten()
        nb, nv = float(b0.norm()), float(vk.norm())
        if nb and nv:
            cos.append(float((b0.flatten() @ vk) / (nb * nv)))
    pos = dot / dd if dd else float("nan")
    off = math.sqrt(max(vv - (dot * dot / dd if dd else 0.0), 0.0)) / math.sqrt(dd) if dd else float("nan")
    return {
        "n_changed": len(keys),
        "position": pos,
        "off_direction": off,
        "relative_change": math.sqrt(vv / bb) if bb else float("nan"),
        "finetune_relative_change": math.sqrt(dd / bb) if bb else float("nan"),
        "base_cos": quantiles(cos),
    }
