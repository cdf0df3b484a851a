"""GPU check: the activation stage and the embedding runtime at the paper's model shapes, in one command.

Made for a GPU machine that downloads nothing and receives only this source tree (no weights) and has torch,
transformers, sentence-transformers, h5py, scikit-learn and pandas but not snakemake or gguf: it imports the library
directly and builds random-weight models with the real shapes from their configs, which time like the trained
ones. Per shape, in bfloat16 (float32 on a CPU):

- extraction throughput (texts/s, tokens/s) of the stage's forward path (hooks on every block, pooling, results to
  the host) against a bare forward with the same hooks on the same batches           target >= 0.90
- against a naive loop, one text at a time with ``output_hidden_states``             target >= 10x (GPU)
- for the small shapes, the whole stage (``extract``: shards written and verified) against the same bare forward
- model FLOP utilisation: 2 × parameters outside the embedding matrix (a lookup) × tokens/s over the bf16 matmul
  rate measured here                                                                  target >= 40 % (7-8B)
- peak device memory, the largest batch that fits (doubling until out of memory, capped), and the out-of-memory
  back-off on a batch made too large on purpose
- bf16 against fp32 agreement (mean cosine of the pooled block outputs)
and once: the embedding runtime against bare ``SentenceTransformer.encode`` on a random-weight encoder (>= 0.95),
and the similarity stage's linear and debiased CKA of every SmolLM2-135M × Gemma-3-270m layer pair (31 × 19, on
15 457 texts on a GPU as for STS-B) with the products on the device, against reading those layers' shards once
(``benchmarks/similarity.py``, synthetic shards of the real shapes)                    target <= 2

    python benchmarks/gpu_check.py                      # every shape that fits the device (CPU: small ones only)
    python benchmarks/gpu_check.py --shapes tiny --n 8  # what the test runs
It writes ``gpu_check.json`` (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


#: (config class, real-shape keyword arguments, parameters in billions roughly, small enough for a CPU)
SHAPES = {
    "tiny": ("GPT2Config", {"n_layer": 3, "n_embd": 64, "n_head": 4, "vocab_size": 512}, True),
    "smollm2-135m": (
        "LlamaConfig",
        {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
         "num_key_value_heads": 3, "vocab_size": 49152, "tie_word_embeddings": True},
        True,
    ),
    "gemma-3-270m": (
        "Gemma3TextConfig",
        {"hidden_size": 640, "intermediate_size": 2048, "num_hidden_layers": 18, "num_attention_heads": 4,
         "num_key_value_heads": 1, "head_dim": 256, "vocab_size": 262144, "sliding_window": 512},
        False,
    ),
    "gpt2-medium": ("GPT2Config", {"n_layer": 24, "n_embd": 1024, "n_head": 16, "vocab_size": 50257}, True),
    "qwen2-0.5b": (
        "Qwen2Config",
        {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
         "num_key_value_heads": 2, "vocab_size": 151936},
        False,
    ),
    "qwen3-embedding-8b": (
        "Qwen3Config",
        {"hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
         "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151665},
        False,
    ),
}  # fmt: skip
SMALL = ("tiny", "smollm2-135m", "gpt2-medium")  # also run through the whole stage (weights saved, extract)


def texts(n: int, length: int) -> list[str]:
    """Numeric sequences as the workflow renders them, lengths varying as in the paper's sets."""
    from repgeom.sequences import build

    fams = ["consecutive", "even", "odd", "primes", "recaman", "composites"]
    recs = build({"families": fams, "n_sequences": -(-n // 6), "length": length, "max_chars": 100000})
    return [r.text for r in recs][:n]


def build_model(shape: str, dtype, device: str):
    """A random-weight base model of ``shape`` on ``device`` in ``dtype``, and a tokenizer (byte-level BPE)."""
    import torch
    import transformers

    from repgeom.activations.attention import ATTN_IMPLEMENTATION
    from repgeom.architectures import tiny_tokenizer

    cls, kw, _ = SHAPES[shape]
    tok = tiny_tokenizer("byte_bpe")
    special = {"pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}
    cfg = getattr(transformers, cls)(**kw, **special)
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.AutoModel.from_config(cfg, dtype=dtype, attn_implementation=ATTN_IMPLEMENTATION)
    return model.eval().requires_grad_(False), tok


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int = 3) -> float:
    """Median seconds of ``fn()`` over interleaved repeats (after one warm-up)."""
    fn()
    out = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def matmul_rate(device: str, dtype) -> float:
    """Measured dense matmul FLOP/s in ``dtype`` on ``device``."""
    import torch

    n = 8192 if device == "cuda" else 1024
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    s = timed(lambda: a @ b, device)
    return 2 * n**3 / s


def bare_forward(model, batches) -> None:
    """The same batches through the model with hooks that keep each block's last-token output (no pooling of
    means, nothing copied to the host): what extraction cannot go below."""
    import torch

    from repgeom.activations import find_blocks

    kept = []
    hooks = [b.register_forward_hook(lambda m, a, o: kept.append(o[0][:, -1] if isinstance(o, tuple) else o[:, -1]))
             for b in find_blocks(model)[1]]  # fmt: skip
    try:
        with torch.inference_mode():
            for batch in batches:
                model(**batch.inputs)
                kept.clear()
    finally:
        for h in hooks:
            h.remove()


def check_shape(shape: str, device: str, dtype, n: int, length: int, batch: int, tmp: Path) -> dict:
    import torch

    from repgeom import activations as A

    model, tok = build_model(shape, dtype, device)
    params = sum(p.numel() for p in model.parameters())
    body = params - model.get_input_embeddings().weight.numel()
    xs = texts(n, length)
    layers = list(range(1, len(A.find_blocks(model)[1]) + 1))
    kw = dict(batch_size=batch, max_length=4096)
    batches = [b for _, _, b in A.batching.iter_windows(model, tok, xs, **kw)]
    n_tok = int(sum(int(b.mask.sum()) for b in batches))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def ours():
        for _ in A.iter_batches(model, tok, xs, layers=layers, positions=("last", "mean"), **kw):
            pass

    t_ours = timed(ours, device)
    t_bare = timed(lambda: bare_forward(model, batches), device)
    sub = xs[: max(2, n // 8)]

    def naive():
        with torch.inference_mode():
            for t in sub:
                model(**tok(t, return_tensors="pt").to(device), output_hidden_states=True)

    t_naive = timed(naive, device, repeats=1) / len(sub) * n
    row = {
        "shape": shape, "parameters": params, "body_parameters": body,
        "layers": len(layers), "texts": n, "tokens": n_tok, "batch": batch,
        "texts_per_s": round(n / t_ours, 1), "tokens_per_s": round(n_tok / t_ours, 1),
        "vs_bare": round(t_bare / t_ours, 3), "vs_naive": round(t_naive / t_ours, 1),
        "mfu": round(2 * body * n_tok / t_ours / matmul_rate(device, dtype), 3),
    }  # fmt: skip
    if device == "cuda":
        row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    row.update(backoff_and_max_batch(model, tok, xs, layers, device, batch))
    row["bf16_vs_fp32_cosine"] = agreement(model, tok, xs[:8], layers, dtype)
    if shape in SMALL:
        row["stage_vs_bare"] = whole_stage(model, tok, xs, batch, t_bare, device, tmp / shape)
    return row


def backoff_and_max_batch(model, tok, xs, layers, device: str, batch: int) -> dict:
    """Double the batch (long texts) until out of memory or the cap; then run a too-large batch through the back-off."""
    from repgeom import activations as A

    if device != "cuda":
        return {"max_batch": "not measured on CPU", "oom_backoff": "not measured on CPU"}
    long = [", ".join(str(i) for i in range(j, j + 700)) for j in range(4096)]
    fits, b = batch, batch
    while b <= 4096:
        try:
            for _ in A.iter_batches(model, tok, long[:b], layers=layers, batch_size=b, max_length=2048):
                pass
            fits, b = b, b * 2
        except Exception as e:  # noqa: BLE001
            if not A.is_oom(e):
                raise
            break
    out = {"max_batch_2048_tokens": fits}
    if b <= 4096:  # it ran out of memory at b: the back-off must finish the same batch
        bo = A.Backoff(model_name="gpu_check")
        for _ in A.iter_batches(model, tok, long[:b], layers=layers, batch_size=b, max_length=2048, backoff=bo):
            pass
        out["oom_backoff"] = [(e["batch"], e["to"]) for e in bo.events]
    return out


def agreement(model, tok, xs, layers, dtype) -> float | str:
    """Mean cosine of pooled block outputs, this dtype against float32."""
    import torch

    from repgeom import activations as A

    if dtype == torch.float32:
        return "float32 run"
    low = A.forward_latents(model, tok, xs, layers=layers, position="mean")
    model.to(torch.float32)
    ref = A.forward_latents(model, tok, xs, layers=layers, position="mean")
    model.to(dtype)
    a, b = torch.from_numpy(low), torch.from_numpy(ref)
    return round(float(torch.nn.functional.cosine_similarity(a, b, dim=-1).mean()), 5)


def whole_stage(model, tok, xs, batch: int, t_bare: float, device: str, folder: Path) -> float:
    """``extract`` end to end (load, forward, shards written and verified) against the bare forward."""
    from repgeom import activations as A

    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    summ = A.extract(xs, [f"t{i}" for i in range(len(xs))], folder, folder.parent / f"{folder.name}_acts",
                     model=folder.name, batch_size=batch, dtype=dtype, device=device, progress=False)  # fmt: skip
    return round(t_bare / summ["encode_seconds"], 3)


def embedding_runtime(device: str, tmp: Path, n: int) -> dict:
    """The sentence-transformers runtime against bare ``SentenceTransformer.encode`` (random MiniLM shape)."""
    from sentence_transformers import SentenceTransformer

    from repgeom.architectures import PaperModel, build_tiny
    from repgeom.configure import stages
    from repgeom.configure.config import one_model_config
    from repgeom.embeddings import load_runtime
    from repgeom.models import prepare

    card = PaperModel("xlm-roberta", "sentence-transformers", "mean", True, "random")
    folder = build_tiny("xlm-roberta", tmp / "encoder", sentence_transformers=card)
    cfg = one_model_config(
        "enc", {"runtime": "sentence-transformers", "source": {"type": "local", "path": str(folder)}}
    )
    prepare(stages.prepare_params(cfg, "enc"), tmp / "enc")
    rt = load_runtime(tmp / "enc", stages.embed_params(cfg, "enc").replace(device=device))
    bare = SentenceTransformer(str(folder), device=device)
    xs = texts(n, 50)
    t_rt = timed(lambda: rt.encode(xs, 64, progress=False), device)
    t_bare = timed(lambda: bare.encode(xs, batch_size=64), device)
    return {"runtime_vs_bare_encode": round(t_bare / t_rt, 3)}


def similarity_check(device: str, tmp: Path, n: int) -> dict:
    """``benchmarks/similarity.py`` on synthetic shards of ``n`` rows, the products on ``device``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_similarity", ROOT / "benchmarks/similarity.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    t = time.perf_counter()
    dirs = [bench.synthetic_shards(tmp / "similarity", m, n) for m in (bench.A, bench.B)]
    write = time.perf_counter() - t
    r = bench.measure(dirs, device, ("read", "held"))  # the re-read path is memory-bounded, not the target
    return {
        "texts": n, "pairs": r["read"]["layers"][0] * r["read"]["layers"][1], "device": r["held"]["device"],
        "write_s": round(write, 1), "read_s": round(r["read"]["seconds"], 2),
        "held_s": round(r["held"]["seconds"], 2), "held_compute_s": round(r["held"]["compute"], 2),
        "held_vs_read": r["held"]["ratio_to_read"],
        "peak_rss_mb": round(r["held"]["peak_rss_mb"]),
    }  # fmt: skip


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", nargs="*", default=None, help="default: every shape (CPU: the small ones)")
    ap.add_argument("--n", type=int, default=None, help="texts per shape (default 512 on GPU, 24 on CPU)")
    ap.add_argument("--length", type=int, default=50, help="terms per numeric sequence")
    ap.add_argument("--sim-n", type=int, default=None, help="texts of the similarity check (GPU 15457, CPU 512)")
    ap.add_argument("--out", default="gpu_check.json")
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    n = a.n or (512 if device == "cuda" else 24)
    shapes = a.shapes or [s for s, (_, _, small) in SHAPES.items() if device == "cuda" or small]
    skipped = [s for s in SHAPES if s not in shapes]
    info = {
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "backend": device,
        "dtype": str(dtype).replace("torch.", ""),
        "torch": torch.__version__,
        "skipped": skipped,
    }
    print(json.dumps(info))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in shapes:
            t0 = time.time()
            rows.append(check_shape(s, device, dtype, n, a.length, 64 if device == "cuda" else 8, Path(tmp)))
            if device == "cuda":
                torch.cuda.empty_cache()
            print(json.dumps(rows[-1]), f"({time.time() - t0:.0f} s)", flush=True)
        info["embedding"] = embedding_runtime(device, Path(tmp), n)
        print(json.dumps(info["embedding"]), flush=True)
        info["similarity"] = similarity_check(device, Path(tmp), a.sim_n or (15457 if device == "cuda" else 512))
        print(json.dumps(info["similarity"]), flush=True)
    Path(a.out).write_text(json.dumps({**info, "shapes": rows}, indent=2) + "\n")
    cols = ["shape", "parameters", "tokens_per_s", "vs_bare", "vs_naive", "mfu", "bf16_vs_fp32_cosine"]
    cols += [c for c in ("peak_gib", "max_batch_2048_tokens", "stage_vs_bare") if any(c in r for r in rows)]
    print("\n" + " | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")) for c in cols))
    print(f"embedding runtime vs bare encode: {info['embedding']['runtime_vs_bare_encode']}")
    sim = info["similarity"]
    print(f"similarity, {sim['pairs']} layer pairs × {sim['texts']} texts, products on {sim['device']}: read "
          f"{sim['read_s']} s; CKA of every pair {sim['held_s']} s (compute {sim['held_compute_s']} s) = "
          f"{sim['held_vs_read']}× the read (target <= 2)")  # fmt: skip
    if skipped:
        print(f"skipped (too large for {device}): {', '.join(skipped)}")
    if len(rows) >= 2:  # the rates repgeom.durations plans a config's GPU time with
        from repgeom.durations import Rates, fit_rates

        fit = fit_rates({**info, "shapes": rows}, Rates("host", 1.0, 0.0, 1.0, 1.0, 0.0))
        print(f"time model fitted to these shapes: {fit.flops / 1e12:.2f} TFLOP/s, {fit.launch_s * 1e6:.1f} us per "
              f"launch, {fit.batch_s * 1e3:.2f} ms per batch; plan a config with them where its models are prepared: "
              f"python -m repgeom.durations --gpu-check {a.out}")  # fmt: skip


if __name__ == "__main__":
    main()
