"""Benchmark: per-layer activation extraction (repgeom.activations) with SmolLM2.

Everything is measured in one run, as ratios of interleaved repeats (medians), since these
machines are noisy:

1. extraction throughput (``extract``: tokenise, forward with hooks, write + verify every shard)
   vs a bare in-memory forward with the same hooks and no I/O (``forward_latents``)   target >= 0.90
2. extraction vs a naive loop: one text at a time, ``output_hidden_states=True``, all blocks
   (timed on a subset, extrapolated per text)                                       target >= 3x
3. peak RSS of ``extract`` for N big vs N small (each in a fresh subprocess)         target within 10%
4. reading one layer's shard vs ``np.load`` of the same array                         target >= 0.8
5. bfloat16 vs float32 throughput on CPU, and their agreement (cosine per row and layer)   target >= 0.999

    python benchmarks/activations.py [--quick] [--model-dir resources/models/smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from repgeom import activations as A  # noqa: E402
from repgeom.sequences import build  # noqa: E402

FAMILIES = ["consecutive", "even", "odd", "primes", "recaman", "composites"]


def numeric_texts(n: int, length: int, offset: int = 0) -> tuple[list[str], list[str]]:
    per = -(-n // len(FAMILIES))
    recs = build(
        {"families": FAMILIES, "n_sequences": per, "length": length, "max_chars": 100000, "start_offset": offset}
    )
    recs = sorted(recs, key=lambda r: (r.window, r.family))[:n]  # families interleaved
    return [r.text for r in recs], [r.id for r in recs]


def med(xs):
    return statistics.median(xs)


def vm_hwm_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def rss_child(a) -> None:
    """Run one extraction and print the process's peak RSS (JSON on the last line)."""
    import torch

    torch.set_num_threads(a.threads)
    texts, ids = numeric_texts(a.rss_child, a.rss_length)
    if a.load_only:
        A.load_decoder(a.model_dir)
        summ = {}
    else:
        summ = A.extract(
            texts,
            ids,
            a.model_dir,
            a.out,
            model="bench",
            batch_size=a.rss_batch,
            max_length=a.rss_max_length,
            progress=False,
        )
    print(
        json.dumps(
            {
                "n": len(texts),
                "vm_hwm_kb": vm_hwm_kb(),
                "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "seconds": summ.get("seconds"),
                "texts_per_second": summ.get("texts_per_second"),
            }
        )
    )


