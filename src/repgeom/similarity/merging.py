"""How far each merged variant moves the representation: its similarity to the base model and to the fine-tuned
one (the final adapter merged), on the merging study's evaluation set, per seed.

Reads the evaluation-set embeddings the merging study already wrote (``results/merging/{model}/{run}/embeddings.h5``,
:func:`repgeom.merging.eval_embeddings.load_eval_embeddings`): per variant the model's output embedding (with a
bootstrap interval and a permutation null) and each layer's token mean (:func:`layer_similarity`: a variant's layer
against the same layer of the base and of the fine-tuned model, point values).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..artifacts import ArtifactError
from ..params import SimilarityParams
from .measures import Features, cka_from, knn_sets, mutual_knn_from
from .pairs import knn_k
from .representations import subsample
from .uncertainty import cka_uncertainty, too_wide

#: the variant the others are measured against, besides the base model
FINE_TUNED = "final"


def _method_t(variant: str) -> tuple[str, float | None]:
    """``(method, t)`` of a variant name (``linear_0.5`` → ``("linear", 0.5)``; ``soup`` → ``("soup", None)``)."""
    m = re.fullmatch(r"([a-z_]+?)_([0-9.]+)", variant)
    return (m.group(1), float(m.group(2))) if m else (variant, None)


def _measures(X: np.ndarray, Y: np.ndarray, p: SimilarityParams) -> dict:
    fa, fb = Features.of(X), Features.of(Y)
    cka, deb = cka_from(fa, fb)
    out = {"cka": cka, "cka_debiased": deb}
    idx = subsample(X.shape[0], p.max_texts, p.seed)
    if "mutual_knn" in p.measures:
        k = knn_k(p, len(idx))
        out["mutual_knn"] = mutual_knn_from(knn_sets(X[idx], k), knn_sets(Y[idx], k))
    u = cka_uncertainty(X[idx], Y[idx], bootstrap=p.bootstrap, permutations=p.permutations, ci=p.ci, seed=p.seed)
    out.update(
        cka_sub=u["cka"], ci_low=u["ci_low"], ci_high=u["ci_high"], n_sub=u["n_texts"], null_q=u["null_q"],
        p_value=u["p_value"], too_wide=too_wide(u, p.wide_ci),
    )  # fmt: skip
    return out


def variant_similarity(
    base: Mapping[str, np.ndarray], seeds: Mapping[str, Mapping[str, np.ndarray]], params: SimilarityParams
) -> pd.DataFrame:
    """One row per seed × variant × reference (``base``, ``final``): CKA (all texts), debiased CKA, mutual kNN, and
    CKA's interval and permutation null on the subsample. ``base`` holds the base run's embeddings
    (``{"base": X}``), ``seeds`` each seed run's ``{variant: X}``."""
    if len(base) != 1:
        raise ArtifactError(f"the base run holds {len(base)} variants ({sorted(base)}), expected one")
    Xb = next(iter(base.values()))
    rows = []
    for run, variants in seeds.items():
        if FINE_TUNED not in variants:
            raise ArtifactError(f"{run}: no {FINE_TUNED!r} variant (the fine-tuned model) among {sorted(variants)}")
        for name, X in variants.items():
            if X.shape[0] != Xb.shape[0]:
                raise ArtifactError(f"{run}/{name}: {X.shape[0]} texts, the base run {Xb.shape[0]}")
            method, t = _method_t(name)
            for ref, Y in (("base", Xb), (FINE_TUNED, variants[FINE_TUNED])):
                rows.append({"run": run, "variant": name, "method": method, "t": t, "reference": ref,
                             "n_texts": X.shape[0], **_measures(X, Y, params)})  # fmt: skip
    return pd.DataFrame(rows)


def layer_similarity(
    base: Mapping[str, np.ndarray], seeds: Mapping[str, Mapping[str, np.ndarray]], params: SimilarityParams
) -> pd.DataFrame:
    """One row per seed × variant × reference × layer: linear CKA, debiased CKA and (when configured) mutual kNN
    of the variant's layer ``l`` token means against layer ``l`` of the base model and of the fine-tuned model.
    ``base``/``seeds`` as in :func:`variant_similarity`, each value ``(L + 1, N, d)`` (layer 0: the input
    embeddings). No intervals here: the output-embedding rows of :func:`variant_similarity` carry them."""
    if len(base) != 1:
        raise ArtifactError(f"the base run holds {len(base)} variants ({sorted(base)}), expected one")
    Lb = next(iter(base.values()))
    n_layers = Lb.shape[0] - 1
    idx = subsample(Lb.shape[1], params.max_texts, params.seed)
    k = knn_k(params, len(idx)) if "mutual_knn" in params.measures else None
    rows = []
    for run, variants in seeds.items():
        if FINE_TUNED not in variants:
            raise ArtifactError(f"{run}: no {FINE_TUNED!r} variant (the fine-tuned model) among {sorted(variants)}")
        for name, L in variants.items():
            if L.shape[:2] != Lb.shape[:2]:
                raise ArtifactError(
                    f"{run}/{name}: {L.shape[0]} layers × {L.shape[1]} texts, the base run {Lb.shape[0]} × {Lb.shape[1]}"
                )
            method, t = _method_t(name)
            for ref, R in (("base", Lb), (FINE_TUNED, variants[FINE_TUNED])):
                for layer in range(n_layers + 1):
                    cka, deb = cka_from(Features.of(L[layer]), Features.of(R[layer]))
                    row = {"run": run, "variant": name, "method": method, "t": t, "reference": ref,
                           "layer": layer, "depth": layer / max(n_layers, 1), "cka": cka, "cka_debiased": deb}  # fmt: skip
                    if k is not None:
                        row["mutual_knn"] = mutual_knn_from(knn_sets(L[layer][idx], k), knn_sets(R[layer][idx], k))
                    rows.append(row)
    return pd.DataFrame(rows)


