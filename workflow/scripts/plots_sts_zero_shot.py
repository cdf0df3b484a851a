# Snakemake wrapper: one model's zero-shot STS-B curves (Pearson and Spearman per layer, a line per template).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.artifacts import read_json  # noqa: E402
from repgeom.params import PlotParams  # noqa: E402
from repgeom.plots import plot_zero_shot  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    plot_zero_shot(
        [read_json(p) for p in snakemake.input.results],
        snakemake.wildcards.model,
        snakemake.output[0],
        dpi=PlotParams.from_params(snakemake.params.plots).dpi,
    )
