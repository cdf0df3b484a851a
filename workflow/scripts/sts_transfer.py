# Snakemake wrapper: every saved probe of one model, template and pooling applied, unchanged, to one transfer set.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.artifacts import write_json  # noqa: E402
from repgeom.smk import job  # noqa: E402
from repgeom.sts import transfer_scores  # noqa: E402

with job(snakemake):
    w = snakemake.wildcards
    write_json(
        snakemake.output[0],
        transfer_scores(
            list(snakemake.input.probes),
            shard_dir=snakemake.input.shards,
            corpus_path=snakemake.input.corpus,
            corpus=w.corpus,
            model=w.model,
            template=w.template,
            position=w.position,
        ),
    )
