# Snakemake wrapper: the progression table (TSV, Markdown), the worst-errors table of the best variant on dev, and
# the zero-shot table (the best_layer variants per template and pooling).
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
        templates=snakemake.params.templates,
        zero_tsv=o.zero_tsv,
        zero_md=o.zero_md,
        transfer=list(snakemake.input.transfer),
        transfer_tsv=o.transfer_tsv,
        transfer_md=o.transfer_md,
    )
