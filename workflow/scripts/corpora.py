# Snakemake wrapper: fetch, verify and normalise one text corpus (STS-B, GenericsKB, SNLI).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.corpora import prepare  # noqa: E402
from repgeom.params import CorpusSpec  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake, lookup=False):  # reads its source, which the action key cannot see: computes, stores
    meta = prepare(snakemake.wildcards.corpus, CorpusSpec.of(snakemake.params.spec), snakemake.output[0])
    for line in meta["summary"]:  # skipped rows and repeated pairs, on the console too
        print(f"[repgeom] {line}", file=sys.__stderr__, flush=True)
