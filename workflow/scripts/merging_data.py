# Snakemake wrapper: the fine-tuning sequences (train / held-out), disjoint from the evaluation windows.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.merging import write_training_data  # noqa: E402
from repgeom.params import MergingDataSpec  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    write_training_data(snakemake.input.eval, MergingDataSpec.from_params(snakemake.params.data), snakemake.output[0])
