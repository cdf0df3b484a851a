# Snakemake wrapper: score the base model (run "base") or every variant of one seed on the task and on STS-B.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.merging import scores_for_run  # noqa: E402
from repgeom.params import MergingScoresParams  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    import torch

    torch.set_num_threads(max(1, snakemake.threads))
    inp = snakemake.input
    scores_for_run(
        snakemake.wildcards.run,
        inp.models,
        data_path=inp.data,
        eval_path=inp.eval,
        corpus_path=inp.corpus,
        out_json=snakemake.output.json,
        out_h5=snakemake.output.h5,
        params=MergingScoresParams.from_params(snakemake.params.scores),
    )
