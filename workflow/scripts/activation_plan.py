# Snakemake wrapper: cut a text set into the row-parts activation jobs take (activations.rows_per_part).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.activations.parts import write_plan  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    write_plan(snakemake.input[0], snakemake.output[0], **snakemake.params.plan)
