# Snakemake wrapper: the model × model CKA matrix of one text set at the models' final representations.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import pandas as pd  # noqa: E402

from repgeom.params import PlotParams  # noqa: E402
from repgeom.plots.similarity import plot_model_matrix  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    plot_model_matrix(
        pd.read_csv(snakemake.input[0], sep="\t"),
        list(snakemake.params.models),
        snakemake.output[0],
        dpi=PlotParams.from_params(snakemake.params.plots).dpi,
    )
