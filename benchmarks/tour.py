"""A newcomer's first run, measured: the default config (the tour) on a fresh copy of this checkout, then the report.

    python benchmarks/tour.py [--keep DIR] [--cores all]

The copy is made beside this checkout (so that ``../shared/data`` resolves as it does here), with none of its
results, resources, logs or Snakemake state; the weight wheels come from wherever pip gets them (its cache, if
warm: the script says how long model preparation took). Prints the run's and the report's wall time against the
15-minute target, the peak RSS of the largest job against 8 GB, and the ten longest jobs with the share of the run
each study's jobs took.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S, TARGET_RSS_GB = 15 * 60, 8.0
SKIP = {".git", ".venv", "results", "resources", "logs", ".snakemake", ".hypothesis", "report.html"}


def fresh_copy(dest: Path) -> None:
    shutil.copytree(ROOT, dest, ignore=lambda d, names: [n for n in names if n in SKIP or n.endswith(".egg-info")])


def timed(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def job_times(wd: Path) -> list[tuple[float, str]]:
    """(seconds, job) from the heavy jobs' Snakemake benchmark files."""
    out = []
    for f in (wd / "results/benchmarks").rglob("*.tsv"):
        with open(f, newline="") as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        out.append((float(row["s"]), str(f.relative_to(wd / "results/benchmarks").with_suffix(""))))
    return sorted(out, reverse=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--keep", type=Path, help="make the copy here and keep it (default: a sibling folder, removed after)"
    )
    ap.add_argument("--cores", default="all")
    args = ap.parse_args()
    # a sibling of this checkout, so that the config's ../shared/data is the same folder
    wd = args.keep or ROOT.parent / f"repgeom-tour-{os.getpid()}"
    if wd.exists():
        sys.exit(f"{wd} exists: give a new folder")
    fresh_copy(wd)
    try:
        smk = [sys.executable, "-m", "snakemake"]
        run_s = timed([*smk, "--cores", args.cores], wd)
        report_s = timed([*smk, "--report", "report.html"], wd)
        rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        jobs = job_times(wd)
        by_stage: dict[str, float] = defaultdict(float)
        for s, job in jobs:
            by_stage[job.split("/")[0]] += s
        total = sum(by_stage.values()) or 1.0
        print(f"tour: run {run_s / 60:.1f} min + report {report_s:.0f} s = {(run_s + report_s) / 60:.1f} min "
              f"(target <= {TARGET_S / 60:.0f}: ratio {(run_s + report_s) / TARGET_S:.2f})")  # fmt: skip
        print(f"peak RSS of the largest job {rss_gb:.1f} GB (target <= {TARGET_RSS_GB:.0f}: "
              f"ratio {rss_gb / TARGET_RSS_GB:.2f})")  # fmt: skip
        print("job time by stage (benchmark files; jobs run two at a time): " + ", ".join(
            f"{k} {v / 60:.1f} min ({v / total:.0%})" for k, v in sorted(by_stage.items(), key=lambda kv: -kv[1])))  # fmt: skip
        print("longest jobs: " + "; ".join(f"{job} {s:.0f} s" for s, job in jobs[:10]))
    finally:
        if not args.keep:
            shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
