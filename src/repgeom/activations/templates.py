"""Prompt templates: how a text is presented to a frozen decoder, and which of its tokens a ``mean`` reads.

A :class:`Template` is a format string holding ``{text}`` once or more (the only placeholder; other braces are
literal), optionally wrapped in the tokenizer's chat template as one user turn (``chat: true``, for instruct
models). The ``last`` position reads the last token of the whole input, as before. The ``mean`` position averages
the tokens of the *last* copy of the text only (the text's own tokens, not the template's; echo embeddings'
"mean over the second copy"): a span of token positions in the rendered input, found per text from the tokens
themselves (:func:`text_spans`), so it is right for any tokenizer however it splits the template's words; a
token the template shares with the text's first or last characters counts as the text's.

The template ``plain`` (``{text}`` alone) is the paper's presentation and stays exactly today's extraction: no
template is applied and the ``mean`` is over every real token (a BOS included, where the tokenizer adds one).

Templates known by name (:data:`KNOWN`; the config's ``sts.templates`` may use them or write its own):

``plain``       ``{text}`` (FREEZE; positions last and mean)
``prompteol``   PromptEOL's one-word summary, ``This sentence : "{text}" means in one word:"`` (last token)
``echo``        echo embeddings, the text twice, the mean over the second copy
``prompteol_chat``  PromptEOL inside the tokenizer's chat template (instruct models; last token)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

PLACEHOLDER = "{text}"
PLAIN = "plain"


@dataclass(frozen=True)
class Template:
    """A named presentation of each text (see the module docstring)."""

    name: str
    format: str
    positions: tuple[str, ...] = ("last",)
    chat: bool = False

    def __post_init__(self) -> None:
        if PLACEHOLDER not in self.format:
            raise ValueError(f"template {self.name!r}: format {self.format!r} holds no {PLACEHOLDER}")
        if self.name == PLAIN and (self.format != PLACEHOLDER or self.chat):
            raise ValueError(f"template {PLAIN!r} is the text alone ({PLACEHOLDER!r}, no chat); name yours otherwise")

    @property
    def is_plain(self) -> bool:
        """The text as it is: no rendering, a mean over every real token (today's extraction)."""
        return self.format == PLACEHOLDER and not self.chat

    def render(self, text: str, tokenizer: PreTrainedTokenizerBase | None = None) -> str:
        """The input the model reads for ``text`` (the chat template needs the ``tokenizer``)."""
        body = self.format.replace(PLACEHOLDER, text)
        return _chat(tokenizer, body, self.name) if self.chat else body

    def head(self, text: str, tokenizer: PreTrainedTokenizerBase | None = None) -> str:
        """Everything rendered before the last copy of ``text`` (the input is ``head + text + tail``)."""
        before = self.format.rsplit(PLACEHOLDER, 1)[0].replace(PLACEHOLDER, text)
        if not self.chat:
            return before
        full, body = self.render(text, tokenizer), self.format.replace(PLACEHOLDER, text)
        k = full.rfind(body)
        if k < 0:
            raise ValueError(
                f"template {self.name!r}: the tokenizer's chat template does not keep the message verbatim; "
                "set chat: false and write the chat markup into the format"
            )
        return full[:k] + before

    def params(self) -> dict[str, Any]:
        """A plain dict (the activation stage's ``template`` parameter and the shards' provenance)."""
        d = asdict(self)
        d["positions"] = list(self.positions)
        return d

    @classmethod
    def from_params(cls, name: str, spec: Mapping[str, Any]) -> Template:
        return cls(
            name=name,
            format=str(spec["format"]),
            positions=tuple(spec.get("positions", ("last",))),
            chat=bool(spec.get("chat", False)),
        )


#: templates known by name (the config's defaults and documented options)
KNOWN: dict[str, Template] = {
    t.name: t
    for t in (
        Template(PLAIN, PLACEHOLDER, ("last", "mean")),
        Template("prompteol", 'This sentence : "{text}" means in one word:"', ("last",)),
        Template("echo", "Rewrite the sentence: {text}\nRewritten sentence: {text}", ("mean",)),
        Template("prompteol_chat", 'This sentence : "{text}" means in one word:"', ("last",), chat=True),
    )
}


def _chat(tokenizer: PreTrainedTokenizerBase | None, body: str, name: str) -> str:
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"template {name!r} asks for the chat template (chat: true), but the tokenizer has none; "
            "use an instruct model or set chat: false"
        )
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": body}], tokenize=False, add_generation_prompt=True
    )


