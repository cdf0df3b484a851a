"""Per-layer activation extraction: hooks, batching, early stop, shards, readers, crash safety."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from repgeom import activations as A
from repgeom.artifacts import ArtifactError, array_sha256, h5_attrs, texts_sha256

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]

TEXTS = [
    "1, 2, 3",
    "héllo wörld 日本語 🙂",
    "2, 3, 5, 7, 11, 13, 17, 19, 23",
    "a",
    "The quick brown fox jumps",
    "10, 20",
]
IDS = [f"t{i}" for i in range(len(TEXTS))]


def _close(a, b, rtol=1e-4):
    """float32 agreement relative to each layer's scale (the residual stream holds a few huge dims)."""
    scale = np.abs(b).max(axis=(0, 2), keepdims=True) + 1.0
    err = np.abs(a - b) / scale
    assert err.max() <= rtol, f"max scaled error {err.max():.2e}"


# ------------------------------------------------------------------ fixtures
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny_tokenizer(bos: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<bos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tk.train_from_iterator([", ".join(map(str, range(i, i + 30))) for i in range(40)] + TEXTS, trainer=tr)
    if bos:
        tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<bos>", eos_token="<pad>")


def _save_tiny(path: Path, arch: str = "gpt2", bos: bool = False) -> Path:
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

    torch.manual_seed(0)
    tok = _tiny_tokenizer(bos)
    if arch == "gpt2":
        cfg = GPT2Config(
            n_layer=3,
            n_embd=32,
            n_head=4,
            n_positions=256,
            vocab_size=len(tok),
            bos_token_id=1,
            eos_token_id=0,
            pad_token_id=0,
        )
        GPT2Model(cfg).save_pretrained(path)
    else:
        cfg = BertConfig(
            num_hidden_layers=2,
            hidden_size=32,
            num_attention_heads=4,
            intermediate_size=64,
            vocab_size=len(tok),
            pad_token_id=0,
        )
        BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory) -> Path:
    return _save_tiny(tmp_path_factory.mktemp("tiny") / "gpt2")


@pytest.fixture(scope="session")
def gpt2(gpt2_dir):
    return A.load_decoder(gpt2_dir)


@pytest.fixture(scope="session")
def smol_dir(tmp_path_factory, prepared_smollm2) -> Path:
    """Hard-linked private copy of SmolLM2 (prepared from the package index once per session, or the
    workflow's own folder): the workflow may re-prepare the shared folder while tests run."""

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    dst = tmp_path_factory.mktemp("models") / "smollm2"
    shutil.copytree(prepared_smollm2, dst, copy_function=link)
    return dst


@pytest.fixture(scope="session")
def smol(smol_dir):
    return A.load_decoder(smol_dir)


def _run(tmp_path, model_dir, texts=TEXTS, ids=IDS, name="tiny", **kw):
    out = tmp_path / "acts"
    kw.setdefault("progress", False)
    return out, A.extract(texts, ids, model_dir, out, model=name, **kw)


# ------------------------------------------------------------------ finding blocks
def test_find_blocks_known_and_unknown(gpt2, tmp_path):
    path, blocks = A.find_blocks(gpt2[0])
    assert path == "h" and len(blocks) == 3
    with pytest.raises(A.LayersNotFoundError) as e:
        A.find_blocks(torch.nn.Linear(2, 2), name="lin")
    for p in A.BLOCK_PATHS:
        assert p in str(e.value)
    assert "'lin'" in str(e.value)
    bert = _save_tiny(tmp_path / "bert", arch="bert")
    with pytest.raises(A.LayersNotFoundError, match=r"model 'tiny-bert'.*model\.layers.*transformer\.h"):
        _run(tmp_path, bert, name="tiny-bert")
    assert not (tmp_path / "acts").exists() or not any((tmp_path / "acts").iterdir())


def test_resolve_layers():
    assert A.resolve_layers(4) == [1, 2, 3, 4]
    assert A.resolve_layers(4, [-1, 2, 2], include_embeddings=True) == [0, 2, 4]
    with pytest.raises(ValueError, match="out of range"):
        A.resolve_layers(4, [5])


