"""The merging study's figure: task gain against general-ability loss per variant."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .figure import pyplot, save_figure

if TYPE_CHECKING:
    import pandas as pd


#: marker and colour per merge method in the trade-off figure
_MERGE_STYLE = {
    "base": ("o", "black"),
    "lora_merge": ("s", "#cc3311"),
    "soup": ("D", "#ee7733"),
    "linear": ("o", "#0077bb"),
    "slerp": ("^", "#009988"),
    "tv_slerp": ("v", "#aa3377"),
    "tv_linear": ("<", "#bbbbbb"),
}


def plot_merging_tradeoff(summary: pd.DataFrame, out_path: str | os.PathLike, *, model: str, dpi: int = 150) -> None:
    """Task gain against general-ability loss, one point per variant with seed error bars; the linear
    interpolation base → final drawn as the control line. Left: the evaluation set; right: the held-out split."""
    plt = pyplot()
    df = summary.copy()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True)
    for ax, (gain, title) in zip(
        axes,
        (
            ("task_gain", "evaluation set (the paper's windows)"),
            ("heldout_gain", "held-out windows of the training range"),
        ),
    ):
        line = df[df.method.isin(["base", "linear", "lora_merge"])].copy()
        line["tt"] = line.t.where(line.method == "linear", line.method.map({"base": 0.0, "lora_merge": 1.0}))
        line = line.sort_values("tt")
        ax.plot(
            line.sts_loss,
            line[gain],
            "-",
            color="#0077bb",
            alpha=0.5,
            linewidth=1.5,
            label="linear base → final (control)",
        )
        for method, g in df.groupby("method", sort=False):
            marker, color = _MERGE_STYLE.get(method, ("o", "0.5"))
            ax.errorbar(
                g.sts_loss,
                g[gain],
                xerr=g.sts_loss_std.fillna(0),
                yerr=g[f"{gain}_std"].fillna(0),
                fmt=marker,
                color=color,
                ecolor=color,
                alpha=0.9,
                capsize=2,
                markersize=6,
                label=method,
            )
            for _, r in g.iterrows():
                ax.annotate(r.variant, (r.sts_loss, r[gain]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.axhline(0, color="0.5", linewidth=0.6)
        ax.axvline(0, color="0.5", linewidth=0.6)
        ax.set_xlabel("general-ability loss: base STS-B Spearman − variant's (×100)")
        ax.set_ylabel("task gain: silhouette − base's")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{model}: task gain vs general-ability loss (mean ± std over seeds)", fontsize=11)
    save_figure(fig, out_path, dpi)
