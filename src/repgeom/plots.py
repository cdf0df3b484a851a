"""Figures: a t-SNE map per model and bar charts of the scores across models.

matplotlib runs headless (Agg). Every figure is written atomically; the
t-SNE's parameters and the embedding's provenance go into the PNG's metadata.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .artifacts import atomic_path

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def tsne_perplexity(n: int, perplexity: float = 30, small: float = 10, small_below: int = 50) -> float:
    """The paper's rule (30, or 10 below 50 points), kept below n as sklearn requires."""
    p = small if n < small_below else perplexity
    return float(min(p, n - 1))


def tsne(X: np.ndarray, perplexity: float, max_iter: int, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(
        n_components=2, perplexity=perplexity, max_iter=max_iter, random_state=seed, init="pca", learning_rate="auto"
    ).fit_transform(np.asarray(X, dtype=np.float64))


def family_colors(families: list[str]) -> dict[str, tuple]:
    plt = _plt()
    cmap = plt.get_cmap("tab10" if len(families) <= 10 else "tab20")
    return {f: cmap(i % cmap.N) for i, f in enumerate(families)}


def _tsne_ax(ax, X, labels, *, title, perplexity, small_perplexity, small_below, max_iter, seed):
    labels = np.asarray(labels).astype(str)
    fams = list(dict.fromkeys(labels))  # dataset order
    perp = tsne_perplexity(len(labels), perplexity, small_perplexity, small_below)
    Y = tsne(X, perp, max_iter, seed)
    colors = family_colors(fams)
    for f in fams:
        m = labels == f
        ax.scatter(Y[m, 0], Y[m, 1], s=36, color=colors[f], label=f, edgecolor="white", linewidth=0.5)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(
        0.99,
        0.01,
        f"t-SNE, perplexity {perp:g}, {max_iter} iterations, seed {seed}",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=6,
        color="0.4",
    )
    return perp


def plot_tsne(
    X: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    out_path: str | os.PathLike,
    *,
    title: str,
    perplexity: float = 30,
    small_perplexity: float = 10,
    small_below: int = 50,
    max_iter: int = 1000,
    seed: int = 0,
    dpi: int = 150,
    subtitle: str = "",
) -> dict:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5), constrained_layout=True)
    perp = _tsne_ax(
        ax,
        X,
        labels,
        title=title + (f"\n{subtitle}" if subtitle else ""),
        perplexity=perplexity,
        small_perplexity=small_perplexity,
        small_below=small_below,
        max_iter=max_iter,
        seed=seed,
    )
    ax.legend(title="family", fontsize=8, title_fontsize=8, loc="best", frameon=False)
    _save(fig, out_path, dpi)
    return {"perplexity": perp, "max_iter": max_iter, "seed": seed}


