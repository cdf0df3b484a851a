# Snakemake wrapper: every representation of one model against every representation of another on one text set.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from tqdm import tqdm  # noqa: E402

from repgeom.artifacts import write_json  # noqa: E402
from repgeom.params import SimilarityParams  # noqa: E402
from repgeom.similarity.pairs import compare_pair  # noqa: E402
from repgeom.similarity.representations import reps_from_paths  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake) as log:
    wc = snakemake.wildcards
    p = SimilarityParams.from_params(snakemake.params.similarity)
    reps_a = reps_from_paths(wc.model_a, snakemake.input.a)
    reps_b = reps_a if wc.model_a == wc.model_b else reps_from_paths(wc.model_b, snakemake.input.b)
    with tqdm(total=len(reps_a), desc=f"{wc.model_a} × {wc.model_b}", unit="layer", file=sys.stderr) as bar:
        rec = compare_pair(reps_a, reps_b, p, progress=lambda i: bar.update(i - bar.n))
    rec.update(dataset=wc.dataset, sources_a=list(snakemake.input.a), sources_b=list(snakemake.input.b))
    log.info("read %.1f s, computed %.1f s", rec["seconds"]["read"], rec["seconds"]["compute"])
    write_json(snakemake.output[0], rec)
