"""Model-card usage beyond pooling: prompts (literal and named), a mean without the prompt's tokens, bidirectional
attention for decoders, the attention kernel, and the GPU-spreading decision; each checked against an independent
computation (transformers' own forward with an explicit mask, sentence-transformers' own prompt handling)."""

import numpy as np
import pytest

from repgeom import activations as A
from repgeom.activations.attention import AttentionModeError, attends_ahead
from repgeom.activations.batching import iter_pooled, prompt_tokens
from repgeom.architectures import PAPER_MODELS, build_tiny
from repgeom.configure import stages
from repgeom.configure.config import one_model_config, validate_config
from repgeom.devices import spread_over_gpus
from repgeom.embeddings import load_runtime
from repgeom.models import prepare

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = ["1, 2, 3", "2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31", "A man is playing a guitar.", "10, 20"]
GRIT = PAPER_MODELS["gritlm-7b"]
BIDIRECTIONAL = [n for n, m in PAPER_MODELS.items() if m.runtime == "decoder" and m.attention == "bidirectional"]


def _close(a, b, atol=2e-5):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert np.isfinite(a).all() and np.abs(a - b).max() <= atol * (np.abs(b).max() + 1.0), np.abs(a - b).max()


@pytest.fixture(scope="module")
def mistral(tmp_path_factory):
    return build_tiny("mistral", tmp_path_factory.mktemp("tiny") / "mistral")


def _runtime(tmp_path, folder, runtime, name="m", **entry):
    cfg = one_model_config(name, {"runtime": runtime, "source": {"type": "local", "path": str(folder)}, **entry})
    out = tmp_path / f"prepared_{name}_{runtime}"
    if not out.exists():
        prepare(stages.prepare_params(cfg, name), out)
    return load_runtime(out, stages.embed_params(cfg, name).replace(device="cpu"))


def _reference(folder, text, prompt, bidirectional, skip_prompt):
    """transformers' own forward on one unpadded text: for bidirectional attention an explicit 4-D mask (every
    token sees every token within the class's sliding window, |i - j| <= window, as transformers' bidirectional
    sliding-window mask has it), the mean over the tokens after the prompt's (the prompt tokenised alone)."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    ids = tok(prompt + text, return_tensors="pt")["input_ids"]
    n = len(tok(prompt)["input_ids"]) if skip_prompt else 0
    assert not n or ids[0, :n].tolist() == tok(prompt)["input_ids"]  # the prompt's tokens are the text's first
    pos = torch.arange(ids.shape[1])
    window = getattr(model.config, "sliding_window", None) or ids.shape[1]
    seen = ((pos[:, None] - pos[None, :]).abs() <= window)[None, None]
    mask = torch.zeros(seen.shape).masked_fill(~seen, torch.finfo(torch.float32).min)  # additive, as eager adds it
    kw = {"attention_mask": mask} if bidirectional else {}
    with torch.no_grad():
        h = model(input_ids=ids, **kw).last_hidden_state[0].numpy()
    v = h[n:].mean(axis=0)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("name", BIDIRECTIONAL)
def test_bidirectional_decoder_cards(name, tmp_path):
    """GritLM's card: bidirectional attention, the mean over the text after "<|embed|>\\n" only;
    llama-embed-nemotron's: bidirectional, the mean over every token."""
    card = PAPER_MODELS[name]
    folder = build_tiny(card.arch, tmp_path / name)
    usage = dict(pooling=card.pooling, normalize=True, prompt=card.prompt, include_prompt=card.include_prompt)
    rt = _runtime(tmp_path, folder, "decoder", attention=card.attention, **usage)
    d = rt.describe()
    assert d["attention"] == "bidirectional" and d["prompt_used"] == card.prompt
    assert d["include_prompt"] is card.include_prompt
    assert d["prompt_tokens_left_out"] == (0 if card.include_prompt else prompt_tokens(rt.tokenizer, card.prompt))
    E = rt.encode(TEXTS, 3, progress=False)
    one = np.concatenate([rt.encode([t], 1, progress=False) for t in TEXTS])
    _close(E, one)  # batched (padded) = one at a time
    for i, t in enumerate(TEXTS):
        _close(E[i], _reference(folder, t, card.prompt, bidirectional=True, skip_prompt=not card.include_prompt))
    causal = _runtime(tmp_path, folder, "decoder", name="causal", pooling="mean", normalize=True, prompt=card.prompt)
    assert causal.describe()["attention"] == "causal" and causal.describe()["include_prompt"] is True
    C = causal.encode(TEXTS, 3, progress=False)
    for i, t in enumerate(TEXTS):
        _close(C[i], _reference(folder, t, card.prompt, bidirectional=False, skip_prompt=False))
    assert np.abs(C - E).max() > 1e-3  # the card's usage changes the embedding


