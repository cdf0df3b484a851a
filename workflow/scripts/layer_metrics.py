# Snakemake wrapper: clustering scores of every layer of one decoder LM's activations.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.artifacts import write_text  # noqa: E402
from repgeom.metrics import layer_metrics  # noqa: E402
from repgeom.params import MetricParams  # noqa: E402
from repgeom.sequences import load_dataset  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    p = MetricParams.from_params(snakemake.params.metrics)
    meta, records = load_dataset(snakemake.input.dataset)
    df = layer_metrics(
        snakemake.input.shards,
        [r["family"] for r in records],
        model=snakemake.wildcards.model,
        expect={"texts_sha256": meta["texts_sha256"], "model": snakemake.wildcards.model},
        ids=[r["id"] for r in records],
        **p.cluster_kwargs(),
    )
    write_text(snakemake.output[0], df.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="NaN"))
