"""The STS study's figures: layer correlation curves, autoencoder losses, prediction scatter."""

from __future__ import annotations

import os

import numpy as np

from .figure import finish_axes, pyplot, save_figure


def plot_sts(figure: str, results: list[dict], ae_tables: list[str], path: str | os.PathLike, dpi: int = 150) -> None:
    """One of the STS figures: ``layer_correlation``, ``ae_loss`` or ``scatter`` (see the report captions)."""
    fn = {"layer_correlation": _sts_layer_correlation, "ae_loss": _sts_ae_loss, "scatter": _sts_scatter}
    if figure not in fn:
        raise ValueError(f"unknown STS figure {figure!r} (known: {', '.join(fn)})")
    plt = pyplot()
    fig = fn[figure](plt, results, ae_tables)
    fig.tight_layout()
    save_figure(fig, path, dpi)


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
                label=f"{_run_label(r)} ({split})",
            )
        best = r["runs"][0]["layer"]
        ax.axvline(best, color="0.7", lw=0.8)
    return finish_axes(
        fig,
        ax,
        "layer (residual stream after block L)",
        "Pearson ×100, cosine vs human score",
        "STS-B: raw per-layer cosine similarity (best dev layer marked)",
    )


def _run_label(r) -> str:
    """``model / template / pooling`` of a variant's result (``plain``: the sentence alone)."""
    return f"{r['model']} / {r.get('template', 'plain')} / {r['position']}"


def plot_zero_shot(results: list[dict], model: str, path: str | os.PathLike, dpi: int = 150) -> None:
    """Zero-shot per-layer curves of one model: Pearson and Spearman (two panels) of the cosine at each layer
    against the human score on test, a colour per template, a line style per pooling, thin for raw and thick for
    standardised latents; the layer chosen on dev marked (the dev curves are in the results and the table)."""
    curves = [r for r in results if r["spec"]["head"] == "best_layer" and r["model"] == model]
    if not curves:
        raise ValueError(f"no best_layer result of model {model!r}: the zero-shot figure needs one")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    templates = list(dict.fromkeys(r.get("template", "plain") for r in curves))
    for r in curves:
        t = r.get("template", "plain")
        std = bool(r["spec"].get("standardize"))
        style = {"color": colors[templates.index(t) % len(colors)], "ls": "-" if r["position"] == "last" else "--",
                 "lw": 2.0 if std else 1.0, "alpha": 1.0 if std else 0.7}  # fmt: skip
        xs = [p["layer"] for p in r["curve"]]
        best = r["runs"][0]["layer"]
        label = f"{t} / {r['position']}" + (" / std" if std else "")
        for ax, metric in zip(axes, ("pearson", "spearman")):
            ax.plot(xs, [p[f"test_{metric}"] for p in r["curve"]], label=label, **style)
            y = next(p[f"test_{metric}"] for p in r["curve"] if p["layer"] == best)
            ax.plot([best], [y], "o", color=style["color"], ms=6, mec="black", mew=0.6)
    for ax, metric in zip(axes, ("Pearson", "Spearman")):
        finish_axes(fig, ax, "layer (residual stream after block L)", f"test {metric} ×100, cosine vs score", metric)
    axes[1].get_legend().remove()
    fig.suptitle(
        f"STS-B zero-shot, {model}: colour = template, solid = last token, dashed = mean, thick = standardised; "
        "● layer chosen on dev",
        fontsize=10,
    )
    fig.tight_layout()
    save_figure(fig, path, dpi)


def _sts_ae_loss(plt, _results, ae_tables):
    import pandas as pd

    if not ae_tables:
        raise ValueError("no autoencoder curves to plot")
    df = pd.concat([pd.read_csv(p, sep="\t") for p in ae_tables], ignore_index=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    if "template" not in df:
        df["template"] = "plain"
    for (model, tpl, pos, loss), g in df.groupby(["model", "template", "position", "loss"], sort=False):
        m = g.groupby("layer")["heldout_mse"].agg(["mean", "std"]).reset_index()
        ax.errorbar(
            m["layer"],
            m["mean"],
            yerr=m["std"].fillna(0),
            marker="o",
            ms=3,
            capsize=2,
            label=f"{model} / {tpl} / {pos} / {loss}",
        )
    widths = df.drop_duplicates("layer").sort_values("layer")
    change = widths[widths["width"] != widths["width"].iloc[0]]
    if len(change):
        ax.axvline(change["layer"].iloc[0] - 0.5, color="0.7", lw=0.8, ls="--")
    return finish_axes(
        fig,
        ax,
        "layer",
        "held-out reconstruction MSE (standardised)",
        "Layerwise autoencoders on GenericsKB (bottleneck widens at the dashed line)",
    )


def _sts_scatter(plt, results, _ae):
    from ..metrics import best_result

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
        f"{_run_label(r)} / {r['variant']} (best on dev)\n"
        f"test Pearson {s['test_pearson']:.2f}, Spearman {s['test_spearman']:.2f}",
        fontsize=9,
    )
    ax.set_xlim(-0.2, 5.2)
    ax.grid(alpha=0.3)
    return fig
