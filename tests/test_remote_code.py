"""Remote code for real: a model folder whose config's ``auto_map`` names Python files inside it (as the paper's
gte, nomic and nemotron models do), through both runtimes and the activation stage; the refusal of unpinned remote
code, the security warning, and the code's hash in the prepared model's provenance."""

import shutil

import numpy as np
import pytest

from repgeom import activations as A
from repgeom.configure import stages
from repgeom.configure.config import ConfigError, remote_code_warnings, validate_config
from repgeom.embeddings import load_runtime
from repgeom.models import ModelSourceError, code_sha256, load_manifest, prepare

torch = pytest.importorskip("torch")

TEXTS = ["1, 2, 3", "2, 3, 5, 7, 11, 13, 17", "A man is playing a guitar.", "10"]


@pytest.fixture(scope="module")
def remote_st_dir(remote_dir, tmp_path_factory):
    """The same model as a sentence-transformers folder (mean pooling, normalised), as gte and nomic ship."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    trc = {"trust_remote_code": True}
    tr = Transformer(str(remote_dir), model_kwargs=trc, config_kwargs=trc, processor_kwargs=trc)
    out = tmp_path_factory.mktemp("remote_st") / "tiny-remote-st"
    SentenceTransformer(modules=[tr, Pooling(32, pooling_mode="mean"), Normalize()], device="cpu").save(str(out))
    return out


def _config(folder, runtime, pin=True, **top):
    src = {"type": "local", "path": str(folder)}
    if pin:
        src["code_sha256"] = code_sha256(folder)[0] if pin is True else pin
    entry = {"runtime": runtime, "source": src, "trust_remote_code": True}
    if runtime == "decoder":
        entry["pooling"] = "mean"
    return validate_config({"models": {"m": entry}, **top})


def test_unpinned_local_remote_code_is_refused_and_warned_about(remote_dir):
    digest, files = code_sha256(remote_dir)
    assert files == ["configuration_tiny_remote.py", "modeling_tiny_remote.py"]
    with pytest.raises(ConfigError, match=rf"models\.m\.trust_remote_code.*code_sha256.*{digest}"):
        _config(remote_dir, "decoder", pin=False)
    cfg = _config(remote_dir, "decoder", pin=False, allow_unpinned_remote_code=True)
    assert remote_code_warnings(cfg) == [f"model 'm' runs remote code from unpinned folder {str(remote_dir)!r}"]
    assert remote_code_warnings(_config(remote_dir, "decoder")) == []


def test_the_code_hash_is_checked_and_recorded(remote_dir, tmp_path):
    digest, files = code_sha256(remote_dir)
    man = prepare(stages.prepare_params(_config(remote_dir, "decoder"), "m"), tmp_path / "ok")
    assert man["remote_code"] == {"sha256": digest, "files": files}
    assert load_manifest(tmp_path / "ok")["remote_code"]["sha256"] == digest
    edited = tmp_path / "edited"
    shutil.copytree(remote_dir, edited)
    with open(edited / "modeling_tiny_remote.py", "a") as fh:
        fh.write("\nprint('surprise')\n")
    with pytest.raises(
        ModelSourceError, match=rf"hash to {code_sha256(edited)[0]}, but source.code_sha256 pins {digest}"
    ):
        prepare(stages.prepare_params(_config(edited, "decoder", pin=digest), "m"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_remote_code_through_the_activation_stage_and_the_decoder_runtime(remote_dir, tmp_path):
    cfg = _config(remote_dir, "decoder")
    prepared = tmp_path / "prepared"
    prepare(stages.prepare_params(cfg, "m"), prepared)
    model, _, info = A.load_decoder(prepared)
    assert type(model).__name__ == "TinyRemoteModel" and info["trust_remote_code"] is True
    assert A.find_blocks(model)[0] == "layers"
    rows = {}
    for bs in (4, 1):
        out = tmp_path / f"acts_{bs}"
        summ = A.extract(TEXTS, ["a", "b", "c", "d"], prepared, out, model="m", positions=("last", "mean"),
                         batch_size=bs, store_dtype="float32", progress=False)  # fmt: skip
        assert summ["layers"] == [1, 2]
        rows[bs] = A.load_layer(out, 2, position="mean")[0]
    np.testing.assert_allclose(rows[4], rows[1], atol=1e-5)
    with pytest.raises(ValueError, match="TinyRemoteModel.forward takes no position_ids; use padding_side 'right'"):
        A.extract(
            TEXTS, ["a", "b", "c", "d"], prepared, tmp_path / "left", model="m", padding_side="left", progress=False
        )
    rt = load_runtime(prepared, stages.embed_params(cfg, "m").replace(device="cpu"))
    E = rt.encode(TEXTS, 4, progress=False)
    np.testing.assert_allclose(E, np.concatenate([rt.encode([t], 1, progress=False) for t in TEXTS]), atol=1e-5)
    np.testing.assert_allclose(E, rows[1], atol=1e-5)  # no final norm: the last block's mean


def test_remote_code_through_sentence_transformers(remote_st_dir, tmp_path):
    cfg = _config(remote_st_dir, "sentence-transformers")
    prepared = tmp_path / "prepared"
    man = prepare(stages.prepare_params(cfg, "m"), prepared)
    assert "modeling_tiny_remote.py" in " ".join(man["remote_code"]["files"])
    rt = load_runtime(prepared, stages.embed_params(cfg, "m").replace(device="cpu"))
    assert type(rt.model[0].auto_model).__name__ == "TinyRemoteModel"
    E = rt.encode(TEXTS, 4, progress=False)
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(E, np.concatenate([rt.encode([t], 1, progress=False) for t in TEXTS]), atol=1e-5)


def test_remote_code_without_trust_fails_clearly(remote_st_dir, tmp_path):
    cfg = validate_config(
        {"models": {"m": {"runtime": "sentence-transformers", "source": {"type": "local", "path": str(remote_st_dir)}}}}
    )
    prepared = tmp_path / "prepared"
    prepare(stages.prepare_params(cfg, "m"), prepared)
    with pytest.raises(
        ModelSourceError,
        match=r"(?s)model 'm' \(sentence-transformers\) cannot be loaded.*set models\.m\.trust_remote_code: true",
    ):
        load_runtime(prepared, stages.embed_params(cfg, "m").replace(device="cpu"))
