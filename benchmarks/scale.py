"""Benchmark: scale-out extraction (row-parts) and verified reads, with a tiny random-weight decoder so that N can
reach 200k texts on a CPU.

Measured in one run, as ratios:

1. N texts in one part (one two-thread job) vs four parts (two concurrent one-thread jobs at a time, each a fresh
   process, as Snakemake runs them): throughput ratio                              target >= 0.95
   and the gathered arrays against the single part, bit for bit (parts on sorting-window boundaries); each job's
   start-up (process start, imports, model load: ~4-5 s here) and the extraction-alone rates. The parts pay two
   start-ups one after the other where one job pays one, so at N=40960 (jobs of 15-35 s) the ratio was 0.84-0.96
   on this project's AMD machine with the extraction alone at 0.98-1.09; the default N gives jobs of minutes
2. peak RSS of one job (VmHWM, fresh process) at N big vs N small                  target within 10 %
   and how much of the difference is the job's own lists of texts and ids (Python strings: ~170 bytes a text)
3. reading a gathered layer vs reading the single file (both verified)             target >= 0.9
4. reading one layer verified vs ``np.load`` of the same array: sha256, xxh3 (the default where a shard has it),
   the same with the run's ids decoded already (each layer after the first of ``iter_layers``), and a repeated
   read of a file this process verified already                                     target >= 0.8
   and each part a verified read adds, alone: the hash of the layer from memory and of the same bytes in cache (as a
   read's pieces are right after it), open and attribute checks, the ids
5. rows that sit page-aligned in a file, read into numpy's default placement (16 bytes into a page) vs into one
   at the file offset's page alignment (what the reader does): on some CPUs (AMD Zen 3) the kernel's copy crawls
   when destination and source differ by 1-31 bytes within a page                   ratio (how much it saves)
6. the default read, float32 from a float16 shard (cast block by block as it is read, with numpy's look-up or,
   where torch is loaded, torch's cast) vs ``np.load`` and ``astype(float32)``, verified and not, and vs ``np.load``
   of the layer saved as float32 (twice the bytes); the peak memory that read adds beside the array, against the
   same read done as a float16 read then ``astype`` (as before)

    python benchmarks/scale.py [--quick]      # quick: N 8k parts, RSS at 4k and 40k
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from repgeom import activations as A  # noqa: E402
from repgeom.activations import parts as P  # noqa: E402
from repgeom.activations import rowread, shardfile  # noqa: E402
from repgeom.artifacts import texts_sha256  # noqa: E402

WINDOW = 1024
KW = dict(model="tiny", positions=("last",), batch_size=64, store_dtype="float16", progress=False)


def texts(n: int) -> tuple[list[str], list[str]]:
    """Numeric-sequence-like texts of 4 to 19 integers, deterministic."""
    out = [", ".join(str((i * 7 + k * 13) % 1000) for k in range(4 + i % 16)) for i in range(n)]
    return out, [f"t{i:07d}" for i in range(n)]


def vm_hwm_kb() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))


def child(a) -> None:
    """One job: extract rows [r0, r1) of N texts with the tiny model; prints its peak RSS and seconds as JSON."""
    import torch

    torch.set_num_threads(a.threads)
    t, ids = texts(a.n)
    r0, r1 = a.rows
    t0 = time.perf_counter()
    whole = (r0, r1) == (0, a.n)
    extra = None if whole else {"row_start": r0, "row_stop": r1}
    if not whole:  # a whole run's lists as they are, as a job reading its text set holds them
        t, ids = t[r0:r1], ids[r0:r1]
    A.extract(t, ids, a.model, a.out, sort_window=WINDOW, device="cpu", extra_attrs=extra, **KW)
    held = sum(map(sys.getsizeof, t)) + sum(map(sys.getsizeof, ids)) + sys.getsizeof(t) + sys.getsizeof(ids)
    print(json.dumps({"seconds": time.perf_counter() - t0, "vm_hwm_kb": vm_hwm_kb(), "texts_kb": held / 1024}))


def synthetic_shard(outdir: Path, n: int, d: int, rows: tuple[int, int]) -> None:
    """Rows ``rows`` of an (n, d) float16 layer of random values, written by the workflow's own shard writer."""
    import contextlib

    import h5py

    from repgeom.activations.writer import ShardWriter

    r0, r1 = rows
    t, ids = texts(n)
    t, ids = t[r0:r1], ids[r0:r1]
    ids_bytes = np.array([i.encode() for i in ids], dtype=h5py.string_dtype("utf-8", len(ids[0])))
    data = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)[r0:r1]  # the same rows in any part
    base = {
        "kind": "activations", "format_version": 2, "run_id": f"bench{r0}", "model": "synthetic",
        "model_fingerprint": "0" * 64, "texts_sha256": texts_sha256(t), "ids_sha256": texts_sha256(ids), "n": r1 - r0,
        "d": d, "position": "last", "padding_side": "right", "max_length": 512, "compute_dtype": "float32",
        "store_dtype": "float16", "layers_in_run": [1], "sort_window": WINDOW, "row_start": r0, "row_stop": r1,
    }  # fmt: skip
    with contextlib.ExitStack() as stack:
        w = ShardWriter(
            stack, outdir, ["last"], [1], (r1 - r0, d), "float16", None, ids_bytes,
            np.full(r1 - r0, 8, dtype=np.int32), WINDOW,
        )  # fmt: skip
        for w0 in range(0, r1 - r0, WINDOW):
            w1 = min(w0 + WINDOW, r1 - r0)
            rows_ = np.arange(w0, w1)
            w.add(w0, w1, rows_, {"last": data[w0:w1, None, :]})
        w.flush()
        w.finish(base, {})
        w.verify(base)


