"""Memory, GPU and disk planning from a model's size: exact from prepared weights, else declared; printed by a
dry run of the paper config before anything is downloaded."""

import re

import pytest
from conftest import ROOT, snakemake

from repgeom import planning
from repgeom.architectures import build_tiny
from repgeom.configure import stages
from repgeom.configure.config import one_model_config
from repgeom.models import prepare


def test_size_from_prepared_weights_is_exact(tmp_path):
    from transformers import AutoModel

    folder = build_tiny("qwen2", tmp_path / "qwen2")
    cfg = one_model_config("m", {"runtime": "decoder", "source": {"type": "local", "path": str(folder)}})
    prepare(stages.prepare_params(cfg, "m"), tmp_path / "prepared")
    size = planning.model_size(cfg["models"]["m"], tmp_path / "prepared")
    model = AutoModel.from_pretrained(folder)
    assert size.source == "prepared weights" and (size.hidden_size, size.num_layers) == (64, 3)
    assert size.parameters >= model.num_parameters()  # the checkpoint also holds the LM head
    assert planning.model_size({"parameters": 5e8}, tmp_path / "absent").source == "declared parameters"
    assert planning.model_size({}, None) is None


def test_estimate_arithmetic():
    size = planning.ModelSize(8e9, 4096, 36, "declared parameters")
    est = planning.estimate(size, dtype="bfloat16", batch_size=16, max_length=512, n_texts=1000, positions=2)
    assert est.weights_gib == pytest.approx(8e9 * 2 / 2**30, abs=0.01) and est.gpus == 1
    assert est.activations_gib == pytest.approx(16 * 512 * 4096 * 24 * 2 / 2**30, abs=0.01)
    assert est.disk_mb == pytest.approx(1000 * 36 * 2 * 4096 * 2 * 1.05 / 2**20, abs=1)
    assert est.mem_mb > 2 * 8e9 * 2 / 2**20
    small = planning.estimate(planning.ModelSize(1.35e8, None, None, "x"), dtype="float32", batch_size=8, max_length=64)
    assert small.gpus == 0 and small.disk_mb is None


def test_paper_dry_run_prints_the_plan_and_asks_for_gpus(tmp_path):
    proc = snakemake(tmp_path, "--dry-run", configfile=ROOT / "config/paper.yaml")
    out = proc.stdout + proc.stderr
    assert re.search(
        r"plan embeddings/qwen3-embedding-8b: 7\.57B parameters \(declared parameters\); weights 14\.10 GiB", out
    )
    assert re.search(r"plan activations/gpt2-medium/numbers: 0\.355B parameters .*GPUs 0, disk \d+ MB", out), out[
        -3000:
    ]