def test_mean_without_the_prompt_is_the_same_under_left_padding(mistral):
    model, tok, _ = A.load_decoder(mistral)
    texts = [GRIT.prompt + t for t in TEXTS]
    n = prompt_tokens(tok, GRIT.prompt)
    got = {}
    for side in ("right", "left"):
        out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        for _, _, rows, res in iter_pooled(
            model, tok, texts, positions=("mean",), batch_size=4, padding_side=side, skip_tokens=n
        ):
            out[rows] = res["mean"].numpy()
        got[side] = out
    _close(got["left"], got["right"])
    with pytest.raises(ValueError, match=r"keep no token after the prompt's \d+ .*max_length 3"):
        list(iter_pooled(model, tok, texts, positions=("mean",), max_length=3, skip_tokens=n))


def test_decoder_runtime_counts_the_prompt_as_sentence_transformers_does(mistral, tmp_path):
    """sentence-transformers' own include_prompt=False (its Pooling module, its prompt length) over the same
    weights equals the decoder runtime's mean without the prompt (both causal here)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    inner = Transformer(str(mistral))
    st = SentenceTransformer(modules=[inner, Pooling(inner.get_embedding_dimension(), "mean")], device="cpu")
    st.save(str(tmp_path / "st"))
    kw = dict(prompt=GRIT.prompt, include_prompt=False)
    st_rt = _runtime(tmp_path, tmp_path / "st", "sentence-transformers", name="st", **kw)
    assert st_rt.describe()["include_prompt"] is False and st_rt.describe()["prompt_used"] == GRIT.prompt
    dec = _runtime(tmp_path, mistral, "decoder", name="dec", pooling="mean", normalize=False, **kw)
    _close(dec.encode(TEXTS, 1, progress=False), st_rt.encode(TEXTS, 1, progress=False))


def test_named_prompts_follow_the_folder_and_none_is_the_default(tmp_path):
    card = PAPER_MODELS["embeddinggemma-300m"]
    folder = build_tiny(card.arch, tmp_path / "gemma", sentence_transformers=card)
    named = _runtime(tmp_path, folder, "sentence-transformers", name="g", prompt_name="query")
    literal = _runtime(tmp_path, folder, "sentence-transformers", name="g", prompt=card.prompts["query"])
    plain = _runtime(tmp_path, folder, "sentence-transformers", name="g")
    assert named.describe()["prompt_used"] == card.prompts["query"] and plain.describe()["prompt_used"] == ""
    np.testing.assert_array_equal(named.encode(TEXTS, 2, progress=False), literal.encode(TEXTS, 2, progress=False))
    plain.model.default_prompt_name = "query"  # a folder's default prompt is not applied: the paper used none
    assert np.abs(plain.encode(TEXTS, 2, progress=False) - named.encode(TEXTS, 2, progress=False)).max() > 1e-3
    with pytest.raises(Exception, match=r"prompt_name 'qeury'.*\['document', 'query'\]"):
        _runtime(tmp_path, folder, "sentence-transformers", name="g", prompt_name="qeury")


def test_a_class_that_stays_causal_is_refused_by_name(mistral, monkeypatch):
    from repgeom.activations import attention

    monkeypatch.setattr(attention, "_make_bidirectional", lambda model: 0)
    with pytest.raises(AttentionModeError, match=r"MistralModel.*bidirectional was asked for.*attention: causal"):
        A.load_decoder(mistral, attention="bidirectional")


def test_load_records_the_attention_kernel(mistral):
    model, _, info = A.load_decoder(mistral)
    assert info["attn_implementation"] == "sdpa" and info["attention"] == "causal" and info["device_map"] is None
    assert not attends_ahead(model)


@pytest.mark.parametrize(
    "entry, culprit",
    [
        ({"runtime": "sentence-transformers", "attention": "bidirectional"}, r"m\.attention' = 'bidirectional'"),
        ({"runtime": "decoder", "prompt_name": "query"}, r"m\.prompt_name' = 'query'.*'prompt'"),
        ({"runtime": "sentence-transformers", "prompt_name": "query", "prompt": "q: "}, r"'prompt' or 'prompt_name'"),
        ({"runtime": "decoder", "include_prompt": False}, r"m\.include_prompt' = false.*pooling: mean"),
    ],
)
def test_usage_keys_a_runtime_cannot_honour_are_refused(entry, culprit):
    cfg = {"models": {"m": {"source": {"type": "local", "path": "/x"}, **entry}}}
    with pytest.raises(Exception, match=culprit):
        validate_config(cfg)


def test_weights_spread_over_gpus_only_when_one_cannot_hold_them():
    gib = 2**30
    assert not spread_over_gpus(15 * gib, [80 * gib])  # one GPU: never spread
    assert not spread_over_gpus(15 * gib, [80 * gib, 80 * gib])  # fits the first
    assert spread_over_gpus(70 * gib, [80 * gib, 80 * gib])  # above 80 % of the first's free memory
    assert not spread_over_gpus(70 * gib, [80 * gib])
