# Snakemake wrapper: one model pair's layer × layer CKA heatmap.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.params import PlotParams  # noqa: E402
from repgeom.plots.similarity import plot_pair_heatmap  # noqa: E402
from repgeom.similarity.tables import read_pair  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    plot_pair_heatmap(
        read_pair(snakemake.input[0]), snakemake.output[0], dpi=PlotParams.from_params(snakemake.params.plots).dpi
    )
