# Snakemake wrapper: pretrain the layerwise autoencoders on GenericsKB activations (one per seed), for one model, template and pooling.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import pandas as pd  # noqa: E402

from repgeom.artifacts import atomic_path  # noqa: E402
from repgeom.params import StsAutoencoderParams  # noqa: E402
from repgeom.smk import job  # noqa: E402
from repgeom.sts import autoencoder_curve_rows, train_autoencoders  # noqa: E402

with job(snakemake):
    import torch

    torch.set_num_threads(max(1, snakemake.threads))
    w = snakemake.wildcards
    blob = train_autoencoders(
        snakemake.input.shards,
        position=w.position,
        params=StsAutoencoderParams.from_params(snakemake.params.sts),
        loss=w.ae_loss,
        out_path=snakemake.output.model,
        model=w.model,
        template=w.template,
        provenance={"shards": snakemake.input.shards},
    )
    with atomic_path(snakemake.output.curves) as tmp:
        pd.DataFrame(autoencoder_curve_rows(blob)).to_csv(tmp, sep="\t", index=False, float_format="%.6g")
