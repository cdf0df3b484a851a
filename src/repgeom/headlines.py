"""The report's front matter: one headline per study, read from the studies' own tables (nothing recomputed).

``numbers``  per dataset, the model whose embeddings separate the families best (true-label silhouette, its
             bootstrap interval) and the best Davies–Bouldin index
``layers``   per dataset and decoder, the layer where the families separate best (true-label silhouette)
``sts``      the variant best on STS-B dev with its test Pearson and Spearman (the FREEZE paper's 76.86 beside it),
             and the best zero-shot template (layer chosen on dev)
``merging``  per model, each claim's verdict
``similarity`` per text set, the closest and the farthest pair of distinct models at their outputs (CKA, its interval,
             the permutation null); per merged model, how far SLERP and linear interpolation sit from the base
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .artifacts import write_text

#: the FREEZE paper's best STS-B test Pearson (gpt2-medium, autoencoders pretrained with the log-variance loss)
PAPER_BEST_PEARSON = 76.86


def _read(path):
    """A study's TSV; an empty table (e.g. no ``best_layer`` variant, so no zero-shot rows) as an empty frame."""
    import pandas as pd

    try:
        return pd.read_csv(path, sep="\t")
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def numbers_lines(summaries: Mapping[str, str | os.PathLike]) -> list[str]:
    out = []
    for ds, path in summaries.items():
        df = _read(path)
        if not len(df):
            continue
        s = df.loc[df.silhouette_true.idxmax()]
        d = df.loc[df.dbi_true.idxmin()]
        out.append(
            f"- **Numeric sequences, {ds}** ({len(df)} model(s)): families separate best in **{s.model}** "
            f"(true-label silhouette {s.silhouette_true:.3f}, bootstrap interval {s.silhouette_true_lo:.3f}–"
            f"{s.silhouette_true_hi:.3f}); lowest Davies–Bouldin: {d.model} ({d.dbi_true:.2f})."
        )
    return out


def layers_lines(tables: Mapping[str, str | os.PathLike]) -> list[str]:
    out = []
    for ds, path in tables.items():
        df = _read(path)
        for model, g in df.groupby("model", sort=False):
            b = g.loc[g.silhouette_true.idxmax()]
            where = "at the embedding output" if int(b.layer) == 0 else f"after block {int(b.layer)}"
            out.append(
                f"- **Layers, {ds}, {model}**: families separate best {where} of {int(b.n_blocks)} "
                f"(depth {b.depth:.2f}; silhouette {b.silhouette_true:.3f}, interval "
                f"{b.silhouette_true_lo:.3f}–{b.silhouette_true_hi:.3f})."
            )
    return out


def sts_lines(
    progression: str | os.PathLike | None, zero_shot: str | os.PathLike | None, limit: Mapping[str, int] | None = None
) -> list[str]:
    """The FREEZE headlines; ``limit``: the rows the STS-B corpus kept per split (its ``limit``), when it was cut
    (the tour), so that its numbers are not set against the paper's, which are on the whole test split."""
    out = []
    if progression is not None:
        df = _read(progression)
        if len(df):
            b = df.loc[df.dev_pearson.idxmax()]
            verdict = "above" if b.test_pearson > PAPER_BEST_PEARSON else "below"
            paper = f"{verdict} the paper's best, {PAPER_BEST_PEARSON} (gpt2-medium)"
            if limit:
                cut = ", ".join(f"{s} {n}" for s, n in limit.items())
                paper = (
                    f"on a sample of STS-B ({cut} pairs; the whole test split has 1379): not comparable with the "
                    f"paper's {PAPER_BEST_PEARSON} (gpt2-medium, whole splits)"
                )
            out.append(
                f"- **FREEZE / STS-B**: best on dev is **{b.model} / {b.template} / {b.pooling} / {b.variant}**: test "
                f"Pearson {b.test_pearson:.2f} ± {b.test_pearson_std:.2f}, Spearman {b.test_spearman:.2f} "
                f"({int(b.n_seeds) or 1} seed(s)); {paper}."
            )
    if zero_shot is not None:
        z = _read(zero_shot)
        if len(z):
            b = z.loc[z.dev_pearson.idxmax()]
            out.append(
                f"- **Zero-shot STS-B** (no training): best on dev is {b.model} / {b.template} / {b.pooling} / "
                f"{b.cosine} cosine at layer {int(b.layer)}: test Pearson {b.test_pearson:.2f}, Spearman "
                f"{b.test_spearman:.2f}."
            )
    return out


