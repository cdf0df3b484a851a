"""Figures of the similarity stage: a layer × layer CKA heatmap per model pair (depth normalised, with the
best-aligned layer of the second model traced for each layer of the first), the model × model matrix at the final
representations, and how far each merged variant sits from the base and the fine-tuned model."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .figure import pyplot, save_figure


def _edges(depths: np.ndarray) -> np.ndarray:
    """Cell edges around sorted depths (midpoints; the outer cells as wide as their neighbour)."""
    d = np.asarray(depths, dtype=float)
    if len(d) == 1:
        return np.array([d[0] - 0.5, d[0] + 0.5])
    mid = (d[1:] + d[:-1]) / 2
    return np.concatenate([[d[0] - (mid[0] - d[0])], mid, [d[-1] + (d[-1] - mid[-1])]])


def plot_pair_heatmap(record: dict, out_path: str | os.PathLike, *, measure: str = "cka", dpi: int = 150) -> None:
    """One panel per position the two models share: ``measure`` over relative depths, and for each layer of model A
    the best-aligned layer of model B (white dots; not for a model with itself). A model without layers (an
    embedding model) gets curves over the other model's depth instead."""
    plt = pyplot()
    M = np.asarray(record["measures"][measure], dtype=float)
    ra, rb = record["reps_a"], record["reps_b"]
    positions = [
        p for p in ("last", "mean") if any(r["position"] == p for r in ra) and any(r["position"] == p for r in rb)
    ]
    if not positions:
        _plot_pair_curves(plt, record, M, measure, out_path, dpi)
        return
    same = record["model_a"] == record["model_b"]
    fig, axes = plt.subplots(1, len(positions), figsize=(5.2 * len(positions), 4.4), squeeze=False)
    mesh = None
    for ax, pos in zip(axes[0], positions):
        ia = [i for i, r in enumerate(ra) if r["position"] == pos]
        ib = [j for j, r in enumerate(rb) if r["position"] == pos]
        da = np.array([ra[i]["depth"] for i in ia])
        db = np.array([rb[j]["depth"] for j in ib])
        sub = M[np.ix_(ia, ib)]
        mesh = ax.pcolormesh(_edges(db), _edges(da), sub, cmap="viridis", vmin=0, vmax=1, shading="flat")
        if not same:  # a model with itself: each layer's best is itself
            best = np.nanargmax(np.where(np.isfinite(sub), sub, -np.inf), axis=1)
            ax.plot(db[best], da, "o-", color="white", ms=3, lw=0.8, label=f"best layer of {record['model_b']}")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xlabel(f"{record['model_b']} relative depth")
        ax.set_ylabel(f"{record['model_a']} relative depth")
        ax.set_title(f"{measure}, {pos} token", fontsize=10)
    fig.colorbar(mesh, ax=axes[0].tolist(), shrink=0.85, label=measure)
    fig.suptitle(f"{record['model_a']} × {record['model_b']} ({record['n_texts']} texts)", fontsize=11)
    save_figure(fig, out_path, dpi)


def _plot_pair_curves(plt, record: dict, M: np.ndarray, measure: str, out_path, dpi: int) -> None:
    """A model without layers (its embedding only) against every representation of the other: a curve per position
    over depth, the other's own embedding as a dashed line."""
    flip = not any(r["layer"] is not None for r in record["reps_b"])
    if flip:
        reps, other, model, M = record["reps_a"], record["model_b"], record["model_a"], M.T
    else:
        reps, other, model = record["reps_b"], record["model_a"], record["model_b"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for k, pos in enumerate(("last", "mean")):
        idx = [j for j, r in enumerate(reps) if r["position"] == pos]
        if idx:
            ax.plot(
                [reps[j]["depth"] for j in idx], M[0, idx], "o-", ms=3, color=f"C{k}", label=f"{model}, {pos} token"
            )
    for j, r in enumerate(reps):
        if r["layer"] is None:
            ax.axhline(M[0, j], color="grey", ls="--", lw=1, label=f"{model} embedding")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"{model} relative depth")
    ax.set_ylabel(f"{measure} with the {other} embedding")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{other} × {model} ({record['n_texts']} texts)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out_path, dpi)


