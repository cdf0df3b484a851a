# Snakemake wrapper: clustering scores of one model's embeddings.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.artifacts import read_embeddings, write_json  # noqa: E402
from repgeom.metrics import cluster_metrics  # noqa: E402
from repgeom.params import MetricParams  # noqa: E402
from repgeom.sequences import load_dataset  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake) as log:
    p = MetricParams.from_params(snakemake.params.metrics)
    meta, _ = load_dataset(snakemake.input.dataset)
    X, ids, labels, attrs = read_embeddings(
        snakemake.input.embeddings,
        expect={
            "model": snakemake.wildcards.model,
            "dataset": snakemake.wildcards.dataset,
            "texts_sha256": meta["texts_sha256"],
        },
    )
    res = cluster_metrics(
        X,
        labels,
        **p.cluster_kwargs(),
    )
    res.update(
        model=snakemake.wildcards.model,
        dataset=snakemake.wildcards.dataset,
        model_fingerprint=attrs["model_fingerprint"],
        texts_sha256=attrs["texts_sha256"],
        n_truncated=attrs.get("n_truncated", 0),
        params=p.params(),
    )
    log.info(
        "silhouette true %.4f kmeans %.4f; DBI true %.4f kmeans %.4f; ARI %.3f NMI %.3f",
        res["silhouette_true"],
        res["silhouette_kmeans"],
        res["dbi_true"],
        res["dbi_kmeans"],
        res["ari"],
        res["nmi"],
    )
    write_json(snakemake.output[0], res)
