# Snakemake wrapper: t-SNE map of one model's embeddings, coloured by family.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.artifacts import read_embeddings  # noqa: E402
from repgeom.params import PlotParams  # noqa: E402
from repgeom.plots import plot_tsne  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    p = PlotParams.from_params(snakemake.params.plots)
    X, ids, labels, attrs = read_embeddings(
        snakemake.input.embeddings, expect={"model": snakemake.wildcards.model, "dataset": snakemake.wildcards.dataset}
    )
    plot_tsne(
        X,
        labels,
        snakemake.output[0],
        title=f"{snakemake.wildcards.model} on {snakemake.wildcards.dataset}",
        subtitle=f"{attrs['n']} sequences, d = {attrs['d']}",
        params=p,
    )
