"""Run every tiny config at two commits and compare every numeric artifact they produce.

    python benchmarks/compare_tiny.py run REV OUT          # the tiny configs at commit REV, into OUT/<config>/
    python benchmarks/compare_tiny.py compare OUT_A OUT_B  # every numeric artifact of A against B
    python benchmarks/compare_tiny.py both REV_A REV_B OUT # both runs, then the comparison
    ... run|both ... --configs tiny_similarity.yaml        # only these configs (of tests/configs/)

A refactor that must not change a number is checked this way: HDF5 datasets (embeddings, activation shards),
JSON (metrics, scores, STS results), TSV tables and torch state dicts are compared value by value; what differs
between two runs by design is ignored (write times, timings, run ids, code versions, library versions, absolute
paths). Both runs happen on this machine, so "the same" means bit for bit; a value that differs is printed with
its largest difference. Exit status 1 when anything differs or is missing on one side.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CONFIGS = ("tiny.yaml", "tiny_layers.yaml", "tiny_sts.yaml", "tiny_merging.yaml", "tiny_similarity.yaml")
# provenance that differs between two runs by design (times, ids, code and library versions, folders)
VOLATILE = {
    "created",
    "load_seconds",
    "encode_seconds",
    "texts_per_second",
    "seconds",
    "wall_seconds",
    "run_id",
    "code_version",
    "versions",
    "library_versions",
    "path",
    "folder",
    "elapsed",
    "train_seconds",
    "time",
    "started",
    "finished",
    "hostname",
    "host",
    "prepared_at",
    "prepared",
    "steps_per_second",
    "samples_per_second",
    "train_runtime",
    "fetched_at",
    "log",
}
NUMERIC = (".h5", ".json", ".tsv", ".pt", ".safetensors")


def _config_path(tree: Path, name: str) -> Path:
    """A tiny config of ``tree`` by name: ``tiny.yaml`` is the catalog's ``.test/config/config.yaml`` (it was
    ``tests/configs/tiny.yaml`` before), the others live in ``tests/configs/``."""
    for p in (tree / "tests/configs" / name, tree / ".test/config/config.yaml"):
        if p.exists() and (name == "tiny.yaml" or p.parent.name == "configs"):
            return p
    raise FileNotFoundError(f"{tree}: no tiny config {name!r}")


def run(rev: str, out: Path, configs=CONFIGS) -> None:
    """The tiny configs with the workflow and library of commit ``rev`` (a detached worktree)."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="repgeom-rev-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev], check=True, capture_output=True
        )
        try:
            for name in configs:
                wd = out / Path(name).stem
                wd.mkdir(exist_ok=True)
                cfg = wd / "config.yaml"
                cfg.write_text(_config_path(tree, name).read_text().replace("SHARED", str(SHARED)))
                cmd = [
                    sys.executable,
                    "-m",
                    "snakemake",
                    "--snakefile",
                    str(next(p for p in (tree / "workflow/Snakefile", tree / "Snakefile") if p.exists())),
                    "--directory",
                    str(wd),
                    "--cores",
                    "2",
                    "--rerun-incomplete",
                    "--configfile",
                    str(cfg),
                ]
                print(f"[{rev}] {name} ...", flush=True)
                proc = subprocess.run(cmd, capture_output=True, text=True, cwd=wd)
                if proc.returncode:
                    sys.exit(f"{name} at {rev} failed:\n{proc.stderr[-4000:]}")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


#: lists that a library writes from a set, in an order that follows Python's hash seed (PEFT's target_modules)
UNORDERED = {"target_modules"}


def _numbers(a, b, where: str, diffs: list) -> None:
    """Walk two JSON values side by side, recording every differing leaf."""
    if where.rsplit(".", 1)[-1] in UNORDERED and isinstance(a, list) and isinstance(b, list):
        a, b = sorted(map(str, a)), sorted(map(str, b))
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in VOLATILE:
                continue
            if k not in a or k not in b:
                diffs.append((f"{where}.{k}", "only on one side"))
            else:
                _numbers(a[k], b[k], f"{where}.{k}", diffs)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.append((where, f"lengths {len(a)} vs {len(b)}"))
        for i, (x, y) in enumerate(zip(a, b)):
            _numbers(x, y, f"{where}[{i}]", diffs)
    elif isinstance(a, float) and isinstance(b, float):
        if not (a == b or (math.isnan(a) and math.isnan(b))):
            diffs.append((where, f"{a!r} vs {b!r}"))
    elif a != b and not (isinstance(a, str) and isinstance(b, str) and "/" in a and "/" in b):
        diffs.append((where, f"{a!r} vs {b!r}"))


