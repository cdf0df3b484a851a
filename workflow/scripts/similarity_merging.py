# Snakemake wrapper: each merged variant's similarity to the base model and to the fine-tuned model, per seed.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.artifacts import write_text  # noqa: E402
from repgeom.params import PlotParams, SimilarityParams  # noqa: E402
from repgeom.plots.similarity import plot_merging_layers, plot_merging_similarity  # noqa: E402
from repgeom.similarity import merging  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    p = SimilarityParams.from_params(snakemake.params.similarity)
    model = snakemake.wildcards.model
    runs = dict(zip(snakemake.params.runs, snakemake.input.seeds))
    outputs, per_layer = merging.load_runs(snakemake.input.base, runs)
    df = merging.variant_similarity(*outputs, p)
    s = merging.summary(df)
    layers = merging.layer_similarity(*per_layer, p)
    ls = merging.layer_summary(layers)
    out, dpi = snakemake.output, PlotParams.from_params(snakemake.params.plots).dpi
    write_text(out.tsv, df.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="NaN"))
    write_text(out.summary, s.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="NaN"))
    write_text(out.layers, layers.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="NaN"))
    write_text(out.md, merging.markdown(model, s, p) + merging.layer_markdown(ls))
    plot_merging_similarity(s, model, out.png, dpi=dpi)
    plot_merging_layers(ls, model, out.layers_png, dpi=dpi)
