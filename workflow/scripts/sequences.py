# Snakemake wrapper: write one numeric-sequence dataset artifact.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.params import SequenceSpec  # noqa: E402
from repgeom.sequences import write_dataset  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    write_dataset(SequenceSpec.from_params(snakemake.params.spec), snakemake.output[0], snakemake.wildcards.dataset)
