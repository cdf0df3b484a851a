"""The similarity stage's tables, gathered from the per-pair records (:func:`.pairs.compare_pair`).

``layers``  every representation pair of every model pair, one row each (long form; the heatmaps' data);
``models``  one row per model pair at the final representations, with CKA's interval and permutation null;
``best``    per model pair and layer of the first model, the best-aligned layer of the second (the traced line),
            and the pair's overall best-aligned layers with their interval.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..artifacts import ArtifactError, read_json
from .measures import MEASURES
from .uncertainty import too_wide


def read_pair(path: str | os.PathLike) -> dict:
    rec = read_json(path)
    if not isinstance(rec, dict) or rec.get("kind") != "similarity-pair":
        raise ArtifactError(
            f"{path}: not a similarity pair record (kind={rec.get('kind') if isinstance(rec, dict) else None!r})"
        )
    return rec


def layers_table(records: Sequence[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        ms = [m for m in MEASURES if m in r["measures"]]
        for i, ra in enumerate(r["reps_a"]):
            for j, rb in enumerate(r["reps_b"]):
                row = {
                    "model_a": r["model_a"], "rep_a": ra["label"], "depth_a": ra["depth"],
                    "model_b": r["model_b"], "rep_b": rb["label"], "depth_b": rb["depth"],
                }  # fmt: skip
                row.update({m: r["measures"][m][i][j] for m in ms})
                rows.append(row)
    return pd.DataFrame(rows)


def _headline_row(r: dict, h: dict, wide: float) -> dict:
    u = h["uncertainty"]
    row = {"model_a": r["model_a"], "rep_a": h["a"], "model_b": r["model_b"], "rep_b": h["b"], "n_texts": r["n_texts"]}
    row.update({m: h[m] for m in MEASURES if m in h})
    row.update(
        {
            "cka_sub": u["cka"], "ci_low": u["ci_low"], "ci_high": u["ci_high"], "n_sub": u["n_texts"],
            "null_mean": u["null_mean"], "null_q": u["null_q"], "p_value": u["p_value"],
            "too_wide": too_wide(u, wide),
        }
    )  # fmt: skip
    return row


def models_table(records: Sequence[dict]) -> pd.DataFrame:
    """One row per pair of distinct models at their final representations."""
    rows = [
        _headline_row(r, r["headline"]["final"], r["params"]["wide_ci"]) for r in records if "final" in r["headline"]
    ]
    return pd.DataFrame(rows)


def best_table(records: Sequence[dict]) -> pd.DataFrame:
    """Per model pair (both directions) and layer, the other model's best-aligned representation by CKA."""
    rows = []
    for r in records:
        if "cka" not in r["measures"]:
            continue
        M = np.asarray(r["measures"]["cka"], dtype=np.float64)
        same = r["model_a"] == r["model_b"]
        for (ma, reps_a, mb, reps_b, G) in ((r["model_a"], r["reps_a"], r["model_b"], r["reps_b"], M),
                                            (r["model_b"], r["reps_b"], r["model_a"], r["reps_a"], M.T)):  # fmt: skip
            if same and ma != r["model_a"]:
                continue
            for i, ra in enumerate(reps_a):
                g = G[i].copy()
                if same:
                    g[i] = -np.inf
                if not np.isfinite(g).any():
                    continue
                j = int(np.nanargmax(np.where(np.isfinite(g), g, -np.inf)))
                rows.append(
                    {"model": ma, "rep": ra["label"], "depth": ra["depth"], "other": mb,
                     "best_rep": reps_b[j]["label"], "best_depth": reps_b[j]["depth"], "cka": float(G[i, j])}
                )  # fmt: skip
    return pd.DataFrame(rows)


def best_pairs_table(records: Sequence[dict]) -> pd.DataFrame:
    """The best-aligned representation pair of every model pair, with its interval."""
    return pd.DataFrame(
        [_headline_row(r, r["headline"]["best"], r["params"]["wide_ci"]) for r in records if "best" in r["headline"]]
    )


def _fmt(v) -> str:
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3f}"


def markdown(dataset: str, models: pd.DataFrame, best: pd.DataFrame, params: dict) -> str:
    """The report's table: the model pairs at their outputs, then each pair's best-aligned layers."""
    ci = int(round(params["ci"] * 100))
    lines = [f"# Representational similarity on `{dataset}`", ""]
    head = ["model A", "model B", "CKA (all texts)", f"CKA on n texts [{ci}% CI]", f"null {ci}%", "p", "others"]

    def block(df: pd.DataFrame, title: str, with_reps: bool) -> None:
        lines.extend([f"## {title}", ""])
        if df.empty:
            lines.extend(["(no pair)", ""])
            return
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for _, r in df.iterrows():
            a = f"{r.model_a} `{r.rep_a}`" if with_reps else r.model_a
            b = f"{r.model_b} `{r.rep_b}`" if with_reps else r.model_b
            others = ", ".join(f"{m} {_fmt(r[m])}" for m in MEASURES[1:] if m in r and m != "cka")
            flag = " (interval too wide to mean anything)" if r.too_wide else ""
            lines.append(
                f"| {a} | {b} | {_fmt(r.get('cka'))} | {_fmt(r.cka_sub)} [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}], "
                f"n = {r.n_sub}{flag} | {_fmt(r.null_q)} | {r.p_value:.3g} | {others} |"
            )
        lines.append("")

    block(models, "Models at their final representations", with_reps=True)
    block(best, "Best-aligned layer pair of each model pair", with_reps=True)
    lines.append(
        f"CKA: linear CKA over all texts. Its interval ({ci}%, {params['bootstrap']} bootstrap resamples) and the "
        f"permutation null ({params['permutations']} shuffles of one side; `null` is its {ci}th percentile, `p` the "
        f"permutation p-value) are computed on n texts (all of them, or a seeded subsample of "
        f"{params['max_texts']}), so `CKA on n texts` is the value they belong to. Linear CKA is biased upwards at "
        "small n (debiased CKA is not): read a value against its null. An interval wider than "
        f"{params['wide_ci']} is flagged too wide to mean anything."
    )
    return "\n".join(lines) + "\n"