# ------------------------------------------------------------------ correctness of the representation
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("which,shape", [("gpt2", (4, 32)), ("smol", (31, 576))])
def test_batched_equals_single(request, which, shape, side):
    m, tok, _ = request.getfixturevalue(which)
    for pos in ("last", "mean"):
        one = A.forward_latents(m, tok, TEXTS, include_embeddings=True, position=pos, batch_size=1)
        many = A.forward_latents(m, tok, TEXTS, include_embeddings=True, position=pos, batch_size=4, padding_side=side)
        assert one.shape == (len(TEXTS), *shape) and np.isfinite(many).all()
        _close(many, one)


def test_final_hidden_state_shares_the_batching_and_pooling(gpt2):
    """The decoder embedding runtime's path (iter_pooled on the final state): batched, in either tie order, equals
    one text at a time, and its last token is the final norm of the last block's output at that same token."""
    from repgeom.activations.batching import iter_pooled

    m, tok, _ = gpt2
    block3 = A.forward_latents(m, tok, TEXTS, layers=[3], batch_size=1)  # (N, 1, 32)
    with torch.inference_mode():
        ref = m.ln_f(torch.from_numpy(block3)).numpy()
    for ties, bs in (("first", 1), ("first", 4), ("last", 4)):
        out = np.zeros_like(block3)
        for _, _, rows, res in iter_pooled(m, tok, TEXTS, batch_size=bs, ties=ties):
            out[rows, 0] = res["last"].numpy()
        _close(out, ref)


def test_hooks_are_block_outputs_before_the_final_norm(smol):
    m, tok, _ = smol
    text = "3, 1, 4, 1, 5, 9, 2, 6"
    X = A.forward_latents(m, tok, [text], include_embeddings=True)[0]  # (31, 576)
    with torch.inference_mode():
        hs = m(**tok([text], return_tensors="pt"), output_hidden_states=True).hidden_states
    assert len(hs) == 31
    for L in range(30):  # hidden_states[0] = embedding output, [L] = after block L for L < 30
        np.testing.assert_allclose(X[L], hs[L][0, -1].numpy(), rtol=0, atol=1e-5)
    last = torch.from_numpy(X[30])
    assert (last - hs[30][0, -1]).abs().max() > 1.0  # hidden_states[-1] has the final norm applied ...
    with torch.inference_mode():
        np.testing.assert_allclose(m.norm(last).numpy(), hs[30][0, -1].numpy(), rtol=1e-4, atol=1e-4)  # ... ours not


def test_early_stop_skips_later_blocks(smol):
    m, tok, _ = smol
    blocks = A.find_blocks(m)[1]
    calls = []
    handles = [b.register_forward_hook(lambda mod, a, o, i=i: calls.append(i)) for i, b in enumerate(blocks)]
    handles.append(m.norm.register_forward_hook(lambda *a: calls.append("norm")))
    try:
        A.forward_latents(m, tok, ["1, 2, 3"], layers=[2])
        assert calls == [0, 1]
        calls.clear()
        A.forward_latents(m, tok, ["1, 2, 3"], layers=[0])
        assert calls == []
    finally:
        for h in handles:
            h.remove()


def test_bfloat16_on_cpu(smol, smol_dir):
    m32, tok, _ = smol
    mbf, _, _ = A.load_decoder(smol_dir, dtype="bfloat16")
    a = A.forward_latents(m32, tok, TEXTS[:3], layers=[1, 2])
    b = A.forward_latents(mbf, tok, TEXTS[:3], layers=[1, 2])
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert b.dtype == np.float32 and cos.min() > 0.99


# ------------------------------------------------------------------ shards
def test_extract_smollm2_shards(smol, smol_dir, tmp_path):
    m, tok, _ = smol
    out, summ = _run(
        tmp_path,
        smol_dir,
        name="smollm2",
        layers=[1, 3],
        include_embeddings=True,
        batch_size=4,
        positions=("last", "mean"),
    )
    assert summ["n_layers_total"] == 30 and summ["layers"] == [0, 1, 3] and summ["d"] == 576
    assert sorted(p.name for p in out.iterdir()) == ["layer_00.h5", "layer_01.h5", "layer_03.h5", "mean"]
    assert A.list_layers(out, "mean") == [0, 1, 3]
    man = json.loads((smol_dir / "manifest.json").read_text())
    ref = A.forward_latents(m, tok, TEXTS, layers=[1, 3], include_embeddings=True)
    for i, (L, X, ids, attrs) in enumerate(A.iter_layers(out, expect={"model_fingerprint": man["fingerprint"]})):
        assert L == [0, 1, 3][i] and list(ids) == IDS
        assert attrs["layer_meaning"] == A.layer_meaning(L) and attrs["position"] == "last"
        assert attrs["model_source"] == man["source"] and attrs["n_layers_total"] == 30
        np.testing.assert_allclose(X, ref[:, i], rtol=2e-3, atol=2e-3 * (1 + np.abs(ref[:, i]).max()))
    Xm, _, am = A.load_layer(out, 3, position="mean")
    assert am["position"] == "mean" and Xm.shape == (len(TEXTS), 576)


def test_shard_layout_and_attrs(gpt2, gpt2_dir, tmp_path):
    m, tok, _ = gpt2
    out, summ = _run(tmp_path, gpt2_dir, batch_size=4, store_dtype="float32", padding_side="left")
    assert summ["layers"] == [1, 2, 3] and summ["n"] == len(TEXTS)
    assert sorted(p.name for p in out.iterdir()) == ["layer_01.h5", "layer_02.h5", "layer_03.h5"]
    ref = A.forward_latents(m, tok, TEXTS, batch_size=1)
    for L in (1, 2, 3):
        path = out / f"layer_{L:02d}.h5"
        with h5py.File(path, "r", locking=False) as f:
            ds = f["activations"]
            assert ds.shape == (len(TEXTS), 32) and ds.dtype == np.float32 and ds.chunks == (len(TEXTS), 32)
            assert array_sha256(ds[()]) == f.attrs["sha256_activations"]  # incremental sha == artifacts' sha
            assert list(f["n_tokens"][()]) == [len(t) for t in tok(TEXTS)["input_ids"]]
        X, ids, attrs = A.load_layer(path, L)
        _close(X[:, None], ref[:, L - 1 : L])
        assert list(ids) == IDS
        for k, v in {
            "kind": "activations",
            "model": "tiny",
            "layer": L,
            "position": "last",
            "padding_side": "left",
            "max_length": 512,
            "n_truncated": 0,
            "compute_dtype": "float32",
            "store_dtype": "float32",
            "n": len(TEXTS),
            "d": 32,
            "complete": True,
            "texts_sha256": texts_sha256(TEXTS),
            "layer_meaning": f"residual stream after block {L} (1-based)",
            "n_layers_total": 3,
        }.items():
            assert attrs[k] == v, k
        assert attrs["model_source"]["type"] == "local" and len(attrs["model_fingerprint"]) == 64
        with h5py.File(path, "r", locking=False) as f:  # the individual attributes say the same as 'provenance'
            assert {k: v for k, v in h5_attrs(f).items() if k != "provenance"} == attrs
        assert {"torch", "transformers", "h5py"} <= set(attrs["versions"])


