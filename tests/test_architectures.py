"""Every architecture of the paper's models, as a tiny random-weight model built offline, through the runtime its
config names and (decoders) through the activation stage: blocks found, layer counts right, pooling right under
right and left padding, batched equal to one at a time, embeddings finite, shard attributes right."""

import numpy as np
import pytest

from repgeom import activations as A
from repgeom.architectures import ARCHITECTURES, PAPER_MODELS, build_tiny
from repgeom.configure import stages
from repgeom.configure.config import one_model_config
from repgeom.embeddings import load_runtime
from repgeom.models import prepare

torch = pytest.importorskip("torch")

TEXTS = [
    "1, 2, 3",
    "2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31",
    "A man is playing a guitar.",
    "héllo wörld",
    "10, 20",
]
DECODERS = [a for a in ARCHITECTURES if not ARCHITECTURES[a].encoder]
ST_MODELS = [n for n, m in PAPER_MODELS.items() if m.runtime == "sentence-transformers" and m.arch != "remote"]
DECODER_MODELS = [n for n, m in PAPER_MODELS.items() if m.runtime == "decoder"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _close(a, b, atol=2e-5):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.abs(b).max() + 1.0
    assert np.isfinite(a).all() and np.abs(a - b).max() <= atol * scale, f"max error {np.abs(a - b).max():.2e}"


def _prepared(tmp_path, name, folder, runtime):
    """A prepared model folder (local source), as the workflow makes it."""
    cfg = one_model_config(name, {"runtime": runtime, "source": {"type": "local", "path": str(folder)}})
    out = tmp_path / f"prepared_{name}"
    prepare(stages.prepare_params(cfg, name), out)
    return out, cfg


def _reference_blocks(model_dir, text):
    """Every block's output for one unpadded text (transformers' own hidden states), final norm excluded."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        out = model(**tok(text, return_tensors="pt"), output_hidden_states=True)
    return [h[0].numpy() for h in out.hidden_states], out.last_hidden_state[0].numpy()


@pytest.mark.parametrize("arch", DECODERS)
def test_decoder_architectures_through_the_activation_stage(arch, tmp_path):
    folder = build_tiny(arch, tmp_path / arch)
    model, tok, info = A.load_decoder(folder)
    path, blocks = A.find_blocks(model)
    n = model.config.num_hidden_layers
    assert len(blocks) == n, (path, len(blocks))
    runs = {}
    for side, bs in (("right", 3), ("left", 3), ("right", 1)):
        out = tmp_path / f"acts_{side}_{bs}"
        summ = A.extract(
            TEXTS,
            [f"t{i}" for i in range(len(TEXTS))],
            folder,
            out,
            model=arch,
            positions=("last", "mean"),
            batch_size=bs,
            padding_side=side,
            store_dtype="float32",
            progress=False,
        )
        assert summ["layers"] == list(range(1, n + 1)) and summ["n_layers_total"] == n
        runs[side, bs] = {
            (L, p): A.load_layer(out, L, position=p)[0] for L in range(1, n + 1) for p in ("last", "mean")
        }
    attrs = A.check_shard(A.shard_path(tmp_path / "acts_right_3", 1, "last"))
    assert attrs["n"] == len(TEXTS) and attrs["n_layers_total"] == n
    for key, X in runs["right", 1].items():
        assert np.isfinite(X).all()
        _close(runs["right", 3][key], X)  # batched = one at a time
        _close(runs["left", 3][key], X)  # left padding = right padding
    for i, text in enumerate(TEXTS[:3]):  # against transformers' own hidden states (block outputs before the norm)
        hs, _ = _reference_blocks(folder, text)
        for L in range(1, n):
            _close(runs["right", 1][L, "last"][i], hs[L][-1])
            _close(runs["right", 1][L, "mean"][i], hs[L].mean(axis=0))


@pytest.mark.parametrize("name", DECODER_MODELS)
def test_decoder_paper_models_through_the_embedding_runtime(name, tmp_path):
    card = PAPER_MODELS[name]
    folder = build_tiny(card.arch, tmp_path / name)
    prepared, cfg = _prepared(tmp_path, name, folder, "decoder")
    cfg["models"][name].update(pooling=card.pooling, normalize=card.normalize)
    params = stages.embed_params(cfg, name).replace(batch_size=4, device="cpu")
    rt = load_runtime(prepared, params)
    E = rt.encode(TEXTS, 4, progress=False)
    one = np.concatenate([rt.encode([t], 1, progress=False) for t in TEXTS])
    _close(E, one)
    for i, text in enumerate(TEXTS[:3]):  # the final, normed hidden state, pooled as the card says
        _, last = _reference_blocks(folder, text)
        v = last[-1] if card.pooling == "last" else last.mean(axis=0)
        _close(E[i], v / np.linalg.norm(v) if card.normalize else v)


@pytest.mark.parametrize("name", ST_MODELS)
def test_sentence_transformers_paper_models_follow_their_cards(name, tmp_path):
    card = PAPER_MODELS[name]
    padding = "left" if card.pooling == "lasttoken" and "qwen3" in name else "right"
    folder = build_tiny(card.arch, tmp_path / name, sentence_transformers=card, padding_side=padding)
    prepared, cfg = _prepared(tmp_path, name, folder, "sentence-transformers")
    params = stages.embed_params(cfg, name).replace(device="cpu")
    rt = load_runtime(prepared, params)
    E = rt.encode(TEXTS, 4, progress=False)
    one = np.concatenate([rt.encode([t], 1, progress=False) for t in TEXTS])
    _close(E, one)
    if card.normalize:
        np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    modules = [type(m).__name__ for m in rt.model]
    assert modules[:2] == ["Transformer", "Pooling"] and ("Normalize" in modules) == card.normalize
    assert ("Dense" in modules) == card.dense
    pool = rt.model[1]
    assert pool.get_config_dict()["pooling_mode"] == card.pooling
    if not card.dense:  # pooling by hand over transformers' own last hidden state, one unpadded text each
        inner = rt.model[0].auto_model
        tok = rt.model.tokenizer
        for i, text in enumerate(TEXTS[:3]):
            with torch.no_grad():
                h = inner(**tok(text, return_tensors="pt")).last_hidden_state[0].numpy()
            v = {"mean": h.mean(axis=0), "lasttoken": h[-1], "cls": h[0]}[card.pooling]
            v = v / np.linalg.norm(v) if card.normalize else v
            _close(E[i], v)


def test_every_paper_model_has_an_architecture_row():
    """The paper config and the architecture table name the same models, and every class is buildable here."""
    from conftest import ROOT

    from repgeom.configure.config import load_yaml

    paper = load_yaml(ROOT / "config" / "paper.yaml")["models"]
    assert set(paper) == set(PAPER_MODELS)
    for name, card in PAPER_MODELS.items():
        assert card.arch == "remote" or card.arch in ARCHITECTURES
        assert paper[name]["runtime"] == card.runtime, name
        assert (card.arch == "remote") <= bool(paper[name].get("trust_remote_code")), name
        assert paper[name]["description"].startswith(f"card {card.card}:"), name  # the entry says which card
        if card.runtime == "decoder":  # a decoder entry states the card's pooling and normalisation itself
            assert paper[name].get("pooling", "native") in (card.pooling, "native"), name
            assert bool(paper[name].get("normalize")) == card.normalize, name
            assert paper[name].get("attention", "causal") == card.attention, name
            assert paper[name].get("include_prompt", True) == card.include_prompt, name
            assert paper[name].get("prompt", "") == card.prompt, name