def run_child(model: Path, n: int, rows: tuple[int, int], out: Path, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--child", "--model", str(model), "--n", str(n), "--out", str(out)]
    cmd += ["--rows", str(rows[0]), str(rows[1]), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plan(n: int, rows_per_part: int) -> dict:
    t, ids = texts(n)
    return P.make_plan(ids, t, rows_per_part, WINDOW)


def timed(fn, repeats: int = 15) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def uncached(fn):
    """``fn`` as a first read in a process: nothing verified yet (neither the rows nor the ids)."""

    def run():
        rowread._VERIFIED.clear()
        shardfile._IDS.clear()
        return fn()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--n",
        type=int,
        help="texts for the parts run (default 163840: each job's ~4-5 s start-up small against its work)",
    )
    ap.add_argument("--rss-n", type=int, nargs=2, help="N small and big (default 20000 200000; quick 4000 40000)")
    ap.add_argument("--read-shape", type=int, nargs=2, default=(16384, 2048), help="rows and width of the read test")
    ap.add_argument("--skip", nargs="*", default=[], choices=["parts", "rss", "read"])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)
    from repgeom.architectures import build_tiny

    n = a.n or (8192 if a.quick else 163840)
    rss_n = a.rss_n or ((4000, 40000) if a.quick else (20000, 200000))
    tmp = Path(tempfile.mkdtemp(prefix="repgeom-scale-"))
    model = build_tiny("gpt2", tmp / "gpt2")
    print(f"tiny random-weight GPT-2 (2 blocks, width 64); {n} texts; sorting windows of {WINDOW} rows; {tmp}")

    if "parts" not in a.skip:
        parts_run(a, model, n, tmp)
    if "rss" not in a.skip:
        rss = {k: run_child(model, k, (0, k), tmp / f"rss{k}", 2) for k in rss_n}
        s, b = (rss[k]["vm_hwm_kb"] for k in rss_n)
        held = rss[rss_n[1]]["texts_kb"] - rss[rss_n[0]]["texts_kb"]
        print(
            f"[2] peak RSS of one job: N={rss_n[0]} {s / 1024:.0f} MiB, N={rss_n[1]} {b / 1024:.0f} MiB "
            f"({rss[rss_n[1]]['seconds']:.0f} s), big/small {b / s:.3f} (target <= 1.10)\n"
            f"    difference {(b - s) / 1024:+.1f} MiB: the job's own lists of texts and ids {held / 1024:+.1f} MiB, "
            f"the rest (the extraction's) {(b - s - held) / 1024:+.1f} MiB"
        )
    if "read" not in a.skip:
        reads(a, tmp)


