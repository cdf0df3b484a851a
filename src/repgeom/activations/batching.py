"""The one decoder forward path: tokenise, sort by length, pad, run the model, pool, put rows back in order.

Both the activation capture (raw block outputs, through hooks: :mod:`.capture`) and the ``decoder`` embedding
runtime (the final, normalised hidden state: :class:`repgeom.embeddings.DecoderRuntime`) run their texts through
:func:`iter_pooled`, so a "last token" and a "mean" are the same thing in both (:mod:`.pooling`).

The texts are taken in *windows* of ``sort_window`` consecutive rows (``None``: all texts in one window); inside a
window they are sorted by token length (longest first, so an out-of-memory error shows up at once) into batches,
so padding is small, and every batch carries the original row indices. Padding on the ``right`` or the ``left``;
explicit ``position_ids`` (cumsum of the mask − 1) keep absolute-position models exact under left padding.
``skip_tokens`` leaves a prompt's leading tokens out of the ``mean`` (GritLM's "mean over the text after the
instruction"; :func:`prompt_tokens` counts them as sentence-transformers does); ``spans`` gives each text the token
range ``[start, stop)`` a ``mean`` reads (a template's copy of the text, :mod:`.templates`); ``last`` is unaffected.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .backoff import Backoff
from .batch import Batch
from .pooling import POSITIONS, pool

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

PADDING_SIDES = ("right", "left")
TIES = ("first", "last")


# --------------------------------------------------------------------------- tokenising
def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    """Token ids with the tokenizer's special tokens (BOS where it adds one), untruncated."""
    return tokenizer(
        list(texts), add_special_tokens=True, truncation=False, return_attention_mask=False, verbose=False
    )["input_ids"]


def token_lengths(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], ids: Sequence[str] | None = None, chunk: int = 1024
) -> np.ndarray:
    """Untruncated token counts (int64); a text that tokenises to nothing is a :class:`ValueError`."""
    lens = np.zeros(len(texts), dtype=np.int64)
    for s in range(0, len(texts), chunk):
        lens[s : s + chunk] = [len(t) for t in tokenize(tokenizer, texts[s : s + chunk])]
    empty = np.flatnonzero(lens == 0)
    if len(empty):
        rows = ", ".join(f"{i}" + (f" (id {ids[i]!r})" if ids is not None else "") for i in empty[:5])
        raise ValueError(
            f"{len(empty)} text(s) tokenise to no tokens at all (empty text, and the tokenizer adds "
            f"no BOS token), first at row {rows}; a decoder has no last token to read for them. "
            "Drop or fill these rows."
        )
    return lens


def prompt_tokens(tokenizer: PreTrainedTokenizerBase, prompt: str) -> int:
    """How many leading tokens of ``prompt + text`` are the prompt's: the prompt tokenised with the special tokens
    (a BOS counts), less a trailing special token the tokenizer appends (an EOS is the text's, not the prompt's);
    the count sentence-transformers' ``include_prompt=False`` leaves out. 0 for no prompt."""
    if not prompt:
        return 0
    ids = tokenize(tokenizer, [prompt])[0]
    if ids and ids[-1] in set(tokenizer.all_special_ids) and len(ids) > 1:
        ids = ids[:-1]
    return len(ids)


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id that fills padded positions: the pad token, else EOS, else 0 (masked out either way)."""
    for v in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if v is not None:
            return int(v)
    return 0


def length_order(lens: np.ndarray, ties: str = "first") -> np.ndarray:
    """Row indices, longest first; among equal lengths the earlier row first (``first``) or the later (``last``).

    The ``decoder`` embedding runtime has always broken ties ``last``; kept, so its batches (and so its
    embeddings) stay bit-identical.
    """
    if ties == "first":
        return np.argsort(-lens, kind="stable")
    if ties == "last":
        return np.argsort(lens, kind="stable")[::-1]
    raise ValueError(f"ties: {ties!r} is not one of {TIES}")


# --------------------------------------------------------------------------- batches
def forward_kwargs(model: torch.nn.Module) -> tuple[bool, dict]:
    """``(takes position_ids, extra keyword arguments)`` of the model's forward (``use_cache=False`` where taken)."""
    params = inspect.signature(model.forward).parameters
    takes_pos = "position_ids" in params
    extra = {"use_cache": False} if "use_cache" in params else {}
    return takes_pos, extra


