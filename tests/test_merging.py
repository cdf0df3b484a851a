"""The merging study's library: merge arithmetic on tiny tensors, training data, LoRA merged vs unmerged, determinism."""

import copy
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from repgeom import merging as M
from repgeom.configure import stages
from repgeom.configure.config import ConfigError, validate_config
from repgeom.params import VariantGrid


# ------------------------------------------------------------------ arithmetic
def test_linear_returns_the_ends_at_0_and_1():
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.equal(M.lerp(a, b, 0.0), a) and torch.equal(M.lerp(a, b, 1.0), b)
    assert torch.allclose(M.lerp(a, b, 0.25), 0.75 * a + 0.25 * b)
    out, fell, _ = M.slerp(a, b, 0.0, threshold=1.0)
    assert torch.allclose(out, a, atol=1e-6) and not fell
    out, _, _ = M.slerp(a, b, 1.0, threshold=1.0)
    assert torch.allclose(out, b, atol=1e-6)


def test_slerp_of_orthogonal_unit_vectors_at_half_has_the_right_angle():
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    out, fell, cos = M.slerp(a, b, 0.5)
    assert not fell and cos == pytest.approx(0.0)
    assert float(out.norm()) == pytest.approx(1.0, abs=1e-6)  # stays on the sphere; lerp would give 0.707
    for end in (a, b):
        assert math.degrees(math.acos(float(out @ end))) == pytest.approx(45.0, abs=1e-4)
    out, _, _ = M.slerp(a, b, 1 / 3)  # a third of the way: 30° from a
    assert math.degrees(math.acos(float(out @ a))) == pytest.approx(30.0, abs=1e-4)
    assert float(M.lerp(a, b, 0.5).norm()) == pytest.approx(math.sqrt(0.5))


def test_slerp_falls_back_to_linear_above_the_threshold_only():
    a = torch.tensor([1.0, 0.0])
    angle = math.acos(0.9995)
    just_above = torch.tensor([math.cos(angle * 0.9), math.sin(angle * 0.9)])  # cos > 0.9995
    just_below = torch.tensor([math.cos(angle * 1.1), math.sin(angle * 1.1)])  # cos < 0.9995
    out, fell, cos = M.slerp(a, just_above, 0.5)
    assert fell and cos > 0.9995 and torch.equal(out, M.lerp(a, just_above, 0.5))
    out, fell, cos = M.slerp(a, just_below, 0.5)
    assert not fell and cos < 0.9995
    assert float(out.norm()) > float(M.lerp(a, just_below, 0.5).norm())  # the arc bulges past the chord
    # antiparallel also counts as parallel (|cos|)
    assert M.slerp(a, -a, 0.5)[1]


def test_state_dict_merges_count_and_keep_unchanged_tensors():
    base = {"w": torch.randn(8, 8), "b": torch.randn(8), "idx": torch.arange(3)}
    tuned = {"w": base["w"] + 0.5 * torch.randn(8, 8), "b": base["b"].clone(), "idx": torch.arange(3)}
    out, stats = M.merge_interpolate("slerp", base, tuned, 0.5, threshold=1.0)
    assert stats["n_interpolated"] == 1 and stats["n_fallback"] == 0
    assert torch.equal(out["b"], base["b"]) and torch.equal(out["idx"], base["idx"])
    g = M.geometry(base, tuned, M.merge_interpolate("linear", base, tuned, 0.3)[0])
    assert g["position"] == pytest.approx(0.3) and g["off_direction"] == pytest.approx(0.0, abs=1e-6)
    assert g["n_changed"] == 1
    soup = M.average([base, tuned])
    assert torch.allclose(soup["w"], (base["w"] + tuned["w"]) / 2)
    assert M.geometry(base, tuned, soup)["position"] == pytest.approx(0.5)
    # task vectors: the linear mix of a and b at t is the same as the plain linear interpolation
    other = {"w": base["w"] + 0.5 * torch.randn(8, 8), "b": base["b"] + 0.1, "idx": torch.arange(3)}
    tv, st = M.merge_task_vectors("linear", base, tuned, other, 0.5)
    assert torch.allclose(tv["w"], (tuned["w"] + other["w"]) / 2, atol=1e-6)
    assert -1 <= st["task_vector_cos"] <= 1
    tvs, st = M.merge_task_vectors("slerp", base, tuned, other, 0.5)
    # nearly orthogonal task vectors: SLERP keeps their length, a linear average shrinks it
    assert float((tvs["w"] - base["w"]).norm()) > float((tv["w"] - base["w"]).norm())
    with pytest.raises(M.MergeError, match="shapes"):
        M.merge_interpolate("linear", base, {**tuned, "w": torch.randn(4, 4)}, 0.5)
    with pytest.raises(M.MergeError, match="tensors differ"):
        M.average([base, {"w": base["w"]}])


