"""Cost and result of the LoRA → soup vs SLERP study on the default config (not a CI test).

Runs the merging targets of a config (default: config/config.yaml: all-MiniLM-L6-v2, 3 seeds × 120 LoRA steps,
the paper's evaluation windows, STS-B dev) through Snakemake, then prints the variants table, the verdicts, and
the cost measured in this one run: training steps/s per seed, seconds per variant evaluation (from the scores
files), the job time per stage and per seed (from the rules' benchmark files), and the disk the variant folders
take. Usage:

    python benchmarks/merging.py [--configfile config/config.yaml] [--cores 2] [--dry-run | --report-only]

``--report-only`` prints the figures of the results already there without running Snakemake.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", default=str(ROOT / "config/config.yaml"))
    ap.add_argument("--cores", default="2")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args()
    from repgeom.configure.config import load_yaml, validate_config
    from repgeom.configure.stages import merging_models

    cfg = validate_config(load_yaml(a.configfile))
    models = merging_models(cfg)
    targets = [f"results/merging/{m}/{f}" for m in models for f in ("summary.md", "verdict.md")]
    targets += [f"results/plots/merging/{m}/{f}.png" for m in models for f in ("tradeoff", "tsne")]
    cmd = [sys.executable, "-m", "snakemake", *targets, "--cores", a.cores, "--configfile", a.configfile]
    if a.dry_run:
        cmd.append("-n")
    if not a.report_only:
        subprocess.run(cmd, cwd=ROOT, check=True)
    if a.dry_run:
        return 0
    for m in models:
        out = ROOT / "results/merging" / m
        print((out / "summary.md").read_text())
        print((out / "verdict.md").read_text())
        rows = []
        for seed in cfg["merging"]["seeds"]:
            run = out / f"seed_{seed}"
            rec = json.loads((run / "adapters/recipe.json").read_text())
            scores = json.loads((run / "scores.json").read_text())
            per_variant = [v["seconds"]["total"] for v in scores["variants"]]
            jobs = {}
            for stage in ("train", "variants", "scores"):
                b = ROOT / f"results/benchmarks/merging/{m}/seed_{seed}/{stage}.tsv"
                if b.exists():
                    t = pd.read_csv(b, sep="\t")
                    jobs[f"{stage}_job_s"] = float(t["s"].iloc[-1])
                    jobs[f"{stage}_rss_mb"] = float(t["max_rss"].iloc[-1])
            size = sum(p.stat().st_size for p in (run / "variants").rglob("*") if p.is_file())
            rows.append(
                {
                    "seed": seed,
                    "steps": rec["train"]["steps"],
                    "steps_per_s": rec["steps_per_second"],
                    "train_s": rec["train_seconds"],
                    "variants": len(per_variant),
                    "s_per_variant_eval": sum(per_variant) / len(per_variant),
                    **jobs,
                    "job_s_total": sum(v for k, v in jobs.items() if k.endswith("job_s")),
                    "variants_gb": size / 1e9,
                }
            )
        t = pd.DataFrame(rows)
        print(t.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
        b = ROOT / f"results/benchmarks/merging/{m}/base/scores.tsv"
        base_s = float(pd.read_csv(b, sep="\t")["s"].iloc[-1]) if b.exists() else float("nan")
        print(
            f"{m}: {t.job_s_total.mean() / 60:.1f} min of job time per seed, base scoring {base_s:.0f} s, "
            f"{(t.job_s_total.sum() + base_s) / 60:.1f} min of job time in all; "
            f"one variant evaluation {t.s_per_variant_eval.mean():.1f} s; training {t.steps_per_s.mean():.3f} "
            f"steps/s; variant folders {t.variants_gb.sum():.2f} GB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
