"""Shared figure plumbing: headless matplotlib, family colours, atomic saving."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..artifacts import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, out_path: str | os.PathLike, dpi: int) -> None:
    """Write ``fig`` atomically (its format from the suffix) and close it."""
    plt = pyplot()
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=Path(out_path).suffix.lstrip(".") or "png")
    plt.close(fig)


def family_colors(families: list[str]) -> dict[str, tuple]:
    """One colour per family, in the given order."""
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if len(families) <= 10 else "tab20")
    return {f: cmap(i % cmap.N) for i, f in enumerate(families)}


def finish_axes(fig: Any, ax: Any, xlabel: str, ylabel: str, title: str) -> Any:
    """Labels, a small title, legend and grid; returns ``fig``."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig
