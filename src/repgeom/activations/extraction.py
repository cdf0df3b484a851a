"""One extraction run, :func:`extract`, in steps: check the arguments, load the model and count tokens, describe
the run (the shards' shared attributes), run every text through the hooks into the :class:`.writer.ShardWriter`,
verify and rename, summarise."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import fsync_dir, library_versions, texts_sha256
from ..params import ActivationParams
from .backoff import Backoff
from .batching import PADDING_SIDES, token_lengths, tokenize
from .blocks import find_blocks, resolve_layers
from .capture import iter_batches
from .layout import FORMAT_VERSION, STORE_DTYPES, shard_path, window_rows
from .model import load_decoder
from .pooling import POSITIONS
from .templates import PLAIN, Template, render_all
from .tokens import TOKENS, announce
from .writer import ShardWriter, remove_stale_temps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Settings:
    """What :func:`extract` was asked for, checked (``sort_window`` in whole chunks)."""

    model: str
    positions: tuple[str, ...]
    batch_size: int
    max_length: int
    padding_side: str
    sort_window: int
    store_dtype: str
    compression: str | None
    progress: bool


@dataclass
class _Loaded:
    """The model side of one run: the model, where its blocks are, the layers and the texts' token counts."""

    net: Any
    tok: Any
    info: dict
    blocks_path: str
    blocks: Any
    layers: list[int]
    n_truncated: int
    n_tokens: np.ndarray
    d: int
    inputs: list[str]  # what the model reads: the texts, rendered by the template
    spans: np.ndarray | None  # each input's token range a mean reads (a template's copy of the text), or None


def _check_arguments(
    texts: Sequence[str],
    ids: Sequence[str],
    positions: Sequence[str],
    store_dtype: str,
    compression: str | None,
    padding_side: str,
) -> tuple[list[str], list[str], np.ndarray, tuple]:
    """``(texts, ids, ids as fixed-length UTF-8, positions without repeats)``, or a ValueError before any work."""
    import h5py

    # no copies of lists that are lists of str already, and no list of encoded ids: at 200k texts these were a
    # third of what a job's peak memory grows by with N (the texts themselves are the rest)
    texts = texts if isinstance(texts, list) else list(texts)
    ids = ids if isinstance(ids, list) and all(type(i) is str for i in ids) else [str(i) for i in ids]
    if len(texts) != len(ids):
        raise ValueError(f"{len(texts)} texts but {len(ids)} ids")
    if not texts:
        raise ValueError("no texts to extract")
    if len(set(ids)) != len(ids):
        raise ValueError("ids are not unique")
    width = 0
    for i in ids:
        b = i.encode("utf-8")
        if not b or b.endswith(b"\0"):
            raise ValueError("ids must be non-empty and must not end in NUL characters")
        width = max(width, len(b))
    # fixed-length UTF-8 (reads 5x faster than variable-length), filled without a list of the encoded ids
    ids_bytes = np.fromiter((i.encode("utf-8") for i in ids), dtype=f"S{width}", count=len(ids)).view(
        h5py.string_dtype("utf-8", width)
    )
    positions = tuple(dict.fromkeys(positions))
    if not positions or any(p not in POSITIONS for p in positions):
        raise ValueError(f"positions: {list(positions)!r}; each must be one of {POSITIONS}")
    if store_dtype not in STORE_DTYPES:
        raise ValueError(f"store_dtype: {store_dtype!r} is not one of {', '.join(STORE_DTYPES)}")
    if compression not in (None, "gzip", "lzf"):
        raise ValueError(f"compression: {compression!r} is not None, 'gzip' or 'lzf'")
    if padding_side not in PADDING_SIDES:
        raise ValueError(f"padding_side: {padding_side!r} is not 'right' or 'left'")
    return texts, ids, ids_bytes, positions


def _load(
    model_dir,
    s: _Settings,
    texts: list[str],
    ids: list[str],
    layers,
    include_embeddings: bool,
    dtype: str,
    device: str,
    template: Template | None = None,
) -> _Loaded:
    """Load the model, find its blocks, resolve the layers, render the texts with the template (and find the text's
    tokens in each) and count tokens (fails fast on empty texts)."""
    net, tok, info = load_decoder(model_dir, dtype=dtype, device=device)
    path, blocks = find_blocks(net, s.model)
    sel = resolve_layers(len(blocks), layers, include_embeddings)
    inputs, spans = texts, None
    if template is not None and not template.is_plain:
        inputs, spans = render_all(template, texts, tok)
        log.info("template %r: %r", template.name, inputs[0][:200])
    lens = token_lengths(tok, inputs, ids)  # fails fast on empty texts, before any file exists
    n_trunc = int((lens > s.max_length).sum())
    if n_trunc:
        log.warning(
            "model %s: %d of %d texts exceed max_length=%d tokens and are truncated",
            s.model,
            n_trunc,
            len(texts),
            s.max_length,
        )
    n_tokens = np.minimum(lens, s.max_length).astype(np.int32)
    d = int(getattr(net.config, "hidden_size", 0) or net.get_input_embeddings().embedding_dim)
    log.info(
        "model %s: %d texts, layers %s of %d, positions %s, batch %d, %s on %s",
        s.model,
        len(texts),
        _ranges(sel),
        len(blocks),
        list(s.positions),
        s.batch_size,
        info["dtype"],
        info["device"],
    )
    return _Loaded(net, tok, info, path, blocks, sel, n_trunc, n_tokens, d, inputs, spans)


def _base_attrs(
    lm: _Loaded,
    s: _Settings,
    texts: list[str],
    ids: list[str],
    extra_attrs: Mapping[str, Any] | None,
    template: Template | None = None,
) -> dict:
    """The attributes every shard of this run gets (then its layer, position, checksum and timings)."""
    info = lm.info
    attrs = {
        "kind": "activations", "format_version": FORMAT_VERSION,
        "model": s.model, "model_fingerprint": info["fingerprint"], "model_source": info["source"],
        "model_revision": info["revision"], "architecture": type(lm.net).__name__, "blocks_path": lm.blocks_path,
        "n_layers_total": len(lm.blocks), "layers_in_run": lm.layers, "padding_side": s.padding_side,
        "max_length": int(s.max_length), "n_truncated": lm.n_truncated, "add_special_tokens": True,
        "compute_dtype": info["dtype"], "dtype_reason": info["dtype_reason"], "store_dtype": s.store_dtype,
        "device": info["device"], "batch_size": int(s.batch_size), "sort_window": s.sort_window, "compression": s.compression,
        "n": len(texts), "d": lm.d, "texts_sha256": texts_sha256(texts), "ids_sha256": texts_sha256(ids),
        "template": template.name if template else PLAIN, "template_format": template.format if template else "{text}",
        "template_chat": bool(template and template.chat),
        "versions": library_versions(), **(extra_attrs or {}),
    }  # fmt: skip
    return {"run_id": run_id(attrs), **attrs}


def run_id(attrs: Mapping[str, Any]) -> str:
    """A run's id, derived from what made it (its model, texts, settings, part, software), not from when: the shards
    of one run share it (readers refuse a folder that mixes runs), and a run made again from the same inputs gets the
    same id, so that its shards are the same content when their rows are (the action cache's early cutoff)."""
    return hashlib.sha256(json.dumps(attrs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _encode(lm: _Loaded, s: _Settings, texts: list[str], writer: ShardWriter) -> tuple[float, Backoff]:
    """Run every text through the model into ``writer``; returns the seconds it took and the out-of-memory
    back-off's record."""
    from tqdm.auto import tqdm

    backoff = Backoff(model_name=s.model)
    bar = tqdm(total=len(texts), desc=f"activations {s.model}", unit="text", disable=not s.progress, file=sys.stderr)
    t1 = time.time()
    for w0, w1, rows, res in iter_batches(
        lm.net,
        lm.tok,
        lm.inputs,
        layers=lm.layers,
        positions=s.positions,
        batch_size=s.batch_size,
        max_length=s.max_length,
        padding_side=s.padding_side,
        sort_window=s.sort_window,
        blocks=lm.blocks,
        backoff=backoff,
        spans=lm.spans,
    ):
        writer.add(w0, w1, rows, res)
        bar.update(len(rows))
    writer.flush()
    bar.close()
    return time.time() - t1, backoff


def _summary(
    lm: _Loaded, s: _Settings, n: int, outdir: Path, keys: list, t0: float, t_load: float, t_enc: float
) -> dict:
    """What :func:`extract` returns (and logs)."""
    secs = time.time() - t0
    summary = {
        "model": s.model, "n": n, "n_layers_total": len(lm.blocks), "layers": lm.layers,
        "positions": list(s.positions), "d": lm.d, "n_truncated": lm.n_truncated, "device": lm.info["device"],
        "dtype": lm.info["dtype"], "store_dtype": s.store_dtype, "seconds": round(secs, 3),
        "load_seconds": round(t_load, 3), "encode_seconds": round(t_enc, 3),
        "texts_per_second": round(n / max(t_enc, 1e-9), 2),
        "files": [str(shard_path(outdir, L, p)) for p, L in keys],
    }  # fmt: skip
    log.info(
        "model %s: wrote %d shards (%d × %d) to %s in %.1f s (%.1f texts/s)",
        s.model,
        len(keys),
        n,
        lm.d,
        outdir,
        secs,
        n / max(t_enc, 1e-9),
    )
    return summary


def _ranges(xs: Sequence[int]) -> str:
    """``1-3,5`` for ``[1, 2, 3, 5]``."""
    out, i = [], 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(f"{xs[i]}" if i == j else f"{xs[i]}-{xs[j]}")
        i = j + 1
    return ",".join(out)


def extract(
    texts: Sequence[str],
    ids: Sequence[str],
    model_dir: str | os.PathLike,
    outdir: str | os.PathLike,
    *,
    model: str,
    layers: Sequence[int] | None = None,
    positions: Sequence[str] = ("last",),
    include_embeddings: bool = False,
    batch_size: int = 16,
    max_length: int = 512,
    dtype: str = "float32",
    store_dtype: str = "float16",
    padding_side: str = "right",
    device: str = "auto",
    compression: str | None = None,
    sort_window: int = 1024,
    progress: bool = True,
    extra_attrs: Mapping[str, Any] | None = None,
    max_token_gb: float | None = None,
    template: Template | None = None,
) -> dict:
    """Extract the residual stream of ``layers`` for ``texts`` into one HDF5 shard per layer and position.

    ``model_dir`` is a prepared model folder (``manifest.json``, whose fingerprint is recorded) or a
    plain transformers folder (fingerprinted from its files). ``layers`` as in :func:`.blocks.resolve_layers`
    (``None``: every block). ``dtype`` is the compute dtype, ``store_dtype`` the shards' dtype.
    ``compression``: ``None``, ``"gzip"`` (level 4) or ``"lzf"``. ``sort_window`` (rounded up to whole
    chunks of 256 rows) bounds the memory: rows are sorted by length and buffered per window.
    ``extra_attrs`` are added to every shard's attributes. Position ``tokens`` stores every real token
    (:mod:`.tokens`); its size is logged before anything is written and refused above ``max_token_gb``.
    ``template`` (:mod:`.templates`) presents each text inside a prompt: ``last`` is the input's last token, ``mean``
    the mean over the text's own (last copy's) tokens; the shards record it. Shards of other layers already in
    ``outdir`` are left alone (:func:`.reader.iter_layers` refuses to mix shards made from other inputs).

    Returns a summary: model, n, n_layers_total, layers (written), positions, d, n_truncated, device,
    dtype, store_dtype, seconds (all), load_seconds, encode_seconds, texts_per_second, files.

    (Long only in its keyword list and this docstring; each step is a helper above.)
    """
    t0 = time.time()
    texts, ids, ids_bytes, positions = _check_arguments(texts, ids, positions, store_dtype, compression, padding_side)
    if template is not None and not template.is_plain and TOKENS in positions:
        raise ValueError(f"positions: 'tokens' with template {template.name!r}: all-token shards take plain texts")
    window = window_rows(sort_window)  # whole chunks per window
    s = _Settings(model, positions, batch_size, max_length, padding_side, window, store_dtype, compression, progress)
    lm = _load(model_dir, s, texts, ids, layers, include_embeddings, dtype, device, template)
    n, t_load = len(texts), time.time() - t0
    if TOKENS in positions:
        announce(lm.n_tokens, len(lm.layers), lm.d, store_dtype, max_token_gb, model)
    outdir = Path(outdir)
    remove_stale_temps(outdir)
    base = _base_attrs(lm, s, texts, ids, extra_attrs, template)
    with contextlib.ExitStack() as stack:  # leaving it renames every shard into place, or removes them all
        writer = ShardWriter(
            stack,
            outdir,
            positions,
            lm.layers,
            (n, lm.d),
            store_dtype,
            compression,
            ids_bytes,
            lm.n_tokens,
            min(window, n),
            tokenize_rows=lambda rows: tokenize(lm.tok, [lm.inputs[i] for i in rows]),
        )
        t_enc, backoff = _encode(lm, s, texts, writer)
        timing = {
            "encode_seconds": round(t_enc, 3),
            "texts_per_second": round(n / max(t_enc, 1e-9), 2),
            "load_seconds": round(t_load, 2),
            "oom_halvings": len(backoff.events),  # out-of-memory back-off: batches halved, the size that fitted
            "batch_size_used": backoff.limit or s.batch_size,
        }
        writer.finish(base, timing)
        writer.verify(base)
    for d_ in {shard_path(outdir, 0, p).parent for p in positions}:
        fsync_dir(d_)
    return {**_summary(lm, s, n, outdir, writer.keys, t0, t_load, t_enc), "oom_backoff": backoff.events}


def load_texts(dataset_path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``(ids, texts)`` of a text set artifact: a numeric-sequence dataset, or a corpus's distinct sentences."""
    from ..artifacts import read_json
    from ..corpora import corpus_sentences
    from ..sequences import load_dataset

    if read_json(dataset_path)["meta"].get("kind") == "corpus":
        ids, texts = corpus_sentences(dataset_path)
        return list(ids), list(texts)
    _, records = load_dataset(dataset_path)
    return [r["id"] for r in records], [r["text"] for r in records]


def extract_dataset(
    dataset_path: str | os.PathLike,
    model_dir: str | os.PathLike,
    outdir: str | os.PathLike,
    *,
    model: str,
    dataset: str,
    params: ActivationParams,
    progress: bool = True,
    part: Mapping[str, Any] | None = None,
) -> dict:
    """The activation stage: :func:`extract` over a text set artifact (a numeric-sequence dataset, or a corpus
    whose distinct sentences the STS study reads), with the stage's parameters whole. With ``part`` (an entry of
    :func:`.parts.write_plan`'s plan), only its rows, which must still be the plan's texts."""
    ids, texts = load_texts(dataset_path)
    extra: dict[str, Any] = {"dataset": dataset}
    if part is not None:
        r0, r1 = int(part["row_start"]), int(part["row_stop"])
        if r1 > len(texts) or texts_sha256(texts[r0:r1]) != part["texts_sha256"]:
            raise ValueError(
                f"{dataset_path}: rows {r0}–{r1} are not the texts the plan recorded for part {part['name']} "
                "(the text set changed after planning); rerun the workflow to plan again"
            )
        ids, texts = ids[r0:r1], texts[r0:r1]
        extra.update(row_start=r0, row_stop=r1)
    return extract(
        texts,
        ids,
        model_dir,
        outdir,
        model=model,
        layers=params.layers or None,
        positions=params.positions,
        include_embeddings=params.include_embeddings,
        batch_size=params.batch_size,
        max_length=params.max_length,
        dtype=params.dtype,
        store_dtype=params.store_dtype,
        padding_side=params.padding_side,
        device=params.device,
        compression=None if params.compression == "none" else params.compression,
        sort_window=params.sort_window,
        progress=progress,
        extra_attrs=extra,
        max_token_gb=params.max_token_gb,
        template=Template.from_params(params.template["name"], params.template) if params.template else None,
    )