def _ids(tokenizer: PreTrainedTokenizerBase, strings: Sequence[str]) -> list[list[int]]:
    from .batching import tokenize

    return tokenize(tokenizer, strings)


def _strip_trailing_special(ids: list[int], special: set[int]) -> list[int]:
    """``ids`` less a special token the tokenizer appends at the end (an EOS belongs to what follows)."""
    return ids[:-1] if len(ids) > 1 and ids[-1] in special else ids


def render_all(
    template: Template, texts: Sequence[str], tokenizer: PreTrainedTokenizerBase
) -> tuple[list[str], np.ndarray]:
    """``(inputs, spans)``: each text rendered, and the token span ``[start, stop)`` of its last copy in the
    rendered input's tokens (special tokens counted), int64 ``(n, 2)``. ``plain``: the texts unchanged and the
    span of every token."""
    if template.is_plain:
        lens = np.array([len(x) for x in _ids(tokenizer, texts)], dtype=np.int64)
        return list(texts), np.stack([np.zeros_like(lens), lens], axis=1)
    inputs = [template.render(t, tokenizer) for t in texts]
    return inputs, text_spans(template, texts, inputs, tokenizer)


def text_spans(
    template: Template,
    texts: Sequence[str],
    inputs: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    chunk: int = 1024,
) -> np.ndarray:
    """The token span ``[start, stop)`` of the last copy of each text in its rendered input: every token of the
    input that holds a character of that copy. A token the template shares with the text's first or last
    characters (``."`` from a text's full stop and PromptEOL's closing quote) is the text's too. With a fast
    tokenizer the tokens' own character offsets say which; a slow one (no offsets) is aligned by tokenising the
    head and the tail alone and matching them against the input's first and last tokens (:func:`_prefix_spans`). A text with no token
    of its own is a :class:`ValueError` naming the row."""
    out = np.zeros((len(texts), 2), dtype=np.int64)
    for s in range(0, len(texts), chunk):
        part = texts[s : s + chunk]
        heads = [template.head(t, tokenizer) for t in part]
        if getattr(tokenizer, "is_fast", False):
            enc = tokenizer(
                list(inputs[s : s + chunk]), add_special_tokens=True, return_offsets_mapping=True, verbose=False
            )
            spans = [_offset_span(o, len(h), len(h) + len(t)) for o, h, t in zip(enc["offset_mapping"], heads, part)]
        else:
            spans = _prefix_spans(tokenizer, heads, part, inputs[s : s + chunk])
        for i, (a, b) in enumerate(spans):
            if b <= a:
                raise ValueError(
                    f"template {template.name!r}, row {s + i} ({part[i][:60]!r}): the text has no token of its own "
                    f"in the rendered input; put a space or punctuation on both sides of {PLACEHOLDER} in the format"
                )
            out[s + i] = (a, b)
    return out


def _offset_span(offsets: Sequence[tuple[int, int]], c0: int, c1: int) -> tuple[int, int]:
    """The tokens whose characters overlap ``[c0, c1)`` (special tokens, offsets ``(0, 0)``, never do)."""
    hit = [k for k, (a, b) in enumerate(offsets) if b > a and a < c1 and b > c0]
    return (hit[0], hit[-1] + 1) if hit else (0, 0)


def _prefix_spans(
    tokenizer: PreTrainedTokenizerBase, heads: Sequence[str], texts: Sequence[str], inputs: Sequence[str]
) -> list[tuple[int, int]]:
    """Spans by tokens alone: ``start`` = how many of the input's first tokens are the head's own (specials
    included), ``stop`` = where the input's last tokens stop being the tail's own (the tail tokenised alone, compared
    from the end; a trailing special token set aside). What lies between holds the text, with any token that
    straddles its edges."""
    special = set(tokenizer.all_special_ids)
    h_ids = _ids(tokenizer, heads)
    tails = []
    for h, t, x in zip(heads, texts, inputs):
        if not x.startswith(h + t):
            raise ValueError(f"the input {x[:60]!r} does not begin with its head and text")
        tails.append(x[len(h) + len(t) :])
    t_ids = tokenizer(tails, add_special_tokens=False, verbose=False)["input_ids"] if tails else []
    out = []
    for h, tl, f in zip(h_ids, t_ids, _ids(tokenizer, inputs)):
        h = _strip_trailing_special(h, special)
        core = _strip_trailing_special(f, special)
        a = _common(core, h)
        b = len(core) - _common(core[::-1], tl[::-1])
        out.append((a, b))
    return out


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    """The length of the common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
