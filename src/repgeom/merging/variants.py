"""The merged variants of one seed, each a loadable model folder with its ``recipe.json``.

The final adapter merged (``merge_and_unload``), the soup (uniform average of every checkpoint's merged
weights), linear interpolation base↔final (the control line), SLERP base↔final per tensor, and task vectors
(fine-tuned − base) of two checkpoints or of two seeds combined by SLERP and, as their control, linearly. A
variant folder has the layout of a prepared model (``model/`` + ``manifest.json``), so the embedding runtimes
load it; its recipe records the variant's :func:`~.placement.geometry` and the merge's stats.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..artifacts import atomic_dir, now_iso
from ..models import MANIFEST, files_sha256, fingerprint
from ..params import MergingVariantsParams, VariantGrid
from .methods import METHODS
from .methods.lora_merge import merged_state
from .methods.soup import average
from .model import load_base, transformer_module
from .placement import geometry
from .training import load_adapters

log = logging.getLogger(__name__)


def variant_plan(variants: VariantGrid, checkpoints: Sequence[str], partner: str | None) -> list[dict]:
    """The recipes of one seed's variants, in table order; ``partner`` is the seed whose task vector the
    between-seeds merges combine with this one's (None with a single seed: those variants are left out)."""
    final = checkpoints[-1]
    plan = [
        {
            "name": "final",
            "method": "lora_merge",
            "checkpoint": final,
            "what": "the final adapter merged into the base (merge_and_unload)",
        },
        {
            "name": "soup",
            "method": "soup",
            "checkpoints": list(checkpoints),
            "what": f"uniform average of the merged weights of {len(checkpoints)} checkpoints",
        },
    ]
    plan += _interpolations(variants)
    plan += _task_vector_merges(variants, checkpoints, partner)
    return plan


def _interpolations(variants: VariantGrid) -> list[dict]:
    """The linear and SLERP interpolations from the base to the final merged adapter, one per ``t``."""
    plan: list[dict] = []
    for t in variants.linear_t:
        plan.append(
            {
                "name": f"linear_{t:g}",
                "method": "linear",
                "t": float(t),
                "what": f"(1 − t)·base + t·final, t = {t:g} (the control line)",
            }
        )
    for t in variants.slerp_t:
        plan.append(
            {
                "name": f"slerp_{t:g}",
                "method": "slerp",
                "t": float(t),
                "what": f"SLERP base → final per tensor, t = {t:g}",
            }
        )
    return plan