# ------------------------------------------------------------------ data
SPEC = {
    "start_offset": None,
    "n_sequences": 10,
    "min_length": 5,
    "max_length": 12,
    "heldout_fraction": 0.2,
    "max_chars": 20000,
    "seed": 0,
}


def test_training_windows_avoid_the_evaluation_range_and_split():
    ev = {"even": [0, 40], "primes": [0, 40]}
    recs = M.training_windows(["even", "primes"], SPEC, ev)
    for fam in ev:
        rows = [r for r in recs if r["family"] == fam]
        assert len(rows) == 10 and sum(r["split"] == "heldout" for r in rows) == 2
        assert min(r["first_index"] for r in rows) >= 40
        spans = sorted((r["first_index"], r["first_index"] + r["n_terms"]) for r in rows)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # disjoint windows
        assert {r["n_terms"] for r in rows} <= set(range(5, 13)) and len({r["n_terms"] for r in rows}) > 1
    evens = [int(x) for r in recs if r["family"] == "even" for x in r["text"].split(", ")]
    assert all(x % 2 == 0 and x >= 80 for x in evens)
    assert M.training_windows(["even", "primes"], SPEC, ev) == recs  # seeded
    with pytest.raises(M.MergeError, match=r"start_offset = 10.*overlap the evaluation windows \[0, 40\)"):
        M.training_windows(["even"], {**SPEC, "start_offset": 10}, ev)
    with pytest.raises(M.MergeError, match="at least 2"):
        M.training_windows(["even"], {**SPEC, "heldout_fraction": 0.05}, ev)


def _config(**merging):
    return {
        "sequences": {"numbers": {"families": ["even", "odd"], "n_sequences": 4, "length": 50}},
        "models": {
            "enc": {"runtime": "sentence-transformers", "source": {"type": "local", "path": "/x"}},
            "dec": {"runtime": "decoder", "source": {"type": "local", "path": "/y"}},
        },
        "data": {"stsb": {"source": {"type": "local", "path": "/z"}}},
        "sts": {"enabled": False},
        "merging": {"models": ["enc"], **merging},
    }


def test_merging_config_errors_name_the_key():
    validate_config(_config())
    cases = [
        ({"models": ["dec"]}, "merging.models' = 'dec': not an enabled sentence-transformers"),
        ({"models": ["ghost"], "enabled": True}, "merging.models' = 'ghost': unknown model"),
        ({"data": {"start_offset": 100}}, "merging.data.start_offset' = 100"),
        ({"data": {"min_length": 9, "max_length": 3}}, "merging.data.min_length' = 9"),
        ({"train": {"steps": 10, "checkpoint_every": 20}}, "merging.train.checkpoint_every' = 20"),
        ({"eval_dataset": "nope", "enabled": True}, "merging.eval_dataset' = 'nope'"),
        ({"train": {"lr": -1}}, "merging.train.lr"),
        ({"variants": {"slerp_t": [1.5]}}, "merging.variants.slerp_t"),
        ({"lora": {"rank": 4}}, "unknown key"),
    ]
    for kw, msg in cases:
        with pytest.raises(ConfigError) as e:
            validate_config(_config(**kw))
        assert msg in str(e.value), (kw, str(e.value))
    # auto: off without its inputs, no error
    cfg = _config()
    del cfg["data"]
    validate_config(cfg)


