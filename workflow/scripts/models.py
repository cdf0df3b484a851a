# Snakemake wrapper: fetch and prepare one model folder (once; cached).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.models import prepare  # noqa: E402
from repgeom.params import PrepareParams  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake, cache=False):  # reads its source, which the action key cannot see; a folder of GBs
    import torch

    torch.set_num_threads(max(1, snakemake.threads))
    prepare(PrepareParams.from_params(snakemake.params.model), snakemake.output[0])
