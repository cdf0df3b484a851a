# Snakemake wrapper: one forward pass of a decoder LM over a dataset (numeric sequences, or a corpus's distinct
# sentences for the STS study), one HDF5 shard per layer.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from repgeom.activations import extract  # noqa: E402
from repgeom.artifacts import read_json  # noqa: E402
from repgeom.corpora import corpus_sentences  # noqa: E402
from repgeom.sequences import load_dataset  # noqa: E402
from repgeom.smk import job  # noqa: E402

with job(snakemake):
    import torch

    torch.set_num_threads(max(1, snakemake.threads))
    p = dict(snakemake.params.act)
    if read_json(snakemake.input.dataset)["meta"].get("kind") == "corpus":  # the STS study's sentences
        ids, texts = corpus_sentences(snakemake.input.dataset)
    else:
        meta, records = load_dataset(snakemake.input.dataset)
        ids, texts = [r["id"] for r in records], [r["text"] for r in records]
    extract(
        texts,
        ids,
        snakemake.input.model,
        snakemake.output[0],
        model=snakemake.wildcards.model,
        layers=p["layers"] or None,
        positions=p["positions"],
        include_embeddings=p["include_embeddings"],
        batch_size=p["batch_size"],
        max_length=p["max_length"],
        dtype=p["dtype"],
        store_dtype=p["store_dtype"],
        padding_side=p["padding_side"],
        device=p["device"],
        compression=None if p["compression"] == "none" else p["compression"],
        extra_attrs={"dataset": snakemake.wildcards.dataset},
    )
