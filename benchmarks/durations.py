"""The time model of ``repgeom.durations`` against a finished run's measured job times, on the machine it ran on.

    python benchmarks/durations.py --run DIR [--configfile F ...] [--gpu-check gpu_check.json]

DIR is a workflow folder as a run left it (``benchmarks/tour.py --keep DIR`` makes one; it holds the prepared
models, the corpora and ``results/benchmarks``; remake its corpora with the run's config if another config has
replaced them since). The CPU's rates are measured here with the config's ``job_threads``; each
GPU-capable job's CPU estimate is set beside the seconds its Snakemake benchmark file recorded (an activation job's
parts and gather summed). Prints per job and per rule the ratio estimate / measured, their geometric mean and
spread, and then the planned GPU time per target (datasheet rates, or fitted to ``--gpu-check``). Run it on the
machine the run was made on, with nothing else running (the jobs it compares ran two at a time on two cores).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def measured(run: Path) -> dict[str, float]:
    """Seconds per job from ``results/benchmarks`` (activation parts summed into their dataset's job)."""
    out: dict[str, float] = defaultdict(float)
    base = run / "results/benchmarks"
    for f in base.rglob("*.tsv"):
        with open(f, newline="") as fh:
            s = float(next(csv.DictReader(fh, delimiter="\t"))["s"])
        job = str(f.relative_to(base).with_suffix(""))
        if ".parts/" in job:
            job = job.split(".parts/")[0]
        out[job] += s
    return dict(out)


def main() -> None:
    from repgeom import durations

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--configfile", nargs="+", default=["config/config.yaml"], help="relative to --run")
    ap.add_argument("--gpu-check", type=Path)
    a = ap.parse_args()
    check = a.gpu_check.resolve() if a.gpu_check else None  # given from here, read from the run's folder
    os.chdir(a.run)
    config = durations.load_config(a.configfile)
    cpu, gpu = durations.device_rates(config, check)
    print(durations.describe(cpu))
    print(durations.describe(gpu))
    got = measured(Path("."))
    work = durations.config_work(config)
    by_rule: dict[str, list[float]] = defaultdict(list)
    print("| job | estimate | measured | ratio | terms (estimate) |\n|---|---|---|---|---|")
    for w in work:
        if w.job not in got:
            continue
        est, terms = cpu.total(w), cpu.seconds(w)
        ratio = est / got[w.job]
        by_rule[durations.rule_of(w.job)].append(ratio)
        parts = ", ".join(f"{k} {v:.0f}" for k, v in terms.items() if v >= 0.5)
        print(f"| {w.job} | {est:.0f} s | {got[w.job]:.0f} s | {ratio:.2f} | {parts} |")
    print("\nper rule: geometric mean of estimate / measured [min, max] over its jobs")
    all_r = [r for rs in by_rule.values() for r in rs]
    for rule, rs in sorted(by_rule.items()):
        print(f"  {rule}: {_gmean(rs):.2f} [{min(rs):.2f}, {max(rs):.2f}] over {len(rs)} jobs")
    if all_r:
        print(f"  all: {_gmean(all_r):.2f} [{min(all_r):.2f}, {max(all_r):.2f}] over {len(all_r)} jobs")
    print(f"\nplanned per target ({gpu.name}):")
    print(durations.table(work, gpu, cpu))


def _gmean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


if __name__ == "__main__":
    main()
