# Snakemake wrapper: the STS figures (layer correlation curves, autoencoder loss by layer, predicted vs true).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.artifacts import read_json  # noqa: E402
from repgeom.params import PlotParams  # noqa: E402
from repgeom.plots import plot_sts  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    results = [read_json(p) for p in snakemake.input.results]
    plot_sts(
        snakemake.wildcards.figure,
        results,
        list(snakemake.input.ae),
        snakemake.output[0],
        dpi=PlotParams.from_params(snakemake.params.plots).dpi,
    )
