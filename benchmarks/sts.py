"""Quality benchmark of the FREEZE study: the full progression on the real STS-B (not a CI test).

Runs the STS study of a config (default: config/config.yaml, SmolLM2-135M on the full STS-B with GenericsKB
pretraining, the plain and PromptEOL templates, three seeds) through Snakemake, then prints the progression and
zero-shot tables, the time of each stage (from the rules' benchmark files) and whether the paper's ordering holds:

    AE + log-var >= siamese > MLP on cosines > best single-layer cosine

checked on the test means (every choice inside a variant was made on dev). Usage:

    python benchmarks/sts.py [--configfile config/config.yaml] [--cores 2] [--dry-run]
    python benchmarks/sts.py --configfile benchmarks/configs/sts_zero_shot.yaml   # zero-shot, both decoders
    python benchmarks/sts.py --configfile config/config.yaml benchmarks/configs/sts_both_decoders.yaml
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["sts"]  # the study's target rule: its tables and figures
ORDER = ["ae_logvar", "siamese", "mlp", "best_layer"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", nargs="+", default=[str(ROOT / "config/config.yaml")])
    ap.add_argument("--cores", default="2")
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args()
    # targets before --configfile, which takes several values
    cmd = [sys.executable, "-m", "snakemake", *TARGETS, "--cores", a.cores, "--configfile", *a.configfile]
    if a.dry_run:
        cmd.append("-n")
    subprocess.run(cmd, cwd=ROOT, check=True)
    if a.dry_run:
        return 0
    print((ROOT / "results/sts/progression.md").read_text())
    print((ROOT / "results/sts/zero_shot.md").read_text())
    rows = []
    for f in sorted((ROOT / "results/benchmarks").glob("**/*.tsv")):
        rel = f.relative_to(ROOT / "results/benchmarks")
        corpus = rel.stem.split("@")[0]  # corpus@template
        if rel.parts[0] == "sts" or (rel.parts[0] == "activations" and corpus in ("stsb", "genericskb", "snli")):
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
    for (model, template, pooling), g in df.groupby(["model", "template", "pooling"], sort=False):
        m = g.set_index("variant")
        if not set(ORDER) <= set(m.index):
            continue
        t, d = m.test_pearson, m.dev_pearson
        holds = t["ae_logvar"] >= t["siamese"] > t["mlp"] > t["best_layer"]
        print(
            f"{model} / {template} / {pooling}: paper ordering on test Pearson {'holds' if holds else 'does NOT hold'}: "
            + " | ".join(f"{v} {t[v]:.2f} (dev {d[v]:.2f})" for v in ORDER)
            + f"; best variant on dev: {d.idxmax()} (test {t[d.idxmax()]:.2f}; paper best 76.86)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
