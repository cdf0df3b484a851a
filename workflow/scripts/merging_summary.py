# Snakemake wrapper: the variants table (mean ± std over seeds) and the verdict per claim of the paper.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.merging import write_summary  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    out = snakemake.output
    write_summary(
        list(snakemake.input),
        model=snakemake.wildcards.model,
        tsv=out.tsv,
        md=out.md,
        long_tsv=out.long,
        verdict_tsv=out.verdict_tsv,
        verdict_md=out.verdict_md,
        **snakemake.params.effects,
    )