def test_rows_at_original_indices_across_windows(gpt2, gpt2_dir, tmp_path):
    """300 texts of mixed lengths, windows of 256 rows and a partial last chunk; gzip vs plain reader paths."""
    m, tok, _ = gpt2
    rng = np.random.default_rng(0)
    texts = [", ".join(map(str, rng.integers(0, 1000, rng.integers(1, 12)))) for _ in range(300)]
    ids = [f"r{i}" for i in range(300)]
    ref = A.forward_latents(m, tok, texts, layers=[2], batch_size=1)[:, 0]
    out, _ = _run(tmp_path, gpt2_dir, texts, ids, layers=[2], batch_size=32, sort_window=256)
    X, got_ids, _ = A.load_layer(out, 2)
    assert list(got_ids) == ids
    np.testing.assert_allclose(X, ref, rtol=2e-3, atol=2e-3)
    out2 = tmp_path / "gz"
    # the very same extraction (same windows, so the same batch shapes) written with gzip: any difference
    # between the two reads below is the readers', not the float kernels' (which round differently for
    # differently shaped batches on some CPUs)
    A.extract(
        texts,
        ids,
        gpt2_dir,
        out2,
        model="tiny",
        layers=[2],
        batch_size=32,
        sort_window=256,
        compression="gzip",
        progress=False,
    )
    with h5py.File(out2 / "layer_02.h5", "r", locking=False) as f:
        assert f["activations"].compression == "gzip"
    n0 = A._FAST_READS[0]
    gz = A.load_layer(out2, 2, dtype=None)[0]  # through h5py (filtered chunks)
    assert A._FAST_READS[0] == n0
    plain = A.load_layer(out, 2, dtype=None)[0]  # straight from the file by chunk offsets
    assert A._FAST_READS[0] == n0 + 1
    np.testing.assert_array_equal(gz, plain)
    with h5py.File(out / "layer_02.h5", "r", locking=False) as f:
        np.testing.assert_array_equal(plain, f["activations"][()])


def test_reader_refuses_mismatch_and_corruption(gpt2_dir, tmp_path):
    out, _ = _run(tmp_path, gpt2_dir)
    path = out / "layer_02.h5"
    attrs = A.check_shard(path, {"texts_sha256": texts_sha256(TEXTS)})
    with pytest.raises(ArtifactError, match="model_fingerprint"):
        A.load_layer(out, 2, expect={"model_fingerprint": "0" * 64})
    with pytest.raises(ArtifactError, match="texts_sha256"):
        A.check_shard(path, {"texts_sha256": texts_sha256(TEXTS[::-1])})
    with pytest.raises(ArtifactError, match="missing"):
        A.load_layer(out, 7)
    with pytest.raises(ArtifactError, match="holds position"):
        A.load_layer(path, 2, position="mean")
    # flip one bit inside the activations
    with h5py.File(path, "r", locking=False) as f:
        info = f["activations"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + 17)
        b = fh.read(1)
        fh.seek(info.byte_offset + 17)
        fh.write(bytes([b[0] ^ 0x04]))
    for call in (lambda: A.load_layer(path, 2), lambda: A.check_shard(path), lambda: list(A.iter_layers(out))):
        with pytest.raises(ArtifactError, match="checksum"):
            call()
    A.load_layer(path, 2, verify=False)  # what verify=False gives up (documented)
    # an incomplete shard
    p3 = out / "layer_03.h5"
    with h5py.File(p3, "r+", locking=False) as f:
        f.attrs["complete"] = False
    with pytest.raises(ArtifactError, match="incomplete"):
        A.load_layer(out, 3)
    assert attrs["layer"] == 2


def test_corrupt_ids_are_refused_by_every_reader(gpt2_dir, tmp_path):
    """One flipped byte in the ids: refused by load_layer and by check_shard (which checks the raw bytes' xxh3
    without decoding them)."""
    out, _ = _run(tmp_path, gpt2_dir, layers=[1])
    path = out / "layer_01.h5"
    A.check_shard(path)
    with h5py.File(path, "r", locking=False) as f:
        off = f["ids"].id.get_offset()
    assert off is not None, "ids stored contiguously"
    with open(path, "r+b") as fh:
        fh.seek(off + 1)
        b = fh.read(1)
        fh.seek(off + 1)
        fh.write(bytes([b[0] ^ 0x01]))
    for call in (lambda: A.load_layer(path, 1), lambda: A.check_shard(path)):
        with pytest.raises(ArtifactError, match="ids do not match"):
            call()


