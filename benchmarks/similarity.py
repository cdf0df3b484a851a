"""Benchmark of the similarity stage: every layer of SmolLM2-135M × every layer of Gemma-3-270m on the 15 457 STS-B
sentences (benchmarks/configs/similarity_stsb.yaml), in fresh processes, as ratios measured in one run:

1. reading every shard of both models once, verified (the reference time)
2. linear and debiased CKA of every layer pair in feature space, the second model's layers held in memory
   (``similarity.cache_mb`` large): compute time / read time                       target <= 2
3. the same with ``cache_mb: 0`` (memory bounded by two layers and their d × d products; each layer of the second
   model read again per layer of the first, from the page cache, verified once): time and peak RSS
4. the workflow's own pair job (every measure of the config, bootstrap and permutations): its time, from its record

    python benchmarks/similarity.py [--cores 2]

The shards come from the workflow (snakemake extracts them once; cached afterwards).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "benchmarks/configs/similarity_stsb.yaml"
A, B = "smollm2-135m-instruct", "gemma-3-270m"
PAIR = f"results/similarity/stsb/pairs/{A}__{B}.json"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np

    from repgeom import config as rgconfig
    from repgeom import stages
    from repgeom.similarity.pairs import compare_pair
    from repgeom.similarity.representations import model_reps

    reps_a = model_reps(A, ROOT / f"results/activations/{A}/stsb")
    reps_b = model_reps(B, ROOT / f"results/activations/{B}/stsb")
    base = _rss_mb()
    t = time.perf_counter()
    if mode == "read":
        n = 0
        for r in reps_a + reps_b:
            X, _ = r.load()
            n += X.nbytes
        out = {"seconds": time.perf_counter() - t, "gb": n / 1e9, "layers": [len(reps_a), len(reps_b)]}
    else:
        cfg = rgconfig.validate_config({**rgconfig.load_yaml(CONFIG), "similarity": {
            "measures": ["cka", "cka_debiased"], "bootstrap": 0, "permutations": 0,
            "cache_mb": 0 if mode == "reread" else 8192}})  # fmt: skip
        rec = compare_pair(reps_a, reps_b, stages.similarity_params(cfg))
        out = {"seconds": time.perf_counter() - t, **rec["seconds"], "held": rec["held_in_memory"],
               "cka_max": float(np.nanmax(rec["measures"]["cka"]))}  # fmt: skip
    out.update(peak_rss_mb=_rss_mb(), rss_before_mb=base)
    print(json.dumps(out))


def run_child(mode: str) -> dict:
    p = subprocess.run(
        [sys.executable, __file__, "--child", mode], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", default="2")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child)
        return 0
    cmd = [sys.executable, "-m", "snakemake", PAIR, "--cores", a.cores, "--configfile", str(CONFIG)]
    subprocess.run(cmd, cwd=ROOT, check=True)
    read = run_child("read")
    held = run_child("held")
    reread = run_child("reread")
    job = json.loads((ROOT / PAIR).read_text())
    la, lb = read["layers"]
    print(
        f"layers: {A} {la} × {B} {lb} = {la * lb} pairs, {job['n_texts']} texts; shards {read['gb']:.2f} GB as float32"
    )
    print(
        f"1. read every shard once, verified:        {read['seconds']:7.1f} s   peak RSS {read['peak_rss_mb']:.0f} MB"
    )
    print(
        f"2. CKA + debiased, layers held:             {held['seconds']:7.1f} s   (read {held['read']:.1f} s, "
        f"compute {held['compute']:.1f} s)  peak RSS {held['peak_rss_mb']:.0f} MB"
    )
    print(f"   ratio to the read:                       {held['seconds'] / read['seconds']:7.2f}   (target <= 2)")
    print(
        f"3. CKA + debiased, cache_mb 0 (re-read):    {reread['seconds']:7.1f} s   (read {reread['read']:.1f} s, "
        f"compute {reread['compute']:.1f} s)  peak RSS {reread['peak_rss_mb']:.0f} MB"
    )
    print(f"   ratio to the read:                       {reread['seconds'] / read['seconds']:7.2f}")
    print(
        f"4. the workflow's pair job (measures {job['params']['measures']}, bootstrap {job['params']['bootstrap']}, "
        f"permutations {job['params']['permutations']}): {job['seconds']['total']:.1f} s "
        f"(read {job['seconds']['read']:.1f} s, compute {job['seconds']['compute']:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
