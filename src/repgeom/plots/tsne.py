"""t-SNE maps of one embedding matrix or of several side by side (the paper's perplexity rule)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

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
    plt = pyplot()
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
    save_figure(fig, out_path, dpi)
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
    plt = pyplot()
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
    save_figure(fig, out_path, dpi)
