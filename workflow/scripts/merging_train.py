# Snakemake wrapper: one LoRA adapter (one model, one seed), saved at every checkpoint.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.merging import train_lora  # noqa: E402
from repgeom.params import MergingTrainParams  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    import torch

    torch.set_num_threads(max(1, snakemake.threads))
    train_lora(
        snakemake.input.model,
        snakemake.input.data,
        snakemake.output[0],
        seed=int(snakemake.wildcards.seed),
        params=MergingTrainParams.from_params(snakemake.params.train),
    )
