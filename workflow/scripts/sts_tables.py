# Snakemake wrapper: the progression table (TSV, Markdown) and the worst-errors table of the best variant on dev.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.smk import job  # noqa: E402
from repgeom.sts import write_tables  # noqa: E402

with job(snakemake):
    o = snakemake.output
    write_tables(
        snakemake.input.results,
        snakemake.input.corpus,
        tsv=o.tsv,
        md=o.md,
        worst_tsv=o.worst_tsv,
        worst_md=o.worst_md,
        order=snakemake.params.order,
        k=snakemake.params.k,
    )
