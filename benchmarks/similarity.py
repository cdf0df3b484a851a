"""Benchmark of the similarity stage: every layer of SmolLM2-135M × every layer of Gemma-3-270m on the 15 457 STS-B
sentences, in fresh processes, as ratios measured in one run:

1. reading every shard of both models once, verified (the reference time)
2. linear and debiased CKA of every layer pair in feature space, the second model's layers held in memory
   (``similarity.cache_mb`` large): time / read time                                 target <= 2
3. the same with ``cache_mb: 0`` (memory bounded by two layers and their d × d products; each layer of the second
   model read again per layer of the first, from the page cache, verified once): time and peak RSS
4. (--real only) the workflow's own pair job (every measure of the config, bootstrap and permutations): its time

    python benchmarks/similarity.py            # synthetic shards of the real shapes (written in about a minute)
    python benchmarks/similarity.py --device cuda   # the products on a GPU (similarity.device); gpu_check runs this
    python benchmarks/similarity.py --real     # the real shards: the workflow extracts STS-B with both decoders
                                               # (benchmarks/configs/similarity_stsb.yaml; an hour on 2 CPU cores)

Synthetic shards: random float16 values written by the workflow's own shard writer with the two models' shapes
(15 457 rows; 31 layers × 576 and 19 × 640, the embedding output included), so reading and the products cost what
they cost on the real ones (neither depends on the values).
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
N, SHAPES = 15457, {A: (31, 576), B: (19, 640)}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_shards(root: Path, model: str, n: int = N) -> Path:
    """Every layer of ``model``'s shape as random float16 rows (``n`` of them), written by the workflow's shard
    writer."""
    import contextlib

    import h5py
    import numpy as np

    from repgeom.activations.writer import ShardWriter
    from repgeom.artifacts import texts_sha256

    out = root / model / f"stsb_{n}"
    if out.is_dir():
        return out
    n_layers, d = SHAPES[model]
    layers, window = list(range(n_layers)), 1024
    ids = [f"s{i:06d}" for i in range(n)]
    ids_bytes = np.array([i.encode() for i in ids], dtype=h5py.string_dtype("utf-8", 7))
    base = {
        "kind": "activations", "format_version": 2, "run_id": "bench", "model": model, "model_fingerprint": "0" * 64,
        "texts_sha256": texts_sha256(ids), "ids_sha256": texts_sha256(ids), "n": n, "d": d, "position": "last",
        "padding_side": "right", "max_length": 512, "compute_dtype": "float32", "store_dtype": "float16",
        "layers_in_run": layers, "n_layers_total": n_layers - 1, "sort_window": window,
    }  # fmt: skip
    rng = np.random.default_rng(0)
    out.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        w = ShardWriter(stack, out, ["last"], layers, (n, d), "float16", None, ids_bytes,
                        np.full(n, 8, dtype=np.int32), window)  # fmt: skip
        for w0 in range(0, n, window):
            w1 = min(w0 + window, n)
            w.add(w0, w1, np.arange(w0, w1), {"last": rng.standard_normal((w1 - w0, n_layers, d), dtype=np.float32)})
        w.flush()
        w.finish(base, {})
        w.verify(base)
    return out


def child(mode: str, device: str, dirs: list[str]) -> None:
    import numpy as np

    from repgeom.configure import config as rgconfig
    from repgeom.configure import stages
    from repgeom.similarity.pairs import compare_pair
    from repgeom.similarity.representations import model_reps

    reps_a, reps_b = model_reps(A, dirs[0]), model_reps(B, dirs[1])
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
            "cache_mb": 0 if mode == "reread" else 8192, "device": device}})  # fmt: skip
        rec = compare_pair(reps_a, reps_b, stages.similarity_params(cfg))
        out = {"seconds": time.perf_counter() - t, **rec["seconds"], "held": rec["held_in_memory"],
               "cka_max": float(np.nanmax(rec["measures"]["cka"])), "device": rec["device"]}  # fmt: skip
    out.update(peak_rss_mb=_rss_mb(), rss_before_mb=base)
    print(json.dumps(out))


def run_child(mode: str, dirs: list[Path], device: str = "auto") -> dict:
    cmd = [sys.executable, __file__, "--child", mode, device, *map(str, dirs)]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def measure(dirs: list[Path], device: str = "auto", modes=("read", "held", "reread")) -> dict:
    """The timings, each in a fresh process: reading every shard once (verified), CKA with the layers held, and
    with ``cache_mb: 0``; with the ratios to the read."""
    out = {mode: run_child(mode, dirs, device) for mode in modes}
    for mode in set(modes) - {"read"}:
        out[mode]["ratio_to_read"] = round(out[mode]["seconds"] / out["read"]["seconds"], 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", default="2")
    ap.add_argument("--real", action="store_true", help="the real shards, extracted by the workflow")
    ap.add_argument("--device", default="auto", help="where the products run (similarity.device: auto, cpu, cuda)")
    ap.add_argument("--n", type=int, default=N, help="rows of the synthetic shards (default: STS-B's 15 457)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    if a.child:
        child(a.child[0], a.child[1], a.child[2:])
        return 0
    if a.real:
        cmd = [sys.executable, "-m", "snakemake", PAIR, "--cores", a.cores, "--configfile", str(CONFIG)]
        subprocess.run(cmd, cwd=ROOT, check=True)
        dirs = [ROOT / f"results/activations/{m}/stsb" for m in (A, B)]
    else:
        root = ROOT / "results/benchmarks/similarity_synthetic"
        t = time.perf_counter()
        dirs = [synthetic_shards(root, m, a.n) for m in (A, B)]
        print(f"synthetic shards in {root} ({time.perf_counter() - t:.0f} s)")
    r = measure(dirs, a.device)
    read, held, reread = r["read"], r["held"], r["reread"]
    la, lb = read["layers"]
    n = a.n if not a.real else N
    print(f"layers: {A} {la} × {B} {lb} = {la * lb} pairs, {n} texts; shards {read['gb']:.2f} GB as float32; "
          f"products on {held['device']}")  # fmt: skip
    print(
        f"1. read every shard once, verified:        {read['seconds']:7.1f} s   peak RSS {read['peak_rss_mb']:.0f} MB"
    )
    for name, res in (
        ("2. CKA + debiased, layers held:          ", held),
        ("3. CKA + debiased, cache_mb 0 (re-read): ", reread),
    ):
        print(f"{name}  {res['seconds']:7.1f} s   (read {res['read']:.1f} s, compute {res['compute']:.1f} s)  "
              f"peak RSS {res['peak_rss_mb']:.0f} MB")  # fmt: skip
        print(f"   ratio to the read:                       {res['seconds'] / read['seconds']:7.2f}   (target <= 2)")
    if not a.real:
        flops = 2 * n * (SHAPES[A][0] * SHAPES[A][1]) * (SHAPES[B][0] * SHAPES[B][1])
        print(f"   cross products: {flops / 1e12:.2f} TFLOP, {flops / held['compute'] / 1e9:.0f} GFLOP/s when held")
    if a.real:
        job = json.loads((ROOT / PAIR).read_text())
        print(
            f"4. the workflow's pair job (measures {job['params']['measures']}, bootstrap {job['params']['bootstrap']}, "
            f"permutations {job['params']['permutations']}): {job['seconds']['total']:.1f} s "
            f"(read {job['seconds']['read']:.1f} s, compute {job['seconds']['compute']:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
