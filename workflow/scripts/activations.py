# Snakemake wrapper: one forward pass of a decoder LM over a dataset (numeric sequences, or a corpus's distinct
# sentences for the STS study), one HDF5 shard per layer; or over one row-part of it; or the gather of the parts
# into one virtual file per layer.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.activations import extract_dataset  # noqa: E402
from repgeom.activations.parts import gather  # noqa: E402
from repgeom.params import ActivationParams  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    params = ActivationParams.from_params(snakemake.params.act)
    if "parts" in snakemake.input.keys():
        gather(snakemake.input.plan, snakemake.output[0], params.positions)
    else:
        import torch

        torch.set_num_threads(max(1, snakemake.threads))
        extract_dataset(
            snakemake.input.dataset,
            snakemake.input.model,
            snakemake.output[0],
            model=snakemake.wildcards.model,
            dataset=snakemake.wildcards.dataset,
            params=params,
            part=snakemake.params.get("part"),
        )
