"""The study's tables: one row per variant × run (long), mean ± std over seeds per variant (summary), their
markdown, the verdicts' table and the best merge."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..artifacts import ArtifactError, read_json, write_text
from .claims import verdicts
from .errors import MergeError

if TYPE_CHECKING:
    import pandas as pd

#: per-variant columns of the long table (one row per variant × run)
SCORE_COLUMNS = [
    "eval_silhouette",
    "eval_dbi",
    "eval_silhouette_kmeans",
    "eval_ari",
    "heldout_silhouette",
    "heldout_dbi",
    "sts_spearman",
    "sts_pearson",
    "position",
    "off_direction",
]


def long_frame(score_blobs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (variant, run) with its scores, CIs and geometry."""
    import pandas as pd

    rows = []
    for blob in score_blobs:
        for v in blob["variants"]:
            rec, e, h = v["recipe"], v["eval"], v["heldout"]
            g, s = rec.get("geometry", {}), rec.get("stats", {})
            rows.append(
                {
                    "variant": v["variant"],
                    "method": rec["method"],
                    "t": rec.get("t"),
                    "run": blob["run"],
                    "seed": blob["seed"] if blob["run"] != "base" else None,
                    "eval_silhouette": e["silhouette_true"],
                    "eval_silhouette_lo": e.get("silhouette_true_lo"),
                    "eval_silhouette_hi": e.get("silhouette_true_hi"),
                    "eval_dbi": e["dbi_true"],
                    "eval_dbi_lo": e.get("dbi_true_lo"),
                    "eval_dbi_hi": e.get("dbi_true_hi"),
                    "eval_silhouette_kmeans": e["silhouette_kmeans"],
                    "eval_ari": e["ari"],
                    "heldout_silhouette": h["silhouette_true"],
                    "heldout_silhouette_lo": h.get("silhouette_true_lo"),
                    "heldout_silhouette_hi": h.get("silhouette_true_hi"),
                    "heldout_dbi": h["dbi_true"],
                    "sts_spearman": v["sts"]["spearman"],
                    "sts_pearson": v["sts"]["pearson"],
                    "position": g.get("position"),
                    "off_direction": g.get("off_direction"),
                    "relative_change": g.get("relative_change"),
                    "base_cos_median": g.get("base_cos", {}).get("median"),
                    "n_interpolated": s.get("n_interpolated"),
                    "n_fallback": s.get("n_fallback"),
                    "task_vector_cos": s.get("task_vector_cos"),
                }
            )
    return pd.DataFrame(rows)


