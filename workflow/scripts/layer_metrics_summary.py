# Snakemake wrapper: every decoder's per-layer table in one TSV, plus best-vs-last layer in Markdown.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import pandas as pd  # noqa: E402

from repgeom.artifacts import write_text  # noqa: E402
from repgeom.metrics import layers_markdown  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    df = pd.concat([pd.read_csv(p, sep="\t") for p in snakemake.input], ignore_index=True)
    write_text(snakemake.output.tsv, df.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="NaN"))
    write_text(snakemake.output.md, layers_markdown(df) + "\n")
