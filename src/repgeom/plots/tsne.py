"""t-SNE maps of one embedding matrix or of several side by side (the paper's perplexity rule)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..params import PlotParams
from .figure import family_colors, pyplot, save_figure


def tsne_perplexity(n: int, perplexity: float = 30, small: float = 10, small_below: int = 50) -> float:
    """The paper's rule (30, or 10 below 50 points), kept below n as sklearn requires."""
    p = small if n < small_below else perplexity
    return float(min(p, n - 1))


def tsne(X: np.ndarray, perplexity: float, max_iter: int, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(
        n_components=2, perplexity=perplexity, max_iter=max_iter, random_state=seed, init="pca", learning_rate="auto"
    ).fit_transform(np.asarray(X, dtype=np.float64))


def tsne_map(ax: Any, X: np.ndarray, labels: Sequence[str] | np.ndarray, title: str, params: PlotParams) -> float:
    """One t-SNE map on ``ax``, coloured by family, its settings written in a corner; returns the perplexity
    used (the paper's rule, :func:`tsne_perplexity`)."""
    labels = np.asarray(labels).astype(str)
    fams = list(dict.fromkeys(labels))  # dataset order
    perp = tsne_perplexity(len(labels), params.tsne_perplexity, params.tsne_small_perplexity, params.tsne_small_below)
    Y = tsne(X, perp, params.tsne_max_iter, params.seed)
    colors = family_colors(fams)
    for f in fams:
        m = labels == f
        ax.scatter(Y[m, 0], Y[m, 1], s=36, color=colors[f], label=f, edgecolor="white", linewidth=0.5)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    note = f"t-SNE, perplexity {perp:g}, {params.tsne_max_iter} iterations, seed {params.seed}"
    ax.text(0.99, 0.01, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=6, color="0.4")
    return perp


def plot_tsne(
    X: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    out_path: str | os.PathLike,
    *,
    title: str,
    params: PlotParams,
    subtitle: str = "",
) -> dict:
    """One t-SNE map of an embedding matrix; returns the t-SNE settings used."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5), constrained_layout=True)
    perp = tsne_map(ax, X, labels, title + (f"\n{subtitle}" if subtitle else ""), params)
    ax.legend(title="family", fontsize=8, title_fontsize=8, loc="best", frameon=False)
    save_figure(fig, out_path, params.dpi)
    return {"perplexity": perp, "max_iter": params.tsne_max_iter, "seed": params.seed}


def plot_tsne_panels(
    panels: Sequence[tuple[np.ndarray, Sequence[str] | np.ndarray, str]],
    out_path: str | os.PathLike,
    *,
    title: str,
    params: PlotParams,
) -> None:
    """Several t-SNE maps side by side; ``panels`` = [(X, labels, panel title), ...]."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5), constrained_layout=True, squeeze=False)
    for ax, (X, labels, sub) in zip(axes[0], panels):
        tsne_map(ax, X, labels, sub, params)
    axes[0][-1].legend(title="family", fontsize=8, title_fontsize=8, loc="best", frameon=False)
    fig.suptitle(title, fontsize=11)
    save_figure(fig, out_path, params.dpi)
