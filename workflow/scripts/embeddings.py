# Snakemake wrapper: embed one dataset with one model.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.embeddings import embed_dataset  # noqa: E402
from repgeom.params import EmbedParams  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    import torch

    torch.set_num_threads(max(1, snakemake.threads))
    embed_dataset(
        snakemake.input.dataset,
        snakemake.input.model,
        snakemake.output[0],
        model=snakemake.wildcards.model,
        dataset=snakemake.wildcards.dataset,
        params=EmbedParams.from_params(snakemake.params.embed),
    )
