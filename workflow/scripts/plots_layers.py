# Snakemake wrapper: silhouette and DBI across normalised depth, one line per model.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import pandas as pd  # noqa: E402

from repgeom.params import PlotParams  # noqa: E402
from repgeom.plots import plot_layer_curves  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    p = PlotParams.from_params(snakemake.params.plots)
    plot_layer_curves(
        pd.read_csv(snakemake.input[0], sep="\t"),
        snakemake.output[0],
        dpi=p.dpi,
        title=f"Numeric sequences across depth: {snakemake.wildcards.dataset}",
    )
