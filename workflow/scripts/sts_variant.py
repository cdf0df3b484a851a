# Snakemake wrapper: one variant of the FREEZE progression for one model, template and pooling, over all seeds.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.artifacts import write_json  # noqa: E402
from repgeom.params import StsVariantParams  # noqa: E402
from repgeom.smk import job  # noqa: E402
from repgeom.sts import run_variant  # noqa: E402

with job(snakemake):
    import torch

    torch.set_num_threads(max(1, snakemake.threads))
    inp = snakemake.input
    result = run_variant(
        snakemake.wildcards.variant,
        StsVariantParams.from_params(snakemake.params.sts),
        shard_dir=inp.shards,
        corpus_path=inp.corpus,
        position=snakemake.wildcards.position,
        autoencoder=inp.get("autoencoder"),
        snli_shards=inp.get("nli_shards"),
        snli_corpus=inp.get("nli_corpus"),
        model=snakemake.wildcards.model,
        template=snakemake.wildcards.template,
        probe_path=snakemake.output.probe,
    )
    write_json(snakemake.output.result, result)