def parts_run(a, model: Path, n: int, tmp: Path) -> None:
    """[1] one part vs four parts, two at a time."""
    run_child(model, 2048, (0, 2048), tmp / "warm", 2)  # page the libraries in
    t_one, one = walled(run_child, model, n, (0, n), tmp / "one", 2)
    pl = plan(n, -(-n // 4 // WINDOW) * WINDOW)
    out = tmp / "four"
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        jobs = [
            pool.submit(walled, run_child, model, n, (e["row_start"], e["row_stop"]), P.parts_dir(out) / e["name"], 1)
            for e in pl["parts"]
        ]
        parts = [j.result() for j in jobs]
    t_parts = time.perf_counter() - t0
    startup = [w - r["seconds"] for w, r in parts]  # a job's process start, imports and model load
    t0 = time.perf_counter()
    P.gather(pl, out)
    t_gather = time.perf_counter() - t0
    same = all(
        np.array_equal(A.load_layer(out, L, dtype=None)[0], A.load_layer(tmp / "one", L, dtype=None)[0])
        for L in A.list_layers(tmp / "one")
    )
    print(
        f"[1] one two-thread job {n / t_one:8.0f} texts/s; {len(pl['parts'])} parts, two one-thread jobs at a time "
        f"{n / t_parts:8.0f} texts/s (gather {t_gather:.2f} s); ratio {t_one / t_parts:.3f} (target >= 0.95); "
        f"gathered == one part bit for bit: {same}"
    )
    print(
        f"    start-up per job (process wall time less its extraction): one job {t_one - one['seconds']:.1f} s, the "
        f"parts {min(startup):.1f}-{max(startup):.1f} s; extraction alone {n / one['seconds']:.0f} vs "
        f"{n / (sum(r['seconds'] for _, r in parts) / 2):.0f} texts/s (two parts at a time)"
    )


def walled(fn, *args) -> tuple[float, dict]:
    """``(wall seconds, fn(*args))``."""
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def reads(a, tmp: Path) -> None:
    """[3] gathered vs single file, [4] verified reads vs np.load."""

    # 3. gathered vs single file, 4. verified reads vs np.load: shards of a paper model's width, written by the
    # workflow's own writer (random rows: a width-64 model's layer is too small to time reads by)
    rn, rd = a.read_shape
    wide, wide_parts = tmp / "wide_one", tmp / "wide_four"
    synthetic_shard(wide, rn, rd, (0, rn))
    wpl = plan(rn, -(-rn // 4 // WINDOW) * WINDOW)
    for e in wpl["parts"]:
        synthetic_shard(P.parts_dir(wide_parts) / e["name"], rn, rd, (e["row_start"], e["row_stop"]))
    P.gather(wpl, wide_parts)
    L = 1
    X = A.load_layer(wide, L, dtype=None)[0]
    assert np.array_equal(X, A.load_layer(wide_parts, L, dtype=None)[0])
    npy = tmp / "same.npy"
    np.save(npy, X)
    single = uncached(lambda: A.load_layer(wide, L, dtype=None))
    gathered = uncached(lambda: A.load_layer(wide_parts, L, dtype=None))
    t_single, t_gathered = timed(single), timed(gathered)
    print(
        f"[3] read a layer ({X.shape[0]} x {X.shape[1]} {X.dtype}, {X.nbytes / 1e6:.1f} MB), verified: single "
        f"file {t_single * 1e3:.2f} ms, gathered over {len(wpl['parts'])} parts {t_gathered * 1e3:.2f} ms; ratio "
        f"{t_single / t_gathered:.3f} (target >= 0.9)"
    )
    base = timed(lambda: np.load(npy))
    sha_only = uncached(lambda: _with_sha256(lambda: A.load_layer(wide, L, dtype=None)))

    def rows_first():  # iter_layers past its first layer: the run's ids are decoded already, the rows not
        rowread._VERIFIED.clear()
        return A.load_layer(wide, L, dtype=None)

    rows = {
        "load_layer(verify=False)": lambda: A.load_layer(wide, L, verify=False, dtype=None),
        "load_layer, sha256": sha_only,
        "load_layer, xxh3 (default)": single,
        "  the same, ids known": rows_first,
        "load_layer, verified earlier": lambda: A.load_layer(wide, L, dtype=None),
    }
    print(f"[4] np.load {base * 1e3:.2f} ms")
    for k, fn in rows.items():
        t = timed(fn)
        print(f"    {k:30s} {t * 1e3:7.2f} ms   ratio {base / t:.3f}  (target >= 0.8)")
    # what a first verified read adds to reading the rows, each part alone (warm caches: after a 67 MB read the
    # same steps take 2-3x longer), as a share of np.load
    from repgeom.activations.layout import _sha_array

    ids_args = _ids_args(A.shard_path(wide, L))
    piece = X[: max(1, (1 << 20) // X[0].nbytes)]  # 1 MB of rows, hashed as often as the layer holds such pieces
    parts = {
        "xxh3 of the layer from memory": lambda: _sha_array(X, "xxh3"),
        "the same bytes in cache": lambda: [_sha_array(piece, "xxh3") for _ in range(-(-X.shape[0] // len(piece)))],
        "open + attribute checks": lambda: A.check_shard(A.shard_path(wide, L), verify=False),
        "ids decoded and checked": lambda: shardfile._read_ids(*ids_args),
    }
    for k, fn in parts.items():
        t = timed(uncached(fn))
        print(f"    {k:30s} {t * 1e3:7.2f} ms   {t / base:.3f} of np.load")
    page_aligned(X, tmp)
    float32_reads(wide, L, npy)


def page_aligned(X: np.ndarray, tmp: Path) -> None:
    """[5] the destination's placement within a page, for rows that sit page-aligned in the file."""
    import h5py

    path = tmp / "page_aligned.h5"
    with h5py.File(path, "w", alignment_threshold=1, alignment_interval=4096) as f:
        f.create_dataset("activations", data=X, chunks=(256, X.shape[1]))
    with h5py.File(path, "r", locking=False) as f:
        ds = f["activations"]
        off = rowread._chunk_infos(ds)[0].byte_offset
        t_np = timed(lambda: rowread._read_activations(ds, path, np.empty(ds.shape, ds.dtype)))
        t_al = timed(lambda: rowread._read_activations(ds, path))
        assert np.array_equal(rowread._read_activations(ds, path), X)
    place = np.empty(X.shape, X.dtype).ctypes.data % 4096
    print(
        f"[5] rows at file offset {off} (page offset {off % 4096}): into numpy's placement (page offset {place}) "
        f"{t_np * 1e3:.2f} ms, into the file offset's alignment {t_al * 1e3:.2f} ms; ratio {t_np / t_al:.2f}"
    )


def float32_reads(wide: Path, L: int, npy: Path) -> None:
    """[6] the default read (float32 from float16) against np.load + astype, with each cast; its peak memory."""
    import tracemalloc

    from repgeom.activations import widen

    base = timed(lambda: np.load(npy).astype(np.float32))
    npy32 = npy.with_name("same_float32.npy")
    np.save(npy32, np.load(npy).astype(np.float32))
    as_f32 = timed(lambda: np.load(npy32))
    npy32.unlink()
    print(
        f"[6] np.load + astype(float32) {base * 1e3:.2f} ms (the default read: float32 from a float16 shard); "
        f"np.load of the layer saved as float32 {as_f32 * 1e3:.2f} ms"
    )
    real = rowread.converter
    for name, cast in (("numpy's look-up", widen._f16_lookup), ("torch's cast", widen._f16_torch)):
        rowread.converter = lambda s, d, cast=cast: cast
        try:
            for what, fn in (
                ("verified", uncached(lambda: A.load_layer(wide, L))),
                ("unverified", lambda: A.load_layer(wide, L, verify=False)),
            ):
                t = timed(fn)
                print(
                    f"    {name + ', ' + what:30s} {t * 1e3:7.2f} ms   ratio {base / t:.3f}  ({as_f32 / t:.3f} of the latter)"
                )
        finally:
            rowread.converter = real

    def peak(read) -> int:
        rowread._VERIFIED.clear()
        tracemalloc.start()
        try:
            X = read()
            return tracemalloc.get_traced_memory()[1] - X.nbytes
        finally:
            tracemalloc.stop()

    X = A.load_layer(wide, L)[0]
    cast_as_read = peak(lambda: A.load_layer(wide, L)[0])
    then_astype = peak(lambda: A.load_layer(wide, L, dtype=None)[0].astype(np.float32))
    print(
        f"    memory beside the {X.nbytes / 1e6:.0f} MB array: cast as read {cast_as_read / 1e6:.1f} MB, float16 read "
        f"then astype {then_astype / 1e6:.1f} MB"
    )


def _ids_args(path: Path) -> tuple:
    """``(ids, path, attributes, verify)`` of a shard for ``_read_ids``, the ids read into memory (an array stands in
    for their dataset: ``ids[()]`` is the array), so that only their decoding and check are timed."""
    import h5py

    with h5py.File(path, "r") as f:
        return f["ids"][()], path, shardfile._shard_attrs(f), True


def _with_sha256(fn):
    """Run ``fn`` with readers verifying by sha256 (as shards without an xxh3 checksum are)."""
    orig = rowread.checksum_key
    rowread.checksum_key = lambda attrs: ("sha256", "sha256_activations")
    try:
        return fn()
    finally:
        rowread.checksum_key = orig


if __name__ == "__main__":
    main()