def layer_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds of each variant's per-layer CKA to each reference."""
    g = df.groupby(["variant", "method", "t", "reference", "layer", "depth"], dropna=False, sort=False)
    return g.agg(cka=("cka", "mean"), cka_sd=("cka", "std"), cka_debiased=("cka_debiased", "mean"),
                 seeds=("run", "nunique")).reset_index()  # fmt: skip


def layer_markdown(s: pd.DataFrame) -> str:
    """Per reference, a variant × layer table of the mean CKA (appended to :func:`markdown`'s)."""
    lines = []
    for ref, title in (("base", "the base model"), (FINE_TUNED, "the fine-tuned model")):
        r = s[s.reference == ref]
        wide = r.pivot_table(index="variant", columns="layer", values="cka", sort=False)
        lines += [
            "",
            f"Per layer: linear CKA of each variant's layer (token means) to the same layer of {title} "
            "(layer 0: the input embeddings), mean over seeds.",
            "",
            "| variant | " + " | ".join(str(c) for c in wide.columns) + " |",
            "|---|" + "---|" * len(wide.columns),
        ]
        lines += [f"| {v} | " + " | ".join(f"{x:.3f}" for x in row) + " |" for v, row in wide.iterrows()]
    return "\n".join(lines) + "\n"


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds of each variant's CKA to each reference."""
    g = df.groupby(["variant", "method", "t", "reference"], dropna=False, sort=False)
    out = g.agg(cka=("cka", "mean"), cka_sd=("cka", "std"), cka_debiased=("cka_debiased", "mean"),
                cka_sub=("cka_sub", "mean"), n_sub=("n_sub", "first"), n_texts=("n_texts", "first"),
                ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"), null_q=("null_q", "mean"),
                too_wide=("too_wide", "any"), seeds=("run", "nunique"))  # fmt: skip
    return out.reset_index()


def markdown(model: str, s: pd.DataFrame, params: SimilarityParams) -> str:
    ci = int(round(params.ci * 100))
    lines = [
        f"# How far each merged variant of `{model}` moves its representation",
        "",
        "Linear CKA of each variant's evaluation-set embeddings to the base model's and to the fine-tuned model's "
        f"(the final adapter merged), mean over seeds (± sd); the {ci}% bootstrap interval and the permutation null "
        f"({ci}th percentile) averaged over seeds.",
        "",
        "| variant | CKA to base | CKA to fine-tuned | debiased to base | debiased to fine-tuned | null | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for v, grp in s.groupby("variant", sort=False):
        r = {ref: row for ref, row in zip(grp.reference, grp.itertuples())}
        b, f = r.get("base"), r.get(FINE_TUNED)

        def cell(x) -> str:
            if x is None:
                return "—"
            sd = f" ± {x.cka_sd:.3f}" if np.isfinite(x.cka_sd) else ""
            if x.n_sub < x.n_texts:  # the interval belongs to the subsample's value
                return f"{x.cka:.3f}{sd} (on {x.n_sub} texts: {x.cka_sub:.3f} [{x.ci_low:.3f}, {x.ci_high:.3f}])"
            return f"{x.cka:.3f}{sd} [{x.ci_low:.3f}, {x.ci_high:.3f}]"

        wide = any(x is not None and x.too_wide for x in (b, f))
        note = f"interval wider than {params.wide_ci}: too wide to mean anything" if wide else ""
        deb = [f"{x.cka_debiased:.3f}" if x is not None else "—" for x in (b, f)]
        lines.append(
            f"| {v} | {cell(b)} | {cell(f)} | {deb[0]} | {deb[1]} | {b.null_q if b is not None else float('nan'):.3f} | {note} |"
        )
    return "\n".join(lines) + "\n"


def load_runs(
    base_path: str | os.PathLike, seed_paths: Mapping[str, str | os.PathLike]
) -> tuple[tuple[dict, dict], tuple[dict, dict]]:
    """``((base, seeds), (base_layers, seed_layers))`` for :func:`variant_similarity` and :func:`layer_similarity`,
    each file read (and verified) once; every run must hold the base run's texts."""
    from ..merging.eval_embeddings import read_eval_file, require_layers

    base, base_layers, _, attrs = read_eval_file(base_path)
    expect = {"texts_sha256": attrs["texts_sha256"]}
    seeds, seed_layers = {}, {}
    for run, p in seed_paths.items():
        seeds[run], layers, _, _ = read_eval_file(p, expect)
        seed_layers[run] = require_layers(p, layers)
    return (base, seeds), (require_layers(base_path, base_layers), seed_layers)
