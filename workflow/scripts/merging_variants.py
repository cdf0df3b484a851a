# Snakemake wrapper: the merged variants of one seed (final, soup, linear, SLERP, task-vector merges).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.merging import build_variants  # noqa: E402
from repgeom.params import MergingVariantsParams  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    import torch

    torch.set_num_threads(max(1, snakemake.threads))
    build_variants(
        snakemake.input.model,
        snakemake.input.adapters,
        snakemake.output[0],
        params=MergingVariantsParams.from_params(snakemake.params.variants),
        seed=int(snakemake.wildcards.seed),
        partner_dir=snakemake.input.get("partner"),
    )
