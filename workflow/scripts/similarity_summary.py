# Snakemake wrapper: the similarity tables of one text set, gathered from its model pairs' records.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.artifacts import write_text  # noqa: E402
from repgeom.similarity import tables  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    records = [tables.read_pair(p) for p in snakemake.input]
    out = snakemake.output
    models, best_pairs = tables.models_table(records), tables.best_pairs_table(records)
    for path, df in (
        (out.layers, tables.layers_table(records)),
        (out.models, models),
        (out.best_layers, tables.best_table(records)),
        (out.best_pairs, best_pairs),
    ):
        write_text(path, df.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="NaN"))
    write_text(out.md, tables.markdown(snakemake.wildcards.dataset, models, best_pairs, snakemake.params.similarity))
