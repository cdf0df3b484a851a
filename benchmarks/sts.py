"""Quality benchmark of the FREEZE study: the full progression on the real STS-B (not a CI test).

Runs the STS targets of a config (default: config/config.yaml, SmolLM2-135M on the full STS-B with GenericsKB
pretraining, both poolings, three seeds) through Snakemake, then prints the progression table, the time of each
stage (from the rules' benchmark files) and whether the paper's ordering holds:

    AE + log-var >= siamese > MLP on cosines > best single-layer cosine

checked on the test means (every choice inside a variant was made on dev). Usage:

    python benchmarks/sts.py [--configfile config/config.yaml] [--cores 2] [--dry-run]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TARGETS = [
    "results/sts/progression.md",
    "results/sts/worst_errors.md",
    "results/plots/sts/scatter.png",
    "results/plots/sts/layer_correlation.png",
    "results/plots/sts/ae_loss.png",
]
ORDER = ["ae_logvar", "siamese", "mlp", "best_layer"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", default=str(ROOT / "config/config.yaml"))
    ap.add_argument("--cores", default="2")
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args()
    # targets before --configfile, which takes several values
    cmd = [sys.executable, "-m", "snakemake", *TARGETS, "--cores", a.cores, "--configfile", a.configfile]
    if a.dry_run:
        cmd.append("-n")
    subprocess.run(cmd, cwd=ROOT, check=True)
    if a.dry_run:
        return 0
    print((ROOT / "results/sts/progression.md").read_text())
    rows = []
    for f in sorted((ROOT / "results/benchmarks").glob("**/*.tsv")):
        rel = f.relative_to(ROOT / "results/benchmarks")
        if rel.parts[0] == "sts" or (rel.parts[0] == "activations" and rel.stem in ("stsb", "genericskb", "snli")):
            b = pd.read_csv(f, sep="\t")
            rows.append(
                {
                    "job": str(rel.with_suffix("")),
                    "seconds": float(b["s"].iloc[-1]),
                    "max_rss_mb": float(b["max_rss"].iloc[-1]),
                }
            )
    t = pd.DataFrame(rows)
    print(t.to_string(index=False))
    print(f"total: {t.seconds.sum() / 60:.1f} min of job time")
    df = pd.read_csv(ROOT / "results/sts/progression.tsv", sep="\t")
    for (model, pooling), g in df.groupby(["model", "pooling"], sort=False):
        m = g.set_index("variant")
        if not set(ORDER) <= set(m.index):
            continue
        t, d = m.test_pearson, m.dev_pearson
        holds = t["ae_logvar"] >= t["siamese"] > t["mlp"] > t["best_layer"]
        print(
            f"{model} / {pooling}: paper ordering on test Pearson {'holds' if holds else 'does NOT hold'}: "
            + " | ".join(f"{v} {t[v]:.2f} (dev {d[v]:.2f})" for v in ORDER)
            + f"; best variant on dev: {d.idxmax()} (test {t[d.idxmax()]:.2f}; paper best 76.86)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
