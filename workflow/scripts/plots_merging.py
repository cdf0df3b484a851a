# Snakemake wrapper: the merging study's figures: the trade-off (task gain vs general-ability loss) and t-SNE
# maps of the base model, the fine-tuned one and the best merge.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import pandas as pd  # noqa: E402

from repgeom.merging import best_merge, load_eval_embeddings  # noqa: E402
from repgeom.params import PlotParams  # noqa: E402
from repgeom.plots import plot_merging_tradeoff, plot_tsne_panels  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake) as log:
    p, model = PlotParams.from_params(snakemake.params.plots), snakemake.wildcards.model
    summary = pd.read_csv(snakemake.input.summary, sep="\t")
    if snakemake.wildcards.figure == "tradeoff":
        plot_merging_tradeoff(summary, snakemake.output[0], model=model, dpi=p.dpi)
    else:
        base, labels = load_eval_embeddings(snakemake.input.base)
        seed, _ = load_eval_embeddings(snakemake.input.seed)
        best = best_merge(summary)
        log.info("best merge (largest silhouette gains − STS loss/100, mean over seeds): %s", best)
        panels = [
            (base["base"], labels, "base"),
            (seed["final"], labels, "final (LoRA merged), first seed"),
            (seed[best], labels, f"best merge: {best}, first seed"),
        ]
        plot_tsne_panels(
            panels,
            snakemake.output[0],
            title=f"{model} on the evaluation set",
            params=p,
        )