def run_child(a, n: int, out: Path, load_only: bool = False) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--model-dir",
        str(a.model_dir),
        "--rss-child",
        str(n),
        "--out",
        str(out),
        "--rss-length",
        str(a.rss_length),
        "--rss-max-length",
        str(a.rss_max_length),
        "--rss-batch",
        str(a.rss_batch),
        "--threads",
        str(a.threads),
    ] + (["--load-only"] if load_only else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    got["children_maxrss_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", default=str(ROOT / "resources/models/smollm2-135m-instruct"))
    ap.add_argument("--quick", action="store_true", help="small N and shorter texts (minutes on 2 CPU cores)")
    ap.add_argument("--n", type=int, help="texts for the throughput runs (default 1000; quick 96)")
    ap.add_argument("--length", type=int, help="integers per text (default 50; quick 20)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, help="interleaved repeats (default 3; quick 3)")
    ap.add_argument("--naive-n", type=int, help="texts timed in the naive loop (default 64; quick 12)")
    ap.add_argument("--bf16-n", type=int, help="texts for bfloat16 vs float32 (default 64; quick 12)")
    ap.add_argument("--rss-n", type=int, nargs=2, help="N small, N big (default 1000 10000; quick 1100 4400)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", nargs="*", default=[], choices=["throughput", "naive", "rss", "read", "bf16"])
    # internal: the RSS child
    ap.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--load-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rss-length", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--rss-max-length", type=int, default=8, help=argparse.SUPPRESS)
    ap.add_argument("--rss-batch", type=int, default=64, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.rss_child:
        return rss_child(a)
    q = a.quick
    n = a.n or (96 if q else 1000)
    length = a.length or (20 if q else 50)
    repeats = a.repeats or 3
    naive_n = a.naive_n or (12 if q else 64)
    bf16_n = a.bf16_n or (12 if q else 64)
    rss_n = a.rss_n or ([1100, 4400] if q else [1000, 10000])

    import torch

    torch.set_num_threads(a.threads)
    model_dir = Path(a.model_dir)
    tmp = Path(tempfile.mkdtemp(prefix="bench-acts-"))
    texts, ids = numeric_texts(n, length)
    sub_bf16 = texts[:: max(1, n // bf16_n)][:bf16_n]
    m, tok, _ = A.load_decoder(model_dir)
    n_blocks = len(A.find_blocks(m)[1])
    toks = [len(t) for t in tok(texts)["input_ids"]]
    print(
        f"model {model_dir.name}: {n_blocks} blocks; {n} texts of {length} integers "
        f"({statistics.mean(toks):.0f} tokens on average); batch {a.batch_size}; torch threads {a.threads}; "
        f"{repeats} interleaved repeats, medians",
        flush=True,
    )
    # warm both paths (first-call allocations, lazy inits)
    A.forward_latents(m, tok, texts[:4], batch_size=a.batch_size)
    A.extract(texts[:4], ids[:4], model_dir, tmp / "warm", model="bench", progress=False)

    t_bare, t_ext, t_naive = [], [], []
    naive_texts = texts[:: max(1, n // naive_n)][:naive_n]  # spread over the families and lengths
    for r in range(repeats):
        if "throughput" not in a.skip:
            t = time.perf_counter()
            A.forward_latents(m, tok, texts, batch_size=a.batch_size)
            t_bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            s = A.extract(
                texts, ids, model_dir, tmp / f"run{r}", model="bench", batch_size=a.batch_size, progress=False
            )
            t_ext.append(time.perf_counter() - t - s["load_seconds"])
        if "naive" not in a.skip:
            t = time.perf_counter()
            with torch.no_grad():
                for text in naive_texts:
                    out = m(**tok(text, return_tensors="pt"), output_hidden_states=True)
                    np.stack([h[0, -1].float().numpy() for h in out.hidden_states[1:]])
            t_naive.append((time.perf_counter() - t) / len(naive_texts))
        print(f"  repeat {r + 1}/{repeats} done", flush=True)
    if t_ext:
        print(f"[1] bare forward (same hooks, no I/O): {n / med(t_bare):8.2f} texts/s")
        print(
            f"    extract (tokenise, hooks, write + verify {n_blocks} shards, rename): "
            f"{n / med(t_ext):8.2f} texts/s   ratio {med(t_bare) / med(t_ext):.3f}  (target >= 0.90)"
        )
    if t_naive and t_ext:
        per = med(t_ext) / n
        print(
            f"[2] naive one-at-a-time loop ({naive_n} texts, output_hidden_states): {1 / med(t_naive):8.2f} "
            f"texts/s   extract / naive {med(t_naive) / per:.2f}x  (target >= 3x)"
        )

    if "rss" not in a.skip:
        res = {}
        base = run_child(a, rss_n[0], tmp / "rss_load", load_only=True)
        for k in rss_n:  # small first, then big
            res[k] = run_child(a, k, tmp / f"rss{k}")
        s, b = res[rss_n[0]], res[rss_n[1]]
        shard_mb = sum(p.stat().st_size for p in (tmp / f"rss{rss_n[1]}").glob("layer_*.h5")) / 1e6
        print(
            f"[3] peak RSS (VmHWM; {a.rss_length}-integer texts, max_length {a.rss_max_length}, all "
            f"{n_blocks} layers, float16 shards): model load only {base['vm_hwm_kb'] / 1024:.0f} MiB; "
            f"N={rss_n[0]}: {s['vm_hwm_kb'] / 1024:.0f} MiB; N={rss_n[1]}: {b['vm_hwm_kb'] / 1024:.0f} MiB "
            f"({shard_mb:.0f} MB of shards; {s['seconds']:.0f} s and {b['seconds']:.0f} s)  big/small {b['vm_hwm_kb'] / s['vm_hwm_kb']:.3f}  (target <= 1.10)"
        )
        print(
            f"    extract above model load: {(s['vm_hwm_kb'] - base['vm_hwm_kb']) / 1024:.0f} vs "
            f"{(b['vm_hwm_kb'] - base['vm_hwm_kb']) / 1024:.0f} MiB (the weights are paged in by the first "
            "forward); ru_maxrss is not used: Linux carries the forking parent's peak over exec"
        )
        read_dir = tmp / f"rss{rss_n[1]}"
    else:
        read_dir = tmp / f"run{repeats - 1}"

    if "read" not in a.skip and A.list_layers(read_dir):
        L = A.list_layers(read_dir)[len(A.list_layers(read_dir)) // 2]
        X, _, _ = A.load_layer(read_dir, L, dtype=None)
        npy = tmp / "same.npy"
        np.save(npy, X)
        fns = {
            "np.load": lambda: np.load(npy),
            "load_layer(verify=False, dtype=None)": lambda: A.load_layer(read_dir, L, verify=False, dtype=None),
            "load_layer(verify=True, dtype=None)": lambda: A.load_layer(read_dir, L, dtype=None),
            "load_layer() [verify, float32]": lambda: A.load_layer(read_dir, L),
        }
        ts = {k: [] for k in fns}
        for _ in range(25):
            for k, f in fns.items():
                t = time.perf_counter()
                f()
                ts[k].append(time.perf_counter() - t)
        base_t = med(ts["np.load"])
        print(
            f"[4] read layer {L} ({X.shape[0]} x {X.shape[1]} {X.dtype}, {X.nbytes / 1e6:.1f} MB): "
            f"np.load {base_t * 1e3:.2f} ms"
        )
        for k in list(fns)[1:]:
            print(f"    {k:38s} {med(ts[k]) * 1e3:7.2f} ms   ratio {base_t / med(ts[k]):.3f}  (target >= 0.8)")

    if "bf16" not in a.skip:
        mbf, _, _ = A.load_decoder(model_dir, dtype="bfloat16")
        sub = sub_bf16
        A.forward_latents(mbf, tok, sub[:2], batch_size=a.batch_size)
        t32, tbf = [], []
        for _ in range(max(2, repeats - 1)):
            t = time.perf_counter()
            x32 = A.forward_latents(m, tok, sub, batch_size=a.batch_size)
            t32.append(time.perf_counter() - t)
            t = time.perf_counter()
            xbf = A.forward_latents(mbf, tok, sub, batch_size=a.batch_size)
            tbf.append(time.perf_counter() - t)
        cos = (x32 * xbf).sum(-1) / (np.linalg.norm(x32, axis=-1) * np.linalg.norm(xbf, axis=-1))
        worst = np.unravel_index(np.argmin(cos), cos.shape)
        print(
            f"[5] bfloat16 vs float32 ({bf16_n} texts, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}): float32 {bf16_n / med(t32):.2f} texts/s, bfloat16 "
            f"{bf16_n / med(tbf):.2f} texts/s, speed-up {med(t32) / med(tbf):.2f}x"
        )
        step = max(1, n_blocks // 6)
        print(
            f"    cosine per row and layer: min {cos.min():.5f} (row {worst[0]}, layer {worst[1] + 1}), "
            f"mean {cos.mean():.5f}  (target >= 0.999); per-layer min: "
            + ", ".join(f"L{L + 1} {cos[:, L].min():.5f}" for L in range(0, n_blocks, step))
        )


if __name__ == "__main__":
    main()
