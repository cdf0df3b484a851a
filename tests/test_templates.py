"""Prompt templates: rendering, the span of the text's own tokens (both real tokenizers: SmolLM2's byte-level BPE
and Gemma 3's SentencePiece), pooling over that span, and the activation stage with a template."""

import csv

import numpy as np
import pytest
import torch
from conftest import SHARED

from repgeom import activations as A
from repgeom.activations.batching import iter_pooled, tokenize
from repgeom.activations.templates import KNOWN, PLAIN, Template, _prefix_spans, render_all, text_spans
from repgeom.architectures import build_tiny

EDGES = [
    '"Then the captain was gone.',  # the template's quote meets the text's
    "PACIFIC REQUIREMENTS .",
    ".Nazi is a slang term.",
    "x",
    "Ünïcödé words — and emoji 🙂 too.",
    "  leading and trailing spaces  ",
]


def _stsb_sentences(n=1500):
    texts = []
    for f in ("sts-train.csv", "sts-dev.csv"):
        with open(SHARED / "stsb" / f, encoding="utf-8") as fh:
            for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                texts += row[5:7]
    return list(dict.fromkeys(texts))[:n] + EDGES


def test_template_rules():
    with pytest.raises(ValueError, match="holds no"):
        Template("t", "no placeholder")
    with pytest.raises(ValueError, match="'plain' is the text alone"):
        Template(PLAIN, "Say {text}")
    echo = KNOWN["echo"]
    assert echo.render("a b") == "Rewrite the sentence: a b\nRewritten sentence: a b"
    assert echo.head("a b") == "Rewrite the sentence: a b\nRewritten sentence: "
    t = Template("braces", "{json: {text}} {other}")  # only {text} is a placeholder
    assert t.render("x") == "{json: x} {other}" and t.head("x") == "{json: "
    assert KNOWN[PLAIN].is_plain and not KNOWN["prompteol"].is_plain
    assert Template.from_params("e", echo.params()) == Template("e", echo.format, echo.positions)


@pytest.fixture(scope="module", params=["smollm2", "gemma"])
def tokenizer(request):
    from transformers import AutoTokenizer

    if request.param == "gemma":
        return AutoTokenizer.from_pretrained(request.getfixturevalue("gemma_tokenizer"))
    return AutoTokenizer.from_pretrained(request.getfixturevalue("prepared_smollm2") / "model")


@pytest.mark.model
@pytest.mark.parametrize("name", ["prompteol", "echo"])
def test_spans_hold_exactly_the_texts_own_tokens(tokenizer, name):
    """Every span decodes to the text (plus at most the template characters a boundary token shares with it), its
    inner tokens to a part of the text; echo's span lies in the second copy; a slow tokenizer's alignment (tokens
    only) agrees wherever no token straddles the boundary."""
    t = KNOWN[name]
    texts = _stsb_sentences()
    inputs, spans = render_all(t, texts, tokenizer)
    ids = tokenize(tokenizer, inputs)
    shared = 0
    for i, text in enumerate(texts):
        a, b = spans[i]
        whole = tokenizer.decode(ids[i][a:b])
        inner = tokenizer.decode(ids[i][a + 1 : b - 1]) if b - a > 2 else ""
        assert text.strip() in whole, (text, whole)
        assert inner.strip().strip("\ufffd") in text, (text, inner)  # a byte-level edge token may split a letter
        shared += whole.strip() != text.strip()
        if name == "echo":
            assert "Rewritten sentence:" in tokenizer.decode(ids[i][:a])  # the second copy, not the first
    assert shared < len(texts)  # most PromptEOL texts share '."' with the template; echo's never do
    if name == "echo":
        assert shared == 0
    heads = [t.head(x) for x in texts]
    slow = np.array(_prefix_spans(tokenizer, heads, texts, inputs))
    clean = np.array(
        [tokenizer.decode(ids[i][a:b]).strip() == x.strip() for i, (x, (a, b)) in enumerate(zip(texts, spans))]
    )
    assert clean.sum() >= (len(texts) if name == "echo" else 5)
    np.testing.assert_array_equal(slow[clean], spans[clean])
    for i, (a, b) in enumerate(slow):  # and the slow alignment holds the text wherever tokens straddle the edges
        assert texts[i].strip() in tokenizer.decode(ids[i][a:b]), (texts[i], tokenizer.decode(ids[i][a:b]))