def test_iter_layers_refuses_mixed_runs(gpt2_dir, tmp_path):
    out, _ = _run(tmp_path, gpt2_dir, layers=[1, 2])
    other = tmp_path / "other"
    A.extract(TEXTS[::-1], IDS[::-1], gpt2_dir, other, model="tiny", layers=[3], progress=False)
    shutil.copy(other / "layer_03.h5", out / "layer_03.h5")
    assert [L for L, *_ in A.iter_layers(out, layers=[1, 2])] == [1, 2]
    with pytest.raises(ArtifactError, match="texts_sha256"):
        list(A.iter_layers(out))


def test_truncation_is_counted(gpt2, gpt2_dir, tmp_path):
    m, tok, _ = gpt2
    lens = [len(t) for t in tok(TEXTS)["input_ids"]]
    out, summ = _run(tmp_path, gpt2_dir, max_length=4, layers=[1])
    want = sum(n > 4 for n in lens)
    assert summ["n_truncated"] == want > 0
    X, _, attrs = A.load_layer(out, 1)
    assert attrs["n_truncated"] == want and attrs["max_length"] == 4
    with h5py.File(out / "layer_01.h5", "r", locking=False) as f:
        assert list(f["n_tokens"][()]) == [min(n, 4) for n in lens]
    ref = A.forward_latents(m, tok, TEXTS, layers=[1], max_length=4, batch_size=1)[:, 0]
    np.testing.assert_allclose(X, ref, rtol=2e-3, atol=2e-3)


def test_empty_text(gpt2_dir, tmp_path):
    texts = ["1, 2", "", "3"]
    with pytest.raises(ValueError, match=r"row 1 \(id 'e1'\)"):
        _run(tmp_path, gpt2_dir, texts, ["e0", "e1", "e2"])
    assert not (tmp_path / "acts").exists() or not any((tmp_path / "acts").iterdir())
    # a tokenizer that adds BOS gives the empty text one token: it works
    bos_dir = _save_tiny(tmp_path / "gpt2bos", bos=True)
    out, _ = _run(tmp_path, bos_dir, texts, ["e0", "e1", "e2"], layers=[1])
    X, ids, _ = A.load_layer(out, 1)
    assert np.isfinite(X).all() and list(ids) == ["e0", "e1", "e2"]
    with h5py.File(out / "layer_01.h5", "r", locking=False) as f:
        assert f["n_tokens"][1] == 1


def test_non_ascii_texts_and_ids(gpt2, gpt2_dir, tmp_path):
    m, tok, _ = gpt2
    texts = ["naïve café", "日本語のテキスト", "emoji 🙂🚀", "Ελληνικά, Кириллица"]
    ids = ["ß-1", "日本", "🙂", "id4"]
    out, _ = _run(tmp_path, gpt2_dir, texts, ids, layers=[3], store_dtype="float32")
    X, got, attrs = A.load_layer(out, 3)
    assert list(got) == ids and attrs["texts_sha256"] == texts_sha256(texts)
    _close(X[:, None], A.forward_latents(m, tok, texts, layers=[3], batch_size=1))


def test_ids_decoded_in_one_pass_equal_ids_decoded_one_by_one():
    """The reader decodes fixed-width ids joined in one pass; an id holding the separator falls back to one by one."""
    from repgeom.activations.shardfile import _decode

    for ids in (
        [f"stsb-train-{i:05d}" for i in range(300)],
        ["ß-1", "日本", "🙂", "id4"],
        ["a\nb", "c", "\n"],  # the separator inside ids: split would give too many pieces
        ["", "x", ""],
        ["only"],
    ):
        raw = np.array([s.encode("utf-8") for s in ids])
        assert raw.dtype.kind == "S"
        assert _decode(raw) == ids == [x.decode("utf-8") for x in raw.tolist()]
    assert _decode(np.array([], dtype="S4")) == []
    assert _decode(np.array([b"v", "w"], dtype=object)) == ["v", "w"]  # variable-length (older shards)