def _compare_h5(pa: Path, pb: Path, diffs: list) -> None:
    import h5py
    import numpy as np

    with h5py.File(pa, "r", locking=False) as fa, h5py.File(pb, "r", locking=False) as fb:
        names_a, names_b = [], []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        for n in sorted(set(names_a) | set(names_b)):
            if n not in fa or n not in fb:
                diffs.append((n, "only on one side"))
            elif isinstance(fa[n], h5py.Dataset):
                x, y = fa[n][()], fb[n][()]
                if x.shape != y.shape or x.dtype != y.dtype:
                    diffs.append((n, f"{x.shape} {x.dtype} vs {y.shape} {y.dtype}"))
                elif not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
                    d = np.abs(x.astype(float) - y.astype(float)).max() if x.dtype.kind in "fiu" else "values"
                    diffs.append((n, f"max |diff| {d}"))


def _compare_tsv(pa: Path, pb: Path, diffs: list) -> None:
    import pandas as pd

    if not pa.read_bytes().strip() or not pb.read_bytes().strip():  # an empty table (no transfer set): no columns
        if pa.read_bytes() != pb.read_bytes():
            diffs.append(("table", f"one is empty: {pa.stat().st_size} vs {pb.stat().st_size} bytes"))
        return
    a, b = pd.read_csv(pa, sep="\t"), pd.read_csv(pb, sep="\t")
    a = a[[c for c in a.columns if c not in VOLATILE]]
    b = b[[c for c in b.columns if c not in VOLATILE]]
    try:
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    except AssertionError as e:
        diffs.append(("table", str(e).splitlines()[0] + " " + " ".join(str(e).splitlines()[1:4])))


def _compare_pt(pa: Path, pb: Path, diffs: list) -> None:
    import torch

    def flat(x, prefix=""):
        if isinstance(x, dict):
            for k, v in x.items():
                yield from flat(v, f"{prefix}.{k}")
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                yield from flat(v, f"{prefix}[{i}]")
        else:
            yield prefix, x

    if pa.suffix == ".safetensors":
        from safetensors.torch import load_file

        a, b = dict(flat(load_file(pa))), dict(flat(load_file(pb)))
    else:
        a = dict(flat(torch.load(pa, weights_only=True)))
        b = dict(flat(torch.load(pb, weights_only=True)))
    for k in sorted(set(a) | set(b)):
        if k.split(".")[-1] in VOLATILE:
            continue
        x, y = a.get(k), b.get(k)
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.shape != y.shape or not torch.equal(x, y):
                diffs.append((k, "tensors differ"))
        elif x != y and not (isinstance(x, float) and math.isnan(x) and math.isnan(y)):
            diffs.append((k, f"{x!r} vs {y!r}"))


def compare(a: Path, b: Path) -> int:
    """Every numeric artifact under ``a`` against its namesake under ``b``; prints one line per file."""
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.suffix in NUMERIC and _kept(p, a)}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.suffix in NUMERIC and _kept(p, b)}
    bad = 0
    for rel in sorted(files_a | files_b):
        if rel not in files_a or rel not in files_b:
            print(f"MISSING  {rel} (only in {'A' if rel in files_a else 'B'})")
            bad += 1
            continue
        diffs: list = []
        pa, pb = a / rel, b / rel
        if rel.suffix == ".h5":
            _compare_h5(pa, pb, diffs)
        elif rel.suffix == ".json":
            _numbers(json.loads(pa.read_text()), json.loads(pb.read_text()), "", diffs)
        elif rel.suffix == ".tsv":
            _compare_tsv(pa, pb, diffs)
        else:
            _compare_pt(pa, pb, diffs)
        print(f"{'SAME' if not diffs else 'DIFFERS'}  {rel}")
        for where, what in diffs[:5]:
            print(f"           {where}: {what}")
        bad += bool(diffs)
    print(f"{len(files_a | files_b)} numeric artifacts compared, {bad} differ or are missing")
    return bad


def _kept(p: Path, top: Path) -> bool:
    """Artifacts, not Snakemake's own bookkeeping, logs, benchmarks or model weights copied from a package."""
    parts = p.relative_to(top).parts
    return not ({".snakemake", "logs", "benchmarks"} & set(parts)) and "models" not in parts[1:3]


if __name__ == "__main__":
    cmd, *args = sys.argv[1:] or ["help"]
    configs = CONFIGS
    if "--configs" in args:
        configs = tuple(args[args.index("--configs") + 1 :])
        args = args[: args.index("--configs")]
    if cmd == "run":
        run(args[0], Path(args[1]), configs)
    elif cmd == "compare":
        sys.exit(1 if compare(Path(args[0]), Path(args[1])) else 0)
    elif cmd == "both":
        out = Path(args[2])
        run(args[0], out / "A", configs)
        run(args[1], out / "B", configs)
        sys.exit(1 if compare(out / "A", out / "B") else 0)
    else:
        sys.exit(__doc__)