# ------------------------------------------------------------------ LoRA on the real MiniLM
@pytest.mark.model
def test_merged_and_unmerged_lora_give_the_same_embeddings(prepared_minilm, tmp_path):
    from peft import LoraConfig, get_peft_model

    texts = ["2, 4, 6, 8, 10", "2, 3, 5, 7, 11, 13", "0, 1, 3, 6, 2, 7, 13"]
    model, manifest = M.load_base(prepared_minilm)
    base_module = copy.deepcopy(M.transformer_module(model))
    base = model.encode(texts, convert_to_numpy=True)
    torch.manual_seed(0)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False)  # B ≠ 0
    peft_model = get_peft_model(M.transformer_module(model), cfg)
    M.set_transformer_module(model, peft_model)
    unmerged = model.encode(texts, convert_to_numpy=True)
    peft_model.save_pretrained(tmp_path / "adapter")
    merged_sd = M.merged_state(base_module, tmp_path / "adapter")
    fresh, _ = M.load_base(prepared_minilm)
    M.transformer_module(fresh).load_state_dict(merged_sd)
    merged = fresh.encode(texts, convert_to_numpy=True)
    assert np.abs(unmerged - base).max() > 1e-3  # the adapter does something
    assert np.allclose(merged, unmerged, atol=1e-5)
    assert not any(k for k in merged_sd if "lora" in k)


@pytest.mark.model
def test_training_is_deterministic_for_a_seed(prepared_minilm, tmp_path):
    from safetensors.torch import load_file

    from repgeom.sequences import write_dataset

    write_dataset(
        {"families": ["even", "odd", "primes"], "n_sequences": 2, "length": 6, "max_chars": 200},
        tmp_path / "eval.json",
        "eval",
    )
    M.write_training_data(tmp_path / "eval.json", {**SPEC, "n_sequences": 10}, tmp_path / "data.json")
    cfg = validate_config(
        {
            "merging": {
                "lora": {"r": 4, "alpha": 8, "target_modules": ["query", "value"]},
                "train": {
                    "loss": "batch_hard_soft_margin_triplet",
                    "steps": 3,
                    "checkpoint_every": 2,
                    "batch_size": 12,
                },
            },
            "device": "cpu",
        }
    )
    params = stages.merging_train_params(cfg)
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        rec = M.train_lora(
            prepared_minilm,
            tmp_path / "data.json",
            tmp_path / name,
            seed=seed,
            params=params,
            progress=False,
        )
        assert rec["checkpoints"] == ["step_00002", "step_00003"]
        runs[name] = load_file(tmp_path / name / "step_00003" / "adapter_model.safetensors")
        assert (tmp_path / name / "train_log.tsv").exists()
    assert runs["a"].keys() == runs["b"].keys()
    assert all(torch.equal(runs["a"][k], runs["b"][k]) for k in runs["a"])
    assert any(not torch.equal(runs["a"][k], runs["c"][k]) for k in runs["a"])
    assert not list(tmp_path.glob(".*tmp*"))
    assert M.load_adapters(tmp_path / "a", M.load_base(prepared_minilm)[1]["fingerprint"])["seed"] == 0
    with pytest.raises(Exception, match="another base model"):
        M.load_adapters(tmp_path / "a", "0" * 64)


def test_every_planned_variant_has_a_merge_method():
    """The registry holds the interpolations and task-vector merges; the plan's other methods are built by name."""
    assert list(M.METHODS) == ["linear", "slerp", "tv_linear", "tv_slerp"]
    grid = VariantGrid.from_params(
        {"linear_t": [0.5], "slerp_t": [0.5], "task_vector_t": 0.5, "slerp_threshold": 0.9995}
    )
    plan = M.variant_plan(grid, ["step_1", "step_2"], "seed 1")
    assert {p["method"] for p in plan} - set(M.METHODS) == {"lora_merge", "soup"}
    with pytest.raises(M.MergeError, match="unknown interpolation"):
        M.merge_interpolate("cubic", {}, {}, 0.5)
    with pytest.raises(KeyError, match="did you mean 'slerp'"):
        M.METHODS["slerpp"]


def test_task_vector_merge_does_not_depend_on_the_hash_seed(tmp_path):
    """The task-vector cosine is a float sum over tensors: summed in state-dict order, two interpreters with
    different hash seeds give the same bits (it once iterated over a set)."""
    import subprocess
    import sys

    code = (
        "import sys, torch; sys.path.insert(0, 'src'); from repgeom import merging as M\n"
        "g = torch.Generator().manual_seed(0)\n"
        "base = {f'w{i}': torch.randn(64, generator=g) for i in range(40)}\n"
        "a = {k: v + torch.randn(64, generator=g) for k, v in base.items()}\n"
        "b = {k: v + torch.randn(64, generator=g) for k, v in base.items()}\n"
        "print(repr(M.merge_task_vectors('slerp', base, a, b, 0.5)[1]['task_vector_cos']))\n"
    )
    root = Path(__file__).resolve().parents[1]
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=root,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3", "4")
    }
    assert len(outs) == 1, outs