def test_failure_mid_run_removes_temporaries(gpt2_dir, tmp_path, monkeypatch):
    orig = A.iter_batches

    def boom(*a, **k):
        for i, x in enumerate(orig(*a, **k)):
            if i == 1:
                raise RuntimeError("boom")
            yield x

    monkeypatch.setattr(A.extraction, "iter_batches", boom)  # where extract looks it up
    with pytest.raises(RuntimeError, match="boom"):
        _run(tmp_path, gpt2_dir, batch_size=2, positions=("last", "mean"))
    left = [p for p in (tmp_path / "acts").rglob("*") if p.is_file()]
    assert left == []


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {src!r})
    from repgeom import activations as A
    orig = A.iter_batches
    def slow(*a, **k):
        for i, x in enumerate(orig(*a, **k)):
            print("batch", i, flush=True)
            yield x
            if i >= 8:
                time.sleep(0.5)
    A.extraction.iter_batches = slow  # where extract looks it up
    texts = [", ".join(str(j) for j in range(i % 17 + 1)) for i in range(1200)]
    A.extract(texts, [f"k{{i}}" for i in range(1200)], {model!r}, {out!r}, model="tiny", batch_size=32,
              sort_window=256, positions=("last", "mean"), progress=False)
    print("done", flush=True)
""")


def test_sigkill_mid_write_leaves_nothing_readable(gpt2_dir, tmp_path):
    out = tmp_path / "acts"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(src=str(ROOT / "src"), model=str(gpt2_dir), out=str(out)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        for line in proc.stdout:
            if line.strip() == "batch 10" or time.time() > deadline:  # window 1 (batches 0-7) is on disk
                break
        assert line.strip() == "batch 10"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and all(p.name.startswith(".layer_") and p.name.endswith(".tmp") for p in files)
    assert list(out.glob("layer_*.h5")) == [] and A.list_layers(out) == [] and A.list_layers(out, "mean") == []
    with pytest.raises(ArtifactError):
        A.load_layer(out, 1)
    for p in files:
        with pytest.raises(ArtifactError):
            A.check_shard(p)
    # rerun to completion: stale temporaries are cleaned and every shard verifies
    texts = [", ".join(str(j) for j in range(i % 17 + 1)) for i in range(1200)]
    A.extract(
        texts,
        [f"k{i}" for i in range(1200)],
        gpt2_dir,
        out,
        model="tiny",
        batch_size=32,
        sort_window=256,
        positions=("last", "mean"),
        progress=False,
    )
    assert not [p for p in out.rglob(".*") if p.is_file()]
    assert A.list_layers(out) == [1, 2, 3] == A.list_layers(out, "mean")
    for pos in ("last", "mean"):
        for _L, X, ids, _attrs in A.iter_layers(out, position=pos, expect={"texts_sha256": texts_sha256(texts)}):
            assert X.shape == (1200, 32) and ids[5] == "k5"


def test_bad_arguments_fail_before_any_work(gpt2_dir, tmp_path):
    for kw, msg in [
        ({"ids": ["a", "a", "b", "c", "d", "e"]}, "not unique"),
        ({"positions": ("first",)}, "positions"),
        ({"store_dtype": "int8"}, "store_dtype"),
        ({"padding_side": "middle"}, "padding_side"),
        ({"compression": "zstd"}, "compression"),
        ({"layers": [9]}, "out of range"),
    ]:
        with pytest.raises(ValueError, match=msg):
            _run(tmp_path, gpt2_dir, **kw)
    assert not (tmp_path / "acts").exists()


def test_auto_dtype_and_its_reason_are_recorded(gpt2_dir, tmp_path, monkeypatch):
    from repgeom import devices

    monkeypatch.setattr(devices, "cpu_bf16_flags", lambda *a: [])  # a CPU without bf16 units: float32
    out, summary = _run(tmp_path, gpt2_dir, dtype="auto", device="cpu")
    attrs = A.load_layer(out, summary["layers"][0])[2]
    assert summary["dtype"] == attrs["compute_dtype"] == "float32"
    assert "no amx_bf16 or avx512_bf16" in attrs["dtype_reason"]