def merging_lines(verdicts: Mapping[str, str | os.PathLike]) -> list[str]:
    out = []
    for model, path in verdicts.items():
        df = _read(path)
        for _, r in df.iterrows():
            out.append(f"- **Merging, {model}**: {r['claim']}: *{_short_verdict(str(r['verdict']))}*.")
    return out


def _short_verdict(verdict: str) -> str:
    """A verdict up to its first colon outside parentheses (``supported: …`` → ``supported``; a parenthesis whole)."""
    depth = 0
    for i, ch in enumerate(verdict):
        depth += (ch == "(") - (ch == ")")
        if ch == ":" and depth == 0:
            return verdict[:i]
    return verdict


def similarity_lines(
    models: Mapping[str, str | os.PathLike], merging: Mapping[str, str | os.PathLike] | None = None
) -> list[str]:
    out = []
    for ds, path in models.items():
        df = _read(path)
        if not len(df):
            continue
        hi, lo = df.loc[df.cka.idxmax()], df.loc[df.cka.idxmin()]
        wide = " Intervals this wide mean little: use more texts." if df.too_wide.any() else ""
        far = f"; farthest: {lo.model_a} × {lo.model_b} (CKA {lo.cka:.2f})" if len(df) > 1 else ""
        out.append(
            f"- **Similarity, {ds}**: closest models at their outputs: **{hi.model_a} × {hi.model_b}** (linear CKA "
            f"{hi.cka:.2f}; on {int(hi.n_sub)} texts {hi.cka_sub:.2f}, interval {hi.ci_low:.2f}–{hi.ci_high:.2f}, "
            f"chance up to {hi.null_q:.2f}){far}.{wide}"
        )
    for model, path in (merging or {}).items():
        df = _read(path)
        base = df[(df.reference == "base") & df.t.notna()] if len(df) else df
        ts = sorted(set(base[base.method == "linear"].t) & set(base[base.method == "slerp"].t)) if len(base) else []
        if not ts:
            continue
        t = min(ts, key=lambda x: abs(x - 0.5))
        cka = {m: float(base[(base.method == m) & (base.t == t)].cka.iloc[0]) for m in ("linear", "slerp")}
        out.append(
            f"- **Similarity, merging {model}**: at t = {t:g} SLERP sits at CKA {cka['slerp']:.3f} from the base, "
            f"linear interpolation at {cka['linear']:.3f}."
        )
    return out


def write_headlines(
    path: str | os.PathLike,
    *,
    numbers: Mapping[str, str | os.PathLike] | None = None,
    layers: Mapping[str, str | os.PathLike] | None = None,
    sts_progression: str | os.PathLike | None = None,
    sts_zero_shot: str | os.PathLike | None = None,
    merging: Mapping[str, str | os.PathLike] | None = None,
    similarity: Mapping[str, str | os.PathLike] | None = None,
    similarity_merging: Mapping[str, str | os.PathLike] | None = None,
    label: str | None = None,
    sts_limit: Mapping[str, int] | None = None,
) -> str:
    """Write the headlines (Markdown) of whichever studies ran, under the run's ``label`` (the config's, e.g. the
    tour's: not the papers' numbers); returns the text."""
    lines: Sequence[str] = [
        *numbers_lines(numbers or {}),
        *layers_lines(layers or {}),
        *sts_lines(sts_progression, sts_zero_shot, sts_limit),
        *merging_lines(merging or {}),
        *similarity_lines(similarity or {}, similarity_merging),
    ]
    text = "# Headlines\n\n" + (f"**Run: {label}**\n\n" if label else "")
    text += "One line per study, read from its own tables (details, intervals and every choice in them).\n\n"
    text += "\n".join(lines) + "\n" if lines else "No study ran.\n"
    write_text(path, text)
    return text