@pytest.mark.model
def test_chat_template_keeps_the_text_and_its_span(prepared_smollm2):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(prepared_smollm2 / "model")
    t = KNOWN["prompteol_chat"]
    texts = _stsb_sentences(50)
    inputs, spans = render_all(t, texts, tok)
    assert all(x.startswith("<|im_start|>") and "means in one word" in x for x in inputs)
    for x, inp, (a, b) in zip(texts, inputs, spans):
        assert x.strip() in tok.decode(tokenize(tok, [inp])[0][a:b])
    with pytest.raises(ValueError, match="has no chat template|tokenizer has none"):
        Template("c", "{text}", chat=True).render("x", None)


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    return build_tiny("gpt2", tmp_path_factory.mktemp("tiny") / "gpt2")


TEXTS = ["1, 2, 3, 4", "2, 4, 6, 8, 10, 12", "a prime: 2, 3, 5", "7", "odd numbers 1, 3, 5, 7, 9, 11, 13", "x y"]


@pytest.mark.parametrize("side", ["right", "left"])
def test_mean_over_a_span_equals_the_mean_of_those_tokens(gpt2, side, one_torch_thread):
    """Batched, padded on either side: the mean over each text's span is the mean of exactly those positions of an
    unpadded forward pass of that text alone."""
    from transformers import AutoModel, AutoTokenizer

    model, tok = AutoModel.from_pretrained(gpt2).eval(), AutoTokenizer.from_pretrained(gpt2)
    echo = KNOWN["echo"]
    inputs, spans = render_all(echo, TEXTS, tok)
    got = np.zeros((len(TEXTS), model.config.hidden_size), dtype=np.float32)
    for _, _, rows, res in iter_pooled(
        model, tok, inputs, positions=("mean",), batch_size=4, padding_side=side, spans=spans
    ):
        got[rows] = res["mean"].numpy()
    with torch.inference_mode():
        for i, inp in enumerate(inputs):
            ids = torch.tensor([tokenize(tok, [inp])[0]])
            h = model(input_ids=ids).last_hidden_state[0]
            a, b = spans[i]
            np.testing.assert_allclose(got[i], h[a:b].mean(0).numpy(), rtol=1e-4, atol=1e-5)
            assert not np.allclose(got[i], h.mean(0).numpy(), atol=1e-4)  # not the mean over the whole input


def test_text_without_tokens_of_its_own_is_refused(gpt2):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gpt2)
    t = KNOWN["echo"]
    inputs, spans = render_all(t, TEXTS, tok)
    with pytest.raises(ValueError, match=r"keep no token of their own for a mean \(first at row 1"):
        from transformers import AutoModel

        model = AutoModel.from_pretrained(gpt2)
        list(iter_pooled(model, tok, inputs, positions=("mean",), max_length=int(spans[1, 0]), spans=spans))
    with pytest.raises(ValueError, match="row 0 .* no token of its own"):
        text_spans(Template("t", "{text}{text}"), [""], [""], tok)


def test_extraction_with_a_template(gpt2, tmp_path, one_torch_thread):
    """A template's ``last`` shard is the plain extraction of the rendered inputs (the same batches: bit for bit);
    its ``mean`` is over the text's own tokens; the shards record the template and the raw texts' digest."""
    ids = [f"t{i}" for i in range(len(TEXTS))]
    kw = dict(model="tiny", positions=("last", "mean"), batch_size=4, store_dtype="float32", progress=False)
    t = KNOWN["prompteol"]
    A.extract(TEXTS, ids, gpt2, tmp_path / "tpl", template=t, **kw)
    rendered = [t.render(x) for x in TEXTS]
    A.extract(rendered, ids, gpt2, tmp_path / "rendered", **kw)
    A.extract(TEXTS, ids, gpt2, tmp_path / "plain", **kw)
    for L in A.list_layers(tmp_path / "tpl"):
        X, got_ids, attrs = A.load_layer(tmp_path / "tpl", L)
        np.testing.assert_array_equal(X, A.load_layer(tmp_path / "rendered", L)[0])
        assert attrs["template"] == "prompteol" and attrs["template_format"] == t.format
        assert attrs["texts_sha256"] == A.load_layer(tmp_path / "plain", L)[2]["texts_sha256"]
        Xm = A.load_layer(tmp_path / "tpl", L, position="mean")[0]
        assert not np.allclose(Xm, A.load_layer(tmp_path / "rendered", L, position="mean")[0])
    assert A.load_layer(tmp_path / "plain", 1)[2]["template"] == PLAIN
    with pytest.raises(ValueError, match="all-token shards take plain texts"):
        A.extract(TEXTS, ids, gpt2, tmp_path / "tok", template=t, **{**kw, "positions": ("tokens",)})
