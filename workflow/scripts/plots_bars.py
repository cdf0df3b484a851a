# Snakemake wrapper: silhouette and DBI across models, true families vs KMeans.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import pandas as pd  # noqa: E402

from repgeom.params import PlotParams  # noqa: E402
from repgeom.plots import plot_bars  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    p = PlotParams.from_params(snakemake.params.plots)
    df = pd.read_csv(snakemake.input[0], sep="\t")
    plot_bars(
        df,
        snakemake.output[0],
        dpi=p.dpi,
        title=f"Numeric sequences: {snakemake.wildcards.dataset}",
        pairs=[
            ("Silhouette", "silhouette_true", "silhouette_kmeans", True),
            ("Davies-Bouldin", "dbi_true", "dbi_kmeans", False),
        ],
    )