def _task_vector_merges(variants: VariantGrid, checkpoints: Sequence[str], partner: str | None) -> list[dict]:
    """Merges of two task vectors: a seed's middle and final checkpoints, and (with a partner) two seeds'."""
    final, mid = checkpoints[-1], checkpoints[max(0, len(checkpoints) // 2 - 1)]
    plan: list[dict] = []
    t = float(variants.task_vector_t)
    if len(checkpoints) >= 2 and mid != final:
        for how in ("slerp", "linear"):
            plan.append(
                {
                    "name": f"tv_{how}_ckpt",
                    "method": f"tv_{how}",
                    "t": t,
                    "a": ["self", mid],
                    "b": ["self", final],
                    "what": f"base + {how} of the task vectors of checkpoints {mid} and {final}, t = {t:g}",
                }
            )
    if partner is not None:
        for how in ("slerp", "linear"):
            plan.append(
                {
                    "name": f"tv_{how}_seeds",
                    "method": f"tv_{how}",
                    "t": t,
                    "a": ["self", final],
                    "b": ["partner", final],
                    "partner": partner,
                    "what": f"base + {how} of this seed's and {partner}'s final task vectors, t = {t:g}",
                }
            )
    return plan


def variant_state(
    recipe: Mapping[str, Any],
    base: Mapping[str, Any],
    states: Mapping[tuple[str, str], dict],
    final: Mapping[str, Any],
    threshold: float,
) -> tuple[Mapping[str, Any], dict]:
    """The state dict of one planned variant and its merge stats: ``states`` holds the merged checkpoints by
    ``("self" | "partner", checkpoint)``; ``lora_merge`` and ``soup`` are built here, the rest by :data:`METHODS`."""
    m = recipe["method"]
    if m == "lora_merge":
        return final, {}
    if m == "soup":
        return average([states[("self", c)] for c in recipe["checkpoints"]]), {}
    if m in ("linear", "slerp"):
        return METHODS[m](base, final, recipe["t"], threshold)
    return METHODS[m](base, states[tuple(recipe["a"])], states[tuple(recipe["b"])], recipe["t"], threshold)


def save_variant(model: Any, state: Mapping[str, Any], folder: Path, recipe: dict, base_manifest: dict) -> None:
    """Write ``state`` into ``model`` and save it as a prepared-model folder with its manifest and recipe."""
    transformer_module(model).load_state_dict(state, strict=True)
    model.save(str(folder / "model"))
    manifest = {
        "name": f"{base_manifest['name']}:{recipe['name']}",
        "runtime": "sentence-transformers",
        "source": {
            "type": "merge",
            "base_fingerprint": base_manifest["fingerprint"],
            "recipe": {k: v for k, v in recipe.items() if k not in ("geometry", "stats")},
        },
        "trust_remote_code": base_manifest.get("trust_remote_code", False),
        "model_path": "model",
        "files": files_sha256(folder),
        "prepared": now_iso(),
    }
    manifest["fingerprint"] = fingerprint(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (folder / "recipe.json").write_text(json.dumps(recipe, indent=2, default=float) + "\n")


def _merged_checkpoints(
    base_module: Any,
    adapters_dir: str | os.PathLike,
    checkpoints: Sequence[str],
    partner_dir: str | os.PathLike | None,
    base_fingerprint: str,
) -> dict[tuple[str, str], dict]:
    """Every checkpoint of this seed merged into the base, and the partner seed's final one (when given)."""
    states = {("self", c): merged_state(base_module, Path(adapters_dir) / c) for c in checkpoints}
    if partner_dir is not None:
        prec = load_adapters(partner_dir, base_fingerprint)
        states[("partner", checkpoints[-1])] = merged_state(base_module, Path(partner_dir) / prec["checkpoints"][-1])
    return states


def build_variants(
    model_dir: str | os.PathLike,
    adapters_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    params: MergingVariantsParams,
    seed: int,
    partner_dir: str | os.PathLike | None = None,
) -> list[dict]:
    """Build every variant of one seed as a loadable model folder under ``out_dir/{variant}/``; ``partner_dir``
    holds the adapters of seed ``params.partner`` (the between-seeds merges).

    Also writes ``out_dir/variants.tsv``: one row per variant with its recipe and geometry.
    """
    import pandas as pd

    model, manifest = load_base(model_dir, "cpu")
    base_module = copy.deepcopy(transformer_module(model))
    base = {k: v.detach().clone() for k, v in base_module.state_dict().items()}
    own = load_adapters(adapters_dir, manifest["fingerprint"])
    ckpts = own["checkpoints"]
    states = _merged_checkpoints(base_module, adapters_dir, ckpts, partner_dir, manifest["fingerprint"])
    partner = None if partner_dir is None else f"seed {params.partner}"
    final = states[("self", ckpts[-1])]
    threshold = float(params.variants.slerp_threshold)
    rows = []
    with atomic_dir(out_dir) as stage:
        for recipe in variant_plan(params.variants, ckpts, partner):
            t0 = time.time()
            state, stats = variant_state(recipe, base, states, final, threshold)
            recipe = {
                **recipe,
                "seed": seed,
                "lora": own["lora"],
                "train": own["train"],
                "stats": stats,
                "geometry": geometry(base, final, state),
            }
            save_variant(model, state, stage / recipe["name"], recipe, manifest)
            g = recipe["geometry"]
            log.info(
                "variant %-16s position %.3f off-direction %.3f, base-cos median %.6f%s (%.1f s)",
                recipe["name"],
                g["position"],
                g["off_direction"],
                g["base_cos"].get("median", float("nan")),
                f", SLERP fell back to linear on {stats['n_fallback']}/{stats['n_interpolated']} tensors"
                if "n_fallback" in stats
                else "",
                time.time() - t0,
            )
            rows.append(variant_row(recipe))
        pd.DataFrame(rows).to_csv(stage / "variants.tsv", sep="\t", index=False)
    return rows


def variant_row(recipe: Mapping[str, Any]) -> dict:
    """One row of ``variants.tsv``: the variant's method, geometry and merge stats."""
    g, s = recipe.get("geometry", {}), recipe.get("stats", {})
    return {
        "variant": recipe["name"],
        "method": recipe["method"],
        "t": recipe.get("t"),
        "position": g.get("position"),
        "off_direction": g.get("off_direction"),
        "relative_change": g.get("relative_change"),
        "base_cos_min": g.get("base_cos", {}).get("min"),
        "base_cos_median": g.get("base_cos", {}).get("median"),
        "n_changed": g.get("n_changed"),
        "n_interpolated": s.get("n_interpolated"),
        "n_fallback": s.get("n_fallback"),
        "input_cos_max": s.get("input_cos", {}).get("max"),
        "task_vector_cos": s.get("task_vector_cos"),
    }