def plot_model_matrix(models: pd.DataFrame, order: list[str], out_path: str | os.PathLike, *, dpi: int = 150) -> None:
    """Symmetric model × model CKA at the final representations, each cell annotated with its interval."""
    plt = pyplot()
    n = len(order)
    M = np.eye(n)
    txt = [["1" if i == j else "" for j in range(n)] for i in range(n)]
    pos = {m: i for i, m in enumerate(order)}
    for r in models.itertuples():
        i, j = pos[r.model_a], pos[r.model_b]
        M[i, j] = M[j, i] = r.cka
        cell = f"{r.cka:.2f}\n[{r.ci_low:.2f}, {r.ci_high:.2f}]" if np.isfinite(r.ci_low) else f"{r.cka:.2f}"
        txt[i][j] = txt[j][i] = cell + ("\n(wide)" if r.too_wide else "")
    fig, ax = plt.subplots(figsize=(1.6 * n + 2.5, 1.3 * n + 1.5))
    im = ax.imshow(M, cmap="viridis", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, txt[i][j], ha="center", va="center", fontsize=7, color="white" if M[i, j] < 0.6 else "black")
    ax.set_xticks(range(n), order, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n), order, fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8, label="linear CKA (all texts) [interval on n texts]")
    ax.set_title("Models at their final representations", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out_path, dpi)


def plot_merging_similarity(summary: pd.DataFrame, model: str, out_path: str | os.PathLike, *, dpi: int = 150) -> None:
    """CKA to the base model and to the fine-tuned model against t, one line per interpolation method; the other
    variants (soup, task-vector merges) as points at the right."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    others = summary[summary.t.isna() & (summary.variant != "final")]
    n_methods = len(summary.method.unique())
    for ax, ref in zip(axes, ("base", "final")):
        s = summary[summary.reference == ref]
        fb = summary[(summary.variant == "final") & (summary.reference == "base")]
        far = float(fb.cka.iloc[0]) if len(fb) else float("nan")  # CKA of the base and the fine-tuned model
        ends = pd.DataFrame({"t": [0.0, 1.0], "cka": [1.0, far] if ref == "base" else [far, 1.0]})
        for method, g in s[s.t.notna()].groupby("method"):
            line = pd.concat([ends.iloc[:1], g[["t", "cka"]], ends.iloc[1:]]).sort_values("t")
            ax.plot(line.t, line.cka, "-", lw=1, color=f"C{sorted(s.method.unique()).index(method)}", alpha=0.6)
            g = g.sort_values("t")
            err = [(g.cka - g.ci_low).clip(lower=0), (g.ci_high - g.cka).clip(lower=0)]  # seed means of each
            c = f"C{sorted(s.method.unique()).index(method)}"
            ax.errorbar(g.t, g.cka, yerr=err, marker="o", capsize=3, label=method, color=c, linestyle="none")
        o = others[others.reference == ref]
        for k, r in enumerate(o.itertuples()):
            err = [[max(0.0, r.cka - r.ci_low)], [max(0.0, r.ci_high - r.cka)]]
            ax.errorbar([1.1 + 0.05 * k], [r.cka], yerr=err, marker="s", color=f"C{n_methods + k}",
                        capsize=3, linestyle="none", label=r.variant)  # fmt: skip
        if ref == "base":
            ax.axhline(1.0, color="grey", lw=0.6)
        ax.set_xlabel("t (0: base, 1: fine-tuned); others at the right")
        ax.set_title(f"CKA to the {'base model' if ref == 'base' else 'fine-tuned model (final adapter merged)'}",
                     fontsize=10)  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("linear CKA, mean over seeds [mean interval]")
    fig.suptitle(f"{model}: how far each merged variant moves the representation", fontsize=11)
    fig.tight_layout()
    save_figure(fig, out_path, dpi)


def plot_merging_layers(summary: pd.DataFrame, model: str, out_path: str | os.PathLike, *, dpi: int = 150) -> None:
    """Per layer, each variant's CKA to the same layer of the base model (left) and of the fine-tuned model (right):
    one colour per method, lighter for smaller t; the variants without a t (soup, task-vector merges) dashed."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    methods = sorted(summary.method.unique())
    ts = summary.t.dropna()
    t_max = float(ts.max()) if len(ts) else 1.0
    for ax, ref in zip(axes, ("base", "final")):
        s = summary[summary.reference == ref]
        seen = set()
        for _, g in s.groupby("variant", sort=False):
            g = g.sort_values("layer")
            method, t = g.method.iloc[0], g.t.iloc[0]
            c = f"C{methods.index(method)}"
            solid = pd.notna(t)
            alpha = 0.35 + 0.65 * (float(t) / t_max if solid and t_max else 1.0)
            label = method if method not in seen else None
            seen.add(method)
            ax.plot(g.layer, g.cka, "-" if solid else "--", marker="o", ms=3, color=c, alpha=alpha, lw=1.2,
                    label=label)  # fmt: skip
        ax.set_xlabel("layer (0: input embeddings)")
        ax.set_title(f"CKA to the same layer of the {'base model' if ref == 'base' else 'fine-tuned model'}",
                     fontsize=10)  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="method (lighter: smaller t)", title_fontsize=7)
    axes[0].set_ylabel("linear CKA, mean over seeds")
    fig.suptitle(f"{model}: where in the network each merged variant moves", fontsize=11)
    fig.tight_layout()
    save_figure(fig, out_path, dpi)