def summary_frame(long: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean ± std over seeds per variant, with gains relative to the base (task gain = silhouette change on the
    evaluation set; general-ability loss = base STS Spearman − variant's). Returns ``(summary, long)``, the long
    table with those three columns added."""
    import pandas as pd

    base = long[long.variant == "base"]
    if base.empty:
        raise MergeError("no scores of the base model")
    b = base.iloc[0]
    long = long.assign(
        task_gain=long.eval_silhouette - b.eval_silhouette,
        heldout_gain=long.heldout_silhouette - b.heldout_silhouette,
        sts_loss=b.sts_spearman - long.sts_spearman,
    )
    order = list(dict.fromkeys(long.variant))
    out = []
    for name in order:
        g = long[long.variant == name]
        row = {"variant": name, "method": g.method.iloc[0], "t": g.t.iloc[0], "n_seeds": len(g)}
        for col in SCORE_COLUMNS + ["task_gain", "heldout_gain", "sts_loss"]:
            vals = g[col].astype(float)
            row[col] = vals.mean()
            row[f"{col}_std"] = vals.std(ddof=1) if len(vals) > 1 else 0.0
        for col in ("eval_silhouette_lo", "eval_silhouette_hi", "heldout_silhouette_lo", "heldout_silhouette_hi"):
            row[col] = g[col].astype(float).mean()
        row["n_fallback"] = g.n_fallback.max() if g.n_fallback.notna().any() else None
        row["n_interpolated"] = g.n_interpolated.max() if g.n_interpolated.notna().any() else None
        row["base_cos_median"] = g.base_cos_median.astype(float).mean()
        row["task_vector_cos"] = g.task_vector_cos.astype(float).mean()
        out.append(row)
    return pd.DataFrame(out), long


def _fmt(m, s, n, digits):
    if m is None or not np.isfinite(m):
        return "—"
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if n > 1 and np.isfinite(s) else "")


def summary_markdown(summary: pd.DataFrame, meta: Mapping[str, Any]) -> str:
    """The summary table as markdown, with a header line that says what each column means."""
    lines = [
        f"Variants of {meta['model']} (mean ± std over {meta['n_seeds']} seeds; task gain = evaluation-set "
        "silhouette − base's; STS loss = base's STS-B Spearman − variant's; position 0 = base, 1 = fine-tuned)",
        "",
        "| variant | position | eval silhouette ↑ | task gain ↑ | eval DBI ↓ | held-out silhouette ↑ "
        "| held-out gain ↑ | STS-B Spearman ↑ | STS loss ↓ | base·variant cos (median tensor) | SLERP fallbacks |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in summary.iterrows():
        n = int(r.n_seeds)
        fb = (
            ""
            if r.n_fallback is None or r.n_fallback != r.n_fallback
            else f"{int(r.n_fallback)}/{int(r.n_interpolated)}"
        )
        lines.append(
            f"| {r.variant} | {_fmt(r.position, r.position_std, n, 3)} "
            f"| {_fmt(r.eval_silhouette, r.eval_silhouette_std, n, 3)} "
            f"| {_fmt(r.task_gain, r.task_gain_std, n, 3)} "
            f"| {_fmt(r.eval_dbi, r.eval_dbi_std, n, 2)} "
            f"| {_fmt(r.heldout_silhouette, r.heldout_silhouette_std, n, 3)} "
            f"| {_fmt(r.heldout_gain, r.heldout_gain_std, n, 3)} "
            f"| {_fmt(r.sts_spearman, r.sts_spearman_std, n, 2)} | {_fmt(r.sts_loss, r.sts_loss_std, n, 2)} "
            f"| {'—' if r.variant == 'base' else f'{r.base_cos_median:.6f}'} | {fb} |"
        )
    lines += ["", f"Data: {meta['split']}.", ""]
    return "\n".join(lines)


def verdict_markdown(rows: Sequence[Mapping[str, str]]) -> str:
    """The verdicts as a markdown table: claim, evidence, verdict."""
    lines = ["| claim of the paper | what this run shows | verdict |", "|---|---|---|"]
    lines += [f"| {r['claim']} | {r['evidence']} | {r['verdict']} |" for r in rows]
    return "\n".join(lines) + "\n"


def write_summary(
    score_paths: Sequence[str | os.PathLike],
    *,
    model: str,
    tsv: str | os.PathLike,
    md: str | os.PathLike,
    long_tsv: str | os.PathLike,
    verdict_tsv: str | os.PathLike,
    verdict_md: str | os.PathLike,
    min_sts: float = 1.0,
    min_sil: float = 0.02,
) -> dict:
    """Read every scores file of one model (base and seeds), write the summary, long and verdict tables (TSV and
    markdown); returns ``{"summary", "long", "verdicts"}``."""
    import pandas as pd

    blobs = [read_json(p) for p in score_paths]
    for p, b in zip(score_paths, blobs):
        if b.get("kind") != "merging-scores":
            raise ArtifactError(f"{p}: not a merging scores file")
    hashes = {b["eval_texts_sha256"] for b in blobs} | {None}
    if len(hashes) > 2:
        raise ArtifactError(f"scores of {model} were made on different evaluation sets: rerun merging_scores")
    long = long_frame(blobs)
    summary, long = summary_frame(long)
    n_seeds = int(summary.set_index("variant").loc["final", "n_seeds"]) if "final" in set(summary.variant) else 0
    meta = {"model": model, "n_seeds": n_seeds, "split": blobs[0]["split"]}
    rows = verdicts(summary, long, min_sts=min_sts, min_sil=min_sil)
    for frame, path in ((summary, tsv), (long, long_tsv), (pd.DataFrame(rows), verdict_tsv)):
        write_text(path, frame.to_csv(sep="\t", index=False))
    write_text(md, summary_markdown(summary, meta))
    write_text(verdict_md, verdict_markdown(rows))
    return {"summary": summary, "long": long, "verdicts": rows}


def best_merge(summary: pd.DataFrame) -> str:
    """The merge (not base, not final) with the largest evaluation-set + held-out silhouette gain − STS-B loss/100
    (all relative to the base, mean over seeds)."""
    merges = summary[~summary.variant.isin(["base", "final"])]
    if merges.empty:
        return "final"
    score = merges.task_gain + merges.heldout_gain - merges.sts_loss / 100.0
    return str(merges.loc[score.idxmax(), "variant"])
