"""The GPU check's CPU mode on a tiny input: it runs with the library alone (no snakemake), writes its JSON and
says what it skipped."""

import json
import subprocess
import sys

from conftest import ROOT


def test_gpu_check_runs_in_cpu_mode(tmp_path):
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--shapes", "tiny", "--n", "8", "--sim-n", "64"]
    cmd += ["--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(out.read_text())
    (row,) = got["shapes"]
    assert row["shape"] == "tiny" and row["texts"] == 8 and row["tokens"] > 8
    # what repgeom.durations.fit_rates reads: the depth, the parameters outside the embedding matrix, the backend
    assert row["layers"] == 3 and 0 < row["body_parameters"] < row["parameters"] and got["backend"] == "cpu"
    assert row["tokens_per_s"] > 0 and 0 < row["vs_bare"] and 0 < row["mfu"] < 1 and row["stage_vs_bare"] > 0
    assert "qwen3-embedding-8b" in got["skipped"] and got["embedding"]["runtime_vs_bare_encode"] > 0
    assert "skipped (too large for cpu)" in proc.stdout and "vs_bare" in proc.stdout
    sim = got["similarity"]  # every SmolLM2 × Gemma-3 layer pair on synthetic shards of 64 rows
    assert sim["texts"] == 64 and sim["pairs"] == 31 * 19 and sim["device"] == "cpu"
    assert sim["read_s"] > 0 and sim["held_vs_read"] > 0 and "layer pairs × 64 texts" in proc.stdout