def plot_tsne_panels(
    panels: Sequence[tuple[np.ndarray, Sequence[str] | np.ndarray, str]],
    out_path: str | os.PathLike,
    *,
    title: str,
    perplexity: float = 30,
    small_perplexity: float = 10,
    small_below: int = 50,
    max_iter: int = 1000,
    seed: int = 0,
    dpi: int = 150,
) -> None:
    """Several t-SNE maps side by side; ``panels`` = [(X, labels, panel title), ...]."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5), constrained_layout=True, squeeze=False)
    for ax, (X, labels, sub) in zip(axes[0], panels):
        _tsne_ax(
            ax,
            X,
            labels,
            title=sub,
            perplexity=perplexity,
            small_perplexity=small_perplexity,
            small_below=small_below,
            max_iter=max_iter,
            seed=seed,
        )
    axes[0][-1].legend(title="family", fontsize=8, title_fontsize=8, loc="best", frameon=False)
    fig.suptitle(title, fontsize=11)
    _save(fig, out_path, dpi)


def plot_layer_curves(df: pd.DataFrame, out_path: str | os.PathLike, *, dpi: int = 150, title: str = "") -> None:
    """Silhouette and DBI (true labels, with CI bands) against depth normalised to 0-1, one line per model."""
    plt = _plt()
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
    _save(fig, out_path, dpi)


def _save(fig, out_path, dpi):
    plt = _plt()
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=Path(out_path).suffix.lstrip(".") or "png")
    plt.close(fig)


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
    plt = _plt()
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
    _save(fig, out_path, dpi)


# ------------------------------------------------------------------ the STS study
def plot_sts(figure: str, results: list[dict], ae_tables: list[str], path: str | os.PathLike, dpi: int = 150) -> None:
    """One of the STS figures: ``layer_correlation``, ``ae_loss`` or ``scatter`` (see the report captions)."""
    fn = {"layer_correlation": _sts_layer_correlation, "ae_loss": _sts_ae_loss, "scatter": _sts_scatter}
    if figure not in fn:
        raise ValueError(f"unknown STS figure {figure!r} (known: {', '.join(fn)})")
    plt = _plt()
    fig = fn[figure](plt, results, ae_tables)
    fig.tight_layout()
    _save(fig, path, dpi)


def _finish(fig, ax, xlabel: str, ylabel: str, title: str):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def _sts_layer_correlation(plt, results, _ae):
    curves = [r for r in results if r["spec"]["head"] == "best_layer"]
    if not curves:
        raise ValueError("no best_layer variant: the layer correlation curve needs one")
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in curves:
        xs = [c["layer"] for c in r["curve"]]
        for split, ls in (("dev", "-"), ("test", ":")):
            ax.plot(
                xs,
                [c[f"{split}_pearson"] for c in r["curve"]],
                ls,
                marker="o" if split == "dev" else None,
                ms=3,
                label=f"{r['model']} / {r['position']} ({split})",
            )
        best = r["runs"][0]["layer"]
        ax.axvline(best, color="0.7", lw=0.8)
    return _finish(
        fig,
        ax,
        "layer (residual stream after block L)",
        "Pearson ×100, cosine vs human score",
        "STS-B: raw per-layer cosine similarity (best dev layer marked)",
    )


def _sts_ae_loss(plt, _results, ae_tables):
    import pandas as pd

    if not ae_tables:
        raise ValueError("no autoencoder curves to plot")
    df = pd.concat([pd.read_csv(p, sep="\t") for p in ae_tables], ignore_index=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for (model, pos, loss), g in df.groupby(["model", "position", "loss"], sort=False):
        m = g.groupby("layer")["heldout_mse"].agg(["mean", "std"]).reset_index()
        ax.errorbar(
            m["layer"],
            m["mean"],
            yerr=m["std"].fillna(0),
            marker="o",
            ms=3,
            capsize=2,
            label=f"{model} / {pos} / {loss}",
        )
    widths = df.drop_duplicates("layer").sort_values("layer")
    change = widths[widths["width"] != widths["width"].iloc[0]]
    if len(change):
        ax.axvline(change["layer"].iloc[0] - 0.5, color="0.7", lw=0.8, ls="--")
    return _finish(
        fig,
        ax,
        "layer",
        "held-out reconstruction MSE (standardised)",
        "Layerwise autoencoders on GenericsKB (bottleneck widens at the dashed line)",
    )


def _sts_scatter(plt, results, _ae):
    from .metrics import best_result

    r = best_result(results)
    pred = np.mean([run["test_pred"] for run in r["runs"]], axis=0) * 5
    gold = np.asarray(r["test_gold"]) * 5
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(gold, pred, s=6, alpha=0.4, edgecolor="none")
    ax.plot([0, 5], [0, 5], color="0.5", lw=0.8)
    s = r["summary"]
    ax.set_xlabel("human score (0–5)")
    ax.set_ylabel("prediction (0–5)")
    ax.set_title(
        f"{r['model']} / {r['position']} / {r['variant']} (best on dev)\n"
        f"test Pearson {s['test_pearson']:.2f}, Spearman {s['test_spearman']:.2f}",
        fontsize=9,
    )
    ax.set_xlim(-0.2, 5.2)
    ax.grid(alpha=0.3)
    return fig


# ------------------------------------------------------------------ the merging study
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
    plt = _plt()
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
    _save(fig, out_path, dpi)
