"""Score figures of the numbers and layers studies: bars per model, curves over depth."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .figure import pyplot, save_figure

if TYPE_CHECKING:
    import pandas as pd


def plot_bars(
    summary: pd.DataFrame,
    out_path: str | os.PathLike,
    *,
    pairs: Sequence[tuple[str, str, str, bool]],
    dpi: int = 150,
    title: str = "",
) -> None:
    """Side-by-side bars per model: true-label vs KMeans score, one panel per score.

    ``pairs`` is a list of (panel title, true column, kmeans column, higher-is-better).
    """
    plt = pyplot()
    df = summary
    models = list(df["model"])
    x = np.arange(len(models))
    w = 0.38
    fig, axes = plt.subplots(
        1,
        len(pairs),
        figsize=(max(5, 1.1 * len(models)) * len(pairs) / 1.4, 4.2),
        constrained_layout=True,
        squeeze=False,
    )
    for ax, (name, true_col, km_col, higher) in zip(axes[0], pairs):
        t = df[true_col].astype(float).to_numpy()
        k = df[km_col].astype(float).to_numpy()
        ax.bar(x - w / 2, np.nan_to_num(t), w, label="true families", color="#4477aa")
        ax.bar(x + w / 2, np.nan_to_num(k), w, label="KMeans clusters", color="#ee8866")
        lo, hi = f"{true_col}_lo", f"{true_col}_hi"
        if lo in df and hi in df:  # the interval itself, which need not contain the estimate
            lo_v, hi_v = df[lo].astype(float).to_numpy(), df[hi].astype(float).to_numpy()
            ok = np.isfinite(lo_v) & np.isfinite(hi_v)
            ax.errorbar(
                (x - w / 2)[ok],
                ((lo_v + hi_v) / 2)[ok],
                yerr=((hi_v - lo_v) / 2)[ok],
                fmt="none",
                ecolor="black",
                capsize=3,
                linewidth=1.2,
                label="bootstrap CI (true)",
            )
        for i, (a, b) in enumerate(zip(t, k)):
            for xx, v in ((i - w / 2, a), (i + w / 2, b)):
                if math.isnan(v):
                    ax.text(xx, 0, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
        ax.set_xticks(x, models, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{name} ({'higher' if higher else 'lower'} is better)", fontsize=10)
        ax.axhline(0, color="0.3", linewidth=0.6)
        ax.legend(fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    save_figure(fig, out_path, dpi)


def plot_layer_curves(df: pd.DataFrame, out_path: str | os.PathLike, *, dpi: int = 150, title: str = "") -> None:
    """Silhouette and DBI (true labels, with CI bands) against depth normalised to 0-1, one line per model."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3), constrained_layout=True)
    panels = [
        ("silhouette_true", "Silhouette, true families (higher is better)", True),
        ("dbi_true", "Davies-Bouldin, true families (lower is better)", True),
        ("ari", "ARI of KMeans vs families (higher is better)", False),
    ]
    for ax, (col, name, band) in zip(axes, panels):
        for model, g in df.groupby("model", sort=False):
            g = g.sort_values("depth")
            (line,) = ax.plot(
                g["depth"], g[col], marker="o", markersize=3, label=f"{model} ({int(g['n_blocks'].iloc[0])} blocks)"
            )
            if band and f"{col}_lo" in g:
                ax.fill_between(
                    g["depth"], g[f"{col}_lo"], g[f"{col}_hi"], color=line.get_color(), alpha=0.15, linewidth=0
                )
        ax.set_xlabel("depth (layer / number of blocks; 0 = embeddings, 1 = last block)")
        ax.set_title(name, fontsize=10)
        ax.set_xlim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    save_figure(fig, out_path, dpi)
