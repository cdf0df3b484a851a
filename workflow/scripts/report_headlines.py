# Snakemake wrapper: one headline per study, read from the studies' own tables (the report's front matter).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.headlines import write_headlines  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    tables = snakemake.params.tables  # [study, name, path] per table, all of them inputs

    def group(study):
        return {name: path for s, name, path in tables if s == study}

    sts = group("sts")
    write_headlines(
        snakemake.output[0],
        numbers=group("numbers"),
        layers=group("layers"),
        sts_progression=sts.get("progression"),
        sts_zero_shot=sts.get("zero_shot"),
        merging=group("merging"),
        similarity=group("similarity"),
        similarity_merging=group("similarity_merging"),
        label=snakemake.params.label,
        sts_limit=snakemake.params.sts_limit,
    )