def pad_batch(
    enc: Sequence[Sequence[int]], lens: np.ndarray, sel: np.ndarray, pad: int, padding_side: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)`` int64 (B, width) of the rows ``sel`` of ``enc``, each cut to ``lens``."""
    width = int(lens[sel].max())
    ids = np.full((len(sel), width), pad, dtype=np.int64)
    mask = np.zeros((len(sel), width), dtype=np.int64)
    for r, i in enumerate(sel):
        n = lens[i]
        if padding_side == "right":
            ids[r, :n], mask[r, :n] = enc[i][:n], 1
        else:
            ids[r, width - n :], mask[r, width - n :] = enc[i][:n], 1
    return ids, mask


def make_batch(
    ids: np.ndarray,
    mask: np.ndarray,
    lens: np.ndarray,
    rows: np.ndarray,
    padding_side: str,
    device: torch.device,
    takes_pos: bool,
    extra: dict,
    skip_tokens: int = 0,
    spans: np.ndarray | None = None,
) -> Batch:
    """Move one padded batch to ``device`` with its position ids, the index of each row's last real token and the
    mask a mean averages over (real tokens after the first ``skip_tokens``; with ``spans`` (B, 2), the real
    tokens ``start <= i < stop`` of each row)."""
    import torch

    ids_t = torch.from_numpy(ids).to(device)
    mask_t = torch.from_numpy(mask).to(device)
    inputs = {"input_ids": ids_t, "attention_mask": mask_t}
    count = mask_t.cumsum(1)
    if takes_pos:
        inputs["position_ids"] = (count - 1).clamp(min=0)
    pool_mask = mask_t * (count > skip_tokens) if skip_tokens else mask_t
    if spans is not None:
        sp = torch.from_numpy(np.ascontiguousarray(spans)).to(device)
        pool_mask = pool_mask * (count > sp[:, :1]) * (count <= sp[:, 1:])
    inputs.update(extra)
    if padding_side == "right":
        last = torch.from_numpy(lens - 1).to(device)
    else:
        last = torch.full((len(rows),), ids.shape[1] - 1, dtype=torch.long, device=device)
    return Batch(rows=rows, inputs=inputs, mask=mask_t, last=last, pool_mask=pool_mask)


def iter_windows(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    batch_size: int,
    max_length: int,
    padding_side: str = "right",
    sort_window: int | None = None,
    ties: str = "first",
    skip_tokens: int = 0,
    spans: np.ndarray | None = None,
) -> Iterator[tuple[int, int, Batch]]:
    """Yield ``(w0, w1, batch)``: every batch of the window ``[w0, w1)`` before the next window starts.

    ``batch.rows`` are original indices. Texts are cut to ``max_length`` tokens (the head is kept). With
    ``skip_tokens`` (a prompt's), a text that keeps no token after them is a :class:`ValueError`; with ``spans``
    (``(len(texts), 2)`` token ranges a mean reads), so is a text whose range keeps no token.
    """
    if padding_side not in PADDING_SIDES:
        raise ValueError(f"padding_side: {padding_side!r} is not 'right' or 'left'")
    if batch_size < 1 or max_length < 1 or (sort_window is not None and sort_window < 1):
        raise ValueError("batch_size, max_length and sort_window must be >= 1")
    window = max(1, len(texts)) if sort_window is None else sort_window
    takes_pos, extra = forward_kwargs(model)
    if padding_side == "left" and not takes_pos:
        raise ValueError(f"{type(model).__name__}.forward takes no position_ids; use padding_side 'right'")
    device = next(model.parameters()).device
    pad = pad_id(tokenizer)
    for w0 in range(0, len(texts), window):
        w1 = min(w0 + window, len(texts))
        enc = tokenize(tokenizer, texts[w0:w1])
        lens = np.array([min(len(e), max_length) for e in enc], dtype=np.int64)
        if (lens == 0).any():
            token_lengths(tokenizer, texts[w0:w1])  # raises the explanatory error
        if spans is not None:
            _check_spans(spans[w0:w1], lens, max_length, w0)
        if skip_tokens and (lens <= skip_tokens).any():
            bad = np.flatnonzero(lens <= skip_tokens)
            raise ValueError(
                f"{len(bad)} text(s) keep no token after the prompt's {skip_tokens} (first at row {w0 + bad[0]}, "
                f"{lens[bad[0]]} tokens with max_length {max_length}), so a mean over the text alone is empty: "
                "raise max_length, or fill the text."
            )
        order = length_order(lens, ties)
        for s in range(0, len(order), batch_size):
            sel = order[s : s + batch_size]
            ids, mask = pad_batch(enc, lens, sel, pad, padding_side)
            yield (
                w0,
                w1,
                make_batch(
                    ids,
                    mask,
                    lens[sel],
                    sel + w0,
                    padding_side,
                    device,
                    takes_pos,
                    extra,
                    skip_tokens,
                    None if spans is None else spans[sel + w0],
                ),
            )


def _check_spans(spans: np.ndarray, lens: np.ndarray, max_length: int, w0: int) -> None:
    """Every text's mean range keeps a token after truncation to ``max_length``, else a :class:`ValueError`."""
    if len(spans) != len(lens):
        raise ValueError(f"spans: {len(spans)} rows for a window of {len(lens)} texts")
    bad = np.flatnonzero(np.minimum(spans[:, 1], lens) <= spans[:, 0])
    if len(bad):
        i = bad[0]
        raise ValueError(
            f"{len(bad)} text(s) keep no token of their own for a mean (first at row {w0 + i}: tokens "
            f"{spans[i, 0]}–{spans[i, 1]} of the input, {lens[i]} kept with max_length {max_length}); raise "
            "max_length, or shorten the template"
        )


def final_hidden_state(model: torch.nn.Module, batch: Batch, positions: Sequence[str]) -> dict[str, Any]:
    """Pool the model's final hidden state (``last_hidden_state``: after its final norm), upcast to float32."""
    hidden = model(**batch.inputs).last_hidden_state.float()
    return pool(hidden, batch.pool_mask, batch.last, positions)


def iter_pooled(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    positions: Sequence[str] = ("last",),
    read: Callable[[Any, Batch, Sequence[str]], dict[str, Any]] = final_hidden_state,
    batch_size: int = 16,
    max_length: int = 512,
    padding_side: str = "right",
    sort_window: int | None = None,
    ties: str = "first",
    backoff: Backoff | None = None,
    skip_tokens: int = 0,
    spans: np.ndarray | None = None,
) -> Iterator[tuple[int, int, np.ndarray, dict[str, Any]]]:
    """Run the model over ``texts``; yield ``(w0, w1, rows, {position: tensor})`` per batch, on the model's device.

    ``read(model, batch, positions)`` runs the forward pass and pools: :func:`final_hidden_state` by default
    (``(B, d)`` per position); the activation capture reads block outputs through hooks instead. Batching as in
    :func:`iter_windows`; runs under ``torch.inference_mode``. A batch that runs out of memory is halved
    (:class:`.backoff.Backoff`; pass one to read its record).
    """
    import torch

    run = backoff if backoff is not None else Backoff()
    bad = [p for p in positions if p not in POSITIONS]
    if bad or not positions:
        raise ValueError(f"positions: {list(positions)!r}; each must be one of {POSITIONS}")
    with torch.inference_mode():
        for w0, w1, batch in iter_windows(
            model,
            tokenizer,
            texts,
            batch_size=batch_size,
            max_length=max_length,
            padding_side=padding_side,
            sort_window=sort_window,
            ties=ties,
            skip_tokens=skip_tokens,
            spans=spans,
        ):
            res = run(read, model, batch, positions)
            yield w0, w1, batch.rows, res
