"""Out-of-memory back-off, by injection: a model whose forward raises CUDA's out-of-memory error above a batch
size; the activation stage and the decoder runtime halve the batch, record it, and give the same numbers."""

import functools

import numpy as np
import pytest

from repgeom import activations as A
from repgeom.architectures import build_tiny
from repgeom.configure import stages
from repgeom.configure.config import one_model_config
from repgeom.embeddings import load_runtime
from repgeom.models import prepare

torch = pytest.importorskip("torch")

TEXTS = [", ".join(str(j) for j in range(i, i + 3 + i % 5)) for i in range(11)]
IDS = [f"k{i}" for i in range(len(TEXTS))]


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return build_tiny("gpt2", tmp_path_factory.mktemp("tiny") / "gpt2")


@pytest.fixture
def oom_above(monkeypatch):
    """Make GPT-2's forward run out of memory on batches larger than ``limit`` (its signature kept)."""
    from transformers import GPT2Model

    def install(limit):
        orig = GPT2Model.forward

        @functools.wraps(orig)
        def forward(self, input_ids=None, *args, **kw):
            if input_ids.shape[0] > limit:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return orig(self, input_ids, *args, **kw)

        monkeypatch.setattr(GPT2Model, "forward", forward)

    return install


def _layers(out, n=3):
    return {(L, p): A.load_layer(out, L, position=p)[0] for L in range(1, n + 1) for p in ("last", "mean")}


def test_activation_stage_halves_the_batch_and_records_it(gpt2_dir, tmp_path, oom_above):
    kw = dict(model="tiny", positions=("last", "mean"), batch_size=8, store_dtype="float32", progress=False)
    plain = A.extract(TEXTS, IDS, gpt2_dir, tmp_path / "plain", **kw)
    assert plain["oom_backoff"] == []
    oom_above(2)
    summ = A.extract(TEXTS, IDS, gpt2_dir, tmp_path / "oom", **kw)
    assert [(e["batch"], e["to"]) for e in summ["oom_backoff"]] == [(8, 4), (4, 2)]
    attrs = A.check_shard(A.shard_path(tmp_path / "oom", 1, "last"))
    assert attrs["oom_halvings"] == 2 and attrs["batch_size_used"] == 2
    got, want = _layers(tmp_path / "oom"), _layers(tmp_path / "plain")
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5)


def test_one_text_that_does_not_fit_fails_naming_model_batch_and_memory(gpt2_dir, tmp_path, oom_above):
    oom_above(0)
    with pytest.raises(A.OutOfMemoryError, match=r"model 'tiny': one text of \d+ tokens .*Tried to allocate 2.00 GiB"):
        A.extract(TEXTS, IDS, gpt2_dir, tmp_path / "acts", model="tiny", batch_size=4, progress=False)
    assert not (tmp_path / "acts").exists() or not any((tmp_path / "acts").rglob("*.h5"))


def test_decoder_runtime_halves_the_batch(gpt2_dir, tmp_path, oom_above):
    cfg = one_model_config("tiny", {"runtime": "decoder", "source": {"type": "local", "path": str(gpt2_dir)}})
    prepare(stages.prepare_params(cfg, "tiny"), tmp_path / "m")
    rt = load_runtime(tmp_path / "m", stages.embed_params(cfg, "tiny").replace(device="cpu"))
    want = rt.encode(TEXTS, 8, progress=False)
    oom_above(3)
    got = rt.encode(TEXTS, 8, progress=False)
    assert rt.describe()["oom_halvings"] == 2  # 8 → 4 → 2
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
