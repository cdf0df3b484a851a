"""The score tables: one row per model (TSV and Markdown with intervals), and the per-layer table's Markdown."""

from __future__ import annotations

import logging
import math
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


#: the machine-readable table (TSV): scores with numeric CI bounds
#: the cluster scores every table holds, with numeric CI bounds
SCORE_COLUMNS = [
    *("silhouette_true", "silhouette_true_lo", "silhouette_true_hi"),
    *("dbi_true", "dbi_true_lo", "dbi_true_hi"),
    *("silhouette_kmeans", "dbi_kmeans", "ari", "nmi"),
]


TSV_COLUMNS = ["model", "n", "d", "k", *SCORE_COLUMNS, "n_truncated", "notes"]


#: the human table (Markdown): the paper's Table 2 columns first, then the new ones
MD_COLUMNS = [
    ("model", "Model"),
    ("silhouette_true", "Silhouette (true) ↑"),
    ("dbi_true", "DBI (true) ↓"),
    ("silhouette_kmeans", "Silhouette (KMeans) ↑"),
    ("dbi_kmeans", "DBI (KMeans) ↓"),
    ("silhouette_true_ci", "Silhouette (true) 95% CI"),
    ("dbi_true_ci", "DBI (true) 95% CI"),
    ("ari", "ARI ↑"),
    ("nmi", "NMI ↑"),
    ("d", "Dim"),
    ("n_truncated", "Texts truncated"),
    ("notes", "Notes"),
]


def summary_frame(rows: list[dict]) -> pd.DataFrame:
    import pandas as pd

    out = []
    for r in rows:
        row = {k: r.get(k, math.nan) for k in TSV_COLUMNS}
        row["notes"] = "; ".join(f"{k}: {v}" for k, v in (r.get("notes") or {}).items())
        out.append(row)
    return pd.DataFrame(out, columns=TSV_COLUMNS)


def format_ci(lo, hi) -> str:
    try:
        if math.isnan(lo) or math.isnan(hi):
            return ""
    except TypeError:
        return ""
    return f"[{lo:.3f}, {hi:.3f}]"


def markdown_table(df: pd.DataFrame, ci: float = 0.95) -> str:
    md = df.copy()
    for name in ("silhouette_true", "dbi_true"):
        md[f"{name}_ci"] = [format_ci(a, b) for a, b in zip(md[f"{name}_lo"], md[f"{name}_hi"])]
    cols = [(k, v.replace("95%", f"{ci * 100:g}%")) for k, v in MD_COLUMNS]
    md = md[[k for k, _ in cols]].rename(columns=dict(cols))
    return md.to_markdown(index=False, floatfmt=".3f")


def write_summary(rows: list[dict], tsv_path: str | os.PathLike, md_path: str | os.PathLike) -> None:
    from ..artifacts import write_text

    df = summary_frame(rows)
    ci = next((r.get("ci") for r in rows if r.get("ci")), 0.95)
    write_text(tsv_path, df.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="NaN"))
    write_text(md_path, markdown_table(df, ci) + "\n")
