# Snakemake wrapper: t-SNE of the best layer (by true-label silhouette) and of the last layer.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import pandas as pd  # noqa: E402

from repgeom.activations import load_layer  # noqa: E402
from repgeom.metrics import best_layer  # noqa: E402
from repgeom.params import PlotParams  # noqa: E402
from repgeom.plots import plot_tsne_panels  # noqa: E402
from repgeom.sequences import load_dataset  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    p = PlotParams.from_params(snakemake.params.plots)
    table = pd.read_csv(snakemake.input.table, sep="\t")
    model = snakemake.wildcards.model
    meta, records = load_dataset(snakemake.input.dataset)
    labels = [r["family"] for r in records]
    picks = [("best", best_layer(table)), ("last", int(table["layer"].max()))]
    panels = []
    for what, layer in picks:
        X, ids, attrs = load_layer(
            snakemake.input.shards, layer, expect={"model": model, "texts_sha256": meta["texts_sha256"]}
        )
        sil = float(table.loc[table["layer"] == layer, "silhouette_true"].iloc[0])
        panels.append((X, labels, f"{what} layer: {layer} of {attrs['n_layers_total']} (silhouette {sil:.3f})"))
    plot_tsne_panels(
        panels,
        snakemake.output[0],
        title=f"{model} on {snakemake.wildcards.dataset}",
        params=p,
    )
