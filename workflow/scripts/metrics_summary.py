# Snakemake wrapper: the per-dataset table of every model's scores (TSV + Markdown).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.artifacts import read_json  # noqa: E402
from repgeom.metrics import write_summary  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    rows = [read_json(p) for p in snakemake.input]
    write_summary(rows, snakemake.output.tsv, snakemake.output.md)
