"""The study's tables: the progression (TSV and Markdown, beside the paper's numbers) and the worst test errors
of the variant best on dev."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..artifacts import ArtifactError, atomic_path, read_json, write_text
from ..corpora import stsb_pairs
from ..metrics import best_result
from .errors import STSError

if TYPE_CHECKING:
    import pandas as pd

#: the paper's gpt2-medium results on the STS-B test split (Pearson, Spearman, ×100), by the variant
#: names of the default config
PAPER_GPT2_MEDIUM = {
    "mlp": (39.2, 42.06),
    "siamese": (71.63, 69.72),
    "ae_mse": (75.36, 73.21),
    "ae_logvar": (76.86, 75.03),
}


def progression_frame(
    results: Sequence[Mapping[str, Any]], order: Sequence[str] | None = None, templates: Sequence[str] | None = None
) -> pd.DataFrame:
    """The progression table: one row per (model, template, position, variant), variants in ``order`` and
    templates in ``templates`` order (the config's)."""
    import pandas as pd

    rows = []
    for r in results:
        s = r["summary"]
        paper = PAPER_GPT2_MEDIUM.get(r["variant"], (float("nan"), float("nan")))
        best = r["runs"][0].get("layer") if r["spec"]["head"] == "best_layer" else None
        rows.append(
            {
                "model": r["model"],
                "template": r.get("template", "plain"),
                "pooling": r["position"],
                "variant": r["variant"],
                "n_seeds": s["n_seeds"] if r["spec"]["head"] != "best_layer" else 0,
                "test_pearson": s["test_pearson"],
                "test_pearson_std": s["test_pearson_std"],
                "test_spearman": s["test_spearman"],
                "test_spearman_std": s["test_spearman_std"],
                "dev_pearson": s["dev_pearson"],
                "dev_spearman": s["dev_spearman"],
                "layer": best,
                "best_epochs": " ".join(str(e) for e in s.get("best_epochs", [])),
                "grid_chosen": " ".join(
                    f"{k}={v}" for g in r.get("grid", []) if g.get("chosen") for k, v in g["point"].items()
                ),
                "epochs_cap": s.get("epochs_cap"),
                "best_at_cap": bool(s.get("best_at_cap", False)),
                "paper_gpt2_medium_pearson": paper[0],
                "paper_gpt2_medium_spearman": paper[1],
            }
        )
    df = pd.DataFrame(rows)
    if order or templates:
        df["_o"] = df["variant"].map({v: i for i, v in enumerate(order or [])}).fillna(-1)
        df["_t"] = df["template"].map({t: i for i, t in enumerate(templates or [])}).fillna(-1)
        df = df.sort_values(["model", "_t", "pooling", "_o"], kind="stable").drop(columns=["_o", "_t"])
    return df.reset_index(drop=True)


def zero_shot_frame(results: Sequence[Mapping[str, Any]], templates: Sequence[str] | None = None) -> pd.DataFrame:
    """Zero-shot: per model, template, pooling and cosine (raw, or of standardised latents) of every ``best_layer``
    result, the layer chosen on dev (Pearson) and its dev and test Pearson and Spearman, and the best test value
    over layers beside it (hindsight, for reference only)."""
    import pandas as pd

    rows = []
    for r in results:
        if r["spec"]["head"] != "best_layer":
            continue
        run, curve = r["runs"][0], r["curve"]
        rows.append(
            {
                "model": r["model"],
                "template": r.get("template", "plain"),
                "pooling": r["position"],
                "cosine": "standardised" if r["spec"].get("standardize") else "raw",
                "variant": r["variant"],
                "layer": run["layer"],
                "n_layers": len(curve),
                **{k: run[k] for k in ("dev_pearson", "dev_spearman", "test_pearson", "test_spearman")},
                "test_pearson_best_layer": max(c["test_pearson"] for c in curve),
            }
        )
    df = pd.DataFrame(rows)
    if len(df) and templates:
        df["_t"] = df["template"].map({t: i for i, t in enumerate(templates)}).fillna(-1)
        df = df.sort_values(["model", "_t", "pooling", "cosine"], kind="stable").drop(columns="_t")
    return df.reset_index(drop=True)


def zero_shot_markdown(df: pd.DataFrame) -> str:
    """:func:`zero_shot_frame` in Markdown."""
    lines = [
        "| model | template | pooling | cosine | layer (of) | dev Pearson | dev Spearman | test Pearson | "
        "test Spearman | test Pearson at the best test layer (hindsight) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in df.iterrows():
        lines.append(
            f"| {r['model']} | {r['template']} | {r['pooling']} | {r['cosine']} | {r['layer']} ({r['n_layers']}) | "
            f"{r['dev_pearson']:.2f} | {r['dev_spearman']:.2f} | {r['test_pearson']:.2f} | "
            f"{r['test_spearman']:.2f} | {r['test_pearson_best_layer']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _pm(m: float, s: float, seeds: int) -> str:
    if not np.isfinite(m):
        return "n/a"
    return f"{m:.2f} ± {s:.2f}" if seeds > 1 else f"{m:.2f}"


def progression_markdown(df: pd.DataFrame) -> str:
    """The progression table in Markdown: mean ± std over seeds, the chosen layer of ``best_layer`` variants."""
    lines = [
        "| model | template | pooling | variant | test Pearson | test Spearman | dev Pearson | dev Spearman | seeds "
        "| best epochs (cap) | paper gpt2-medium (P / S) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in df.iterrows():
        paper = (
            "—"
            if not np.isfinite(r["paper_gpt2_medium_pearson"])
            else f"{r['paper_gpt2_medium_pearson']:.2f} / {r['paper_gpt2_medium_spearman']:.2f}"
        )
        var = r["variant"] + (
            f" (layer {int(r['layer'])})" if r["layer"] is not None and np.isfinite(r["layer"]) else ""
        )
        if isinstance(r.get("grid_chosen"), str) and r["grid_chosen"]:
            var += f" [{r['grid_chosen']}, chosen on dev]"
        lines.append(
            f"| {r['model']} | {r['template']} | {r['pooling']} | {var} | "
            f"{_pm(r['test_pearson'], r['test_pearson_std'], r['n_seeds'])} | "
            f"{_pm(r['test_spearman'], r['test_spearman_std'], r['n_seeds'])} | {r['dev_pearson']:.2f} | "
            f"{r['dev_spearman']:.2f} | "
            f"{r['n_seeds'] or '—'} | {_epochs(r)} | {paper} |"
        )
    return "\n".join(lines) + "\n"


def _epochs(r) -> str:
    """``3 5 4 (15)``; flagged where a run's best dev epoch was the last allowed (perhaps not converged)."""
    if not isinstance(r.get("best_epochs"), str) or not r["best_epochs"]:
        return "—"
    flag = " ⚠ at cap" if r.get("best_at_cap") else ""
    return f"{r['best_epochs']} ({int(r['epochs_cap'])}){flag}"


def worst_errors(result: Mapping[str, Any], corpus_path: str | os.PathLike, k: int = 20) -> pd.DataFrame:
    """The test pairs with the largest |prediction − truth| of ``result`` (mean prediction over seeds)."""
    import pandas as pd

    pairs = stsb_pairs(corpus_path, ("test",))["test"]
    if pairs["id"] != result["test_ids"]:
        raise STSError(
            f"{corpus_path}: the test split differs from the one the {result['variant']} result was scored on"
        )
    pred = np.mean([r["test_pred"] for r in result["runs"]], axis=0)
    err = np.abs(pred - pairs["y"])
    top = np.argsort(-err, kind="stable")[:k]
    return pd.DataFrame(
        {
            "id": [pairs["id"][i] for i in top],
            "sentence1": [pairs["s1"][i] for i in top],
            "sentence2": [pairs["s2"][i] for i in top],
            "gold": pairs["y"][top] * 5,
            "predicted": pred[top] * 5,
            "abs_error": err[top] * 5,
        }
    )


def worst_errors_markdown(df: pd.DataFrame, result: Mapping[str, Any]) -> str:
    """:func:`worst_errors` in Markdown, scores on the 0–5 scale."""
    lines = [
        f"Worst test errors of **{result['model']} / {result.get('template', 'plain')} / {result['position']} / "
        f"{result['variant']}** (chosen on "
        "dev; scores on the 0–5 scale, prediction averaged over seeds)",
        "",
        "| id | sentence 1 | sentence 2 | gold | predicted | |error| |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in df.iterrows():
        s1, s2 = (str(x).replace("|", "\\|") for x in (r["sentence1"], r["sentence2"]))
        lines.append(f"| {r['id']} | {s1} | {s2} | {r['gold']:.2f} | {r['predicted']:.2f} | {r['abs_error']:.2f} |")
    return "\n".join(lines) + "\n"


def write_tables(
    result_paths: Sequence[str | os.PathLike],
    corpus_path: str | os.PathLike,
    *,
    tsv: str | os.PathLike,
    md: str | os.PathLike,
    worst_tsv: str | os.PathLike,
    worst_md: str | os.PathLike,
    order: Sequence[str] | None = None,
    k: int = 20,
    templates: Sequence[str] | None = None,
    zero_tsv: str | os.PathLike | None = None,
    zero_md: str | os.PathLike | None = None,
    transfer: Sequence[str | os.PathLike] = (),
    transfer_tsv: str | os.PathLike | None = None,
    transfer_md: str | os.PathLike | None = None,
) -> None:
    """Read the variants' results and write the progression table, the best variant's worst errors and (where
    asked) the zero-shot table of the ``best_layer`` variants."""
    results = [read_json(p) for p in result_paths]
    for p, r in zip(result_paths, results):
        if r.get("kind") != "sts_variant":
            raise ArtifactError(f"{p}: not an STS variant result")
    df = progression_frame(results, order, templates)
    with atomic_path(tsv) as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    write_text(md, progression_markdown(df))
    if zero_tsv is not None and zero_md is not None:
        zdf = zero_shot_frame(results, templates)
        with atomic_path(zero_tsv) as tmp:
            zdf.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
        write_text(zero_md, zero_shot_markdown(zdf))
    if transfer_tsv is not None and transfer_md is not None:
        from .transfer import transfer_frame, transfer_markdown

        tres = [read_json(p) for p in transfer]
        for p, r in zip(transfer, tres):
            if r.get("kind") != "sts_transfer":
                raise ArtifactError(f"{p}: not an STS transfer result")
        tdf = transfer_frame(tres, results, order, templates)
        with atomic_path(transfer_tsv) as tmp:
            tdf.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
        write_text(
            transfer_md,
            transfer_markdown(tdf) if len(tdf) else "No transfer sets configured (sts.transfer).\n",
        )
    best = best_result(results)
    wdf = worst_errors(best, corpus_path, k)
    with atomic_path(worst_tsv) as tmp:
        wdf.to_csv(tmp, sep="\t", index=False, float_format="%.3f")
    write_text(worst_md, worst_errors_markdown(wdf, best))
