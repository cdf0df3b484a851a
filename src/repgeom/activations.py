"""Per-layer activations of a frozen decoder LM, one HDF5 shard per layer.

The representation (as in "FREEZE! Pretrained Language Models as Frozen Feature
Extractors"): for each text, the *residual stream after each transformer block*
(the block's output, after its residual add, before any final norm), taken at
the last real token (position ``last``) and optionally averaged over the real
tokens (position ``mean``). It is captured with forward hooks on the blocks of
the base model (``AutoModel``; no LM head ever runs), not from
``hidden_states[-1]``, which has the final norm applied. Layer indices:

``0``       the embedding output (the input of block 1; only with
            ``include_embeddings`` or when asked for explicitly);
``L >= 1``  the residual stream after block ``L`` (1-based), ``L = 1 .. n_blocks``.

Only the blocks up to the deepest requested layer run: the hook on that block
raises a private exception that stops the forward pass.

Batching: the texts are taken in *windows* of ``sort_window`` consecutive rows
(default 1024, a multiple of the HDF5 chunk rows); inside a window they are
sorted by token length (longest first) into batches, so padding is small, and
each row is put back at its original index. Padding on the ``right`` or the
``left``; with left padding explicit ``position_ids`` (cumsum of the mask − 1)
keep absolute-position models exact. Batched results equal one-text-at-a-time
results to float tolerance.

Output (layout)::

    {outdir}/layer_{LL:02d}.h5          position "last" (LL = 00 embedding output, 01 .. n_blocks)
    {outdir}/mean/layer_{LL:02d}.h5     position "mean", same layout, in a subfolder so that
                                        ``layer_*.h5`` in ``outdir`` are always "last" shards

Each shard holds ``activations`` (N, d) float16/float32, chunked (256, d), optional
gzip/lzf; ``ids`` (N,) fixed-length UTF-8 strings; ``n_tokens`` (N,) int32 (tokens used, after
truncation) and the provenance as attributes (see :func:`extract`), including
``sha256_activations`` (:func:`repgeom.artifacts.array_sha256` of the dataset,
computed while writing and checked by re-reading before the rename) and
``ids_sha256`` (:func:`repgeom.artifacts.texts_sha256` of the ids). Every attribute is also
stored once more, all together, as the JSON attribute ``provenance``, which the readers use (one
attribute read instead of ~35); ``complete`` is written last, on its own.

Memory is bounded by the window, not by N: all shards are opened at the start
under temporary names beside their final names (leading dot, ``.tmp`` suffix,
via :func:`repgeom.artifacts.atomic_path`), each finished window's rows are
written into them, and only when every shard is written, closed and verified
are they renamed into place. On any exception the temporary files are removed;
a SIGKILL leaves only dot-files that no reader globs for (the next run removes
them; one writer per ``outdir`` is assumed).

Reading (:func:`load_layer`, :func:`iter_layers`, :func:`check_shard`) needs
neither torch nor transformers and refuses incomplete shards, shards whose
attributes do not match ``expect`` and shards whose checksum fails, with
:class:`repgeom.artifacts.ArtifactError`.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .artifacts import (ArtifactError, attr_value, decode_attr, fsync_dir, json_default, atomic_path,
                        check_expected, h5_attrs, library_versions, now_iso, sha256_file, texts_sha256)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
POSITIONS = ("last", "mean")
STORE_DTYPES = ("float16", "float32")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
CHUNK_ROWS = 256

#: attribute paths (from the model ``AutoModel`` returns) searched, in order, for the list of blocks
BLOCK_PATHS = (
    "layers",                        # Llama, Mistral, Qwen2, Gemma, Phi, GPT-NeoX base models
    "model.layers",                  # *ForCausalLM wrappers
    "h",                             # GPT-2, GPT-J, Falcon, Bloom base models
    "transformer.h",
    "gpt_neox.layers",
    "decoder.layers",                # OPT base model
    "model.decoder.layers",
    "blocks",                        # MPT
    "transformer.blocks",
    "transformer.layers",
    "language_model.layers",         # multimodal wrappers
    "model.language_model.layers",
    "language_model.model.layers",
)

#: attributes that every shard of one run shares (checked across shards by :func:`iter_layers`)
SHARED_ATTRS = ("model", "model_fingerprint", "texts_sha256", "ids_sha256", "n", "d", "position",
                "padding_side", "max_length", "compute_dtype", "store_dtype")


class LayersNotFoundError(ValueError):
    """The model's transformer blocks are not at any attribute path :data:`BLOCK_PATHS` knows."""


class _StopForward(Exception):
    """Raised by the deepest hook to end the forward pass early (never escapes this module)."""


# =========================================================================== model side
def find_blocks(model, name: str | None = None, paths: Sequence[str] = BLOCK_PATHS) -> tuple[str, Any]:
    """Return ``(attribute_path, blocks)`` for the model's list of transformer blocks.

    ``blocks`` is the first non-empty ``torch.nn.ModuleList`` found at one of ``paths``.
    Raises :class:`LayersNotFoundError` naming the model and every path looked for.
    """
    import torch

    for p in paths:
        obj = model
        for part in p.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList) and len(obj) > 0:
            return p, obj
    cfg = getattr(model, "config", None)
    who = name or getattr(cfg, "_name_or_path", None) or type(model).__name__
    raise LayersNotFoundError(
        f"model {who!r} ({type(model).__name__}): cannot find its transformer blocks; looked for a non-empty "
        f"ModuleList at: {', '.join(paths)}. Activation extraction supports decoder LMs whose base model "
        "exposes its blocks at one of these paths (add the path to repgeom.activations.BLOCK_PATHS).")


def resolve_layers(n_blocks: int, layers: Iterable[int] | None = None, include_embeddings: bool = False) -> list[int]:
    """Sorted unique layer indices: ``0`` = embedding output, ``1..n_blocks`` = after block L.

    ``None`` means every block; negative indices count from the last block (``-1`` = ``n_blocks``).
    """
    if layers is None:
        out = set(range(1, n_blocks + 1))
    else:
        out = set()
        for L in layers:
            if isinstance(L, bool) or not isinstance(L, (int, np.integer)):
                raise ValueError(f"layers: {L!r} is not an integer")
            L = int(L)
            L2 = n_blocks + 1 + L if L < 0 else L
            if not 0 <= L2 <= n_blocks:
                raise ValueError(f"layers: {L} is out of range for a model with {n_blocks} blocks "
                                 f"(0 = embedding output, 1..{n_blocks} = after block L, -1 = last)")
            out.add(L2)
    if include_embeddings:
        out.add(0)
    if not out:
        raise ValueError("layers: no layer requested")
    return sorted(out)


def layer_meaning(layer: int) -> str:
    return "embedding output" if layer == 0 else f"residual stream after block {layer} (1-based)"


def model_info(model_dir: str | os.PathLike) -> dict:
    """Provenance of a prepared model folder (with ``manifest.json``) or of a plain transformers folder."""
    from .models import MANIFEST, load_manifest, resolve_model_path

    model_dir = Path(model_dir)
    if (model_dir / MANIFEST).exists():
        man = load_manifest(model_dir)
        src = man.get("source", {})
        return {"path": resolve_model_path(model_dir, man), "fingerprint": man["fingerprint"], "source": src,
                "revision": src.get("revision"), "trust_remote_code": bool(man.get("trust_remote_code", False))}
    if not (model_dir / "config.json").exists():
        raise ArtifactError(f"{model_dir}: neither a prepared model folder (manifest.json) nor a transformers "
                            "folder (config.json)")
    files = {str(p.relative_to(model_dir)): sha256_file(p) for p in sorted(model_dir.rglob("*")) if p.is_file()}
    fp = hashlib.sha256(json.dumps({"files": files}, sort_keys=True).encode()).hexdigest()
    return {"path": model_dir, "fingerprint": fp, "source": {"type": "local", "path": str(model_dir.resolve())},
            "revision": None, "trust_remote_code": False}


def load_decoder(model_dir: str | os.PathLike, *, dtype: str = "float32", device: str = "auto"):
    """Load ``(model, tokenizer, info)``: the base model (``AutoModel``, eval, no grad) and its tokenizer."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from .devices import pick_device

    if dtype not in COMPUTE_DTYPES + ("auto",):
        raise ValueError(f"dtype: {dtype!r} is not one of {', '.join(COMPUTE_DTYPES)} or 'auto'")
    info = model_info(model_dir)
    dev = pick_device(device)
    if dtype == "auto":  # bfloat16 where it is fast (GPUs); float32 on CPUs, many of which lack bf16 units
        dtype = "bfloat16" if dev == "cuda" else "float32"
    trc = info["trust_remote_code"]
    tok = AutoTokenizer.from_pretrained(info["path"], trust_remote_code=trc, local_files_only=True)
    model = AutoModel.from_pretrained(info["path"], trust_remote_code=trc, local_files_only=True,
                                      dtype=getattr(torch, dtype))
    model.to(dev).eval().requires_grad_(False)
    info.update(device=dev, dtype=dtype)
    return model, tok, info


# --------------------------------------------------------------------------- tokenising
def _tokenize(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    return tokenizer(list(texts), add_special_tokens=True, truncation=False, return_attention_mask=False,
                     verbose=False)["input_ids"]


def token_lengths(tokenizer, texts: Sequence[str], ids: Sequence[str] | None = None, chunk: int = 1024) -> np.ndarray:
    """Untruncated token counts (int64); a text that tokenises to nothing is a :class:`ValueError`."""
    lens = np.zeros(len(texts), dtype=np.int64)
    for s in range(0, len(texts), chunk):
        lens[s: s + chunk] = [len(t) for t in _tokenize(tokenizer, texts[s: s + chunk])]
    empty = np.flatnonzero(lens == 0)
    if len(empty):
        rows = ", ".join(f"{i}" + (f" (id {ids[i]!r})" if ids is not None else "") for i in empty[:5])
        raise ValueError(f"{len(empty)} text(s) tokenise to no tokens at all (empty text, and the tokenizer adds "
                         f"no BOS token), first at row {rows}; a decoder has no last token to read for them. "
                         "Drop or fill these rows.")
    return lens


def _pad_id(tokenizer) -> int:
    for v in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if v is not None:
            return int(v)
    return 0


# --------------------------------------------------------------------------- hooks
class _Capture:
    """Forward hooks that pool the requested layers' residual stream per batch."""

    def __init__(self, blocks, layers: Sequence[int], positions: Sequence[str]):
        self.blocks, self.layers, self.positions = blocks, list(layers), list(positions)
        self.deepest = max(self.layers)
        self.handles: list = []
        self.got: dict[int, dict[str, Any]] = {}
        self.mask = self.last = None

    def __enter__(self):
        if 0 in self.layers:
            self.handles.append(self.blocks[0].register_forward_pre_hook(self._pre_hook, with_kwargs=True))
        for L in self.layers:
            if L > 0:
                self.handles.append(self.blocks[L - 1].register_forward_hook(self._make_hook(L)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles.clear()
        return False

    def _pool(self, layer: int, h) -> None:
        import torch

        out = {}
        if "last" in self.positions:
            out["last"] = h[torch.arange(h.shape[0], device=h.device), self.last].float()
        if "mean" in self.positions:
            m = self.mask.unsqueeze(-1).bool()
            # where, not multiply: padded rows may hold NaN (fully masked attention rows)
            out["mean"] = torch.where(m, h, 0).sum(1, dtype=torch.float32) / self.mask.sum(1, keepdim=True).float()
        self.got[layer] = out
        if layer == self.deepest:
            raise _StopForward

    def _pre_hook(self, module, args, kwargs):
        h = args[0] if args else kwargs["hidden_states"]
        self._pool(0, h)

    def _make_hook(self, layer: int):
        def hook(module, args, output):
            h = output[0] if isinstance(output, (tuple, list)) else output
            self._pool(layer, h)

        return hook

    def run(self, model, input_ids, attention_mask, position_ids, last, extra: dict) -> dict[str, Any]:
        """One forward pass; returns ``{position: tensor (B, n_layers, d) float32}``."""
        import torch

        self.got, self.mask, self.last = {}, attention_mask, last
        kw = dict(extra)
        if position_ids is not None:
            kw["position_ids"] = position_ids
        try:
            model(input_ids=input_ids, attention_mask=attention_mask, **kw)
        except _StopForward:
            pass
        missing = [L for L in self.layers if L not in self.got]
        if missing:
            raise RuntimeError(f"hooks on layers {missing} never fired: the model's forward does not call its "
                               "blocks as the module list found by find_blocks")
        return {p: torch.stack([self.got[L][p] for L in self.layers], dim=1) for p in self.positions}


def _forward_kwargs(model) -> tuple[bool, dict]:
    params = inspect.signature(model.forward).parameters
    takes_pos = "position_ids" in params
    extra = {"use_cache": False} if "use_cache" in params else {}
    return takes_pos, extra


def iter_batches(model, tokenizer, texts: Sequence[str], *, layers: Sequence[int], positions: Sequence[str] = ("last",),
                 batch_size: int = 16, max_length: int = 512, padding_side: str = "right",
                 sort_window: int = 1024, blocks=None, lengths: np.ndarray | None = None,
                 ) -> Iterator[tuple[int, int, np.ndarray, dict[str, np.ndarray]]]:
    """Run the model over ``texts``; yield ``(w0, w1, rows, {position: (B, n_layers, d) float32})``.

    ``layers`` are resolved indices (see :func:`resolve_layers`); ``rows`` are original indices,
    all inside the window ``[w0, w1)``. Every batch of a window is yielded before the next window
    starts. Runs under ``torch.inference_mode``.
    """
    import torch

    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side: {padding_side!r} is not 'right' or 'left'")
    bad = [p for p in positions if p not in POSITIONS]
    if bad or not positions:
        raise ValueError(f"positions: {list(positions)!r}; each must be one of {POSITIONS}")
    if batch_size < 1 or max_length < 1 or sort_window < 1:
        raise ValueError("batch_size, max_length and sort_window must be >= 1")
    if blocks is None:
        blocks = find_blocks(model)[1]
    takes_pos, extra = _forward_kwargs(model)
    if padding_side == "left" and not takes_pos:
        raise ValueError(f"{type(model).__name__}.forward takes no position_ids; use padding_side 'right'")
    device = next(model.parameters()).device
    pad = _pad_id(tokenizer)
    with torch.inference_mode(), _Capture(blocks, layers, positions) as cap:
        for w0 in range(0, len(texts), sort_window):
            w1 = min(w0 + sort_window, len(texts))
            enc = _tokenize(tokenizer, texts[w0:w1])
            lens = np.array([min(len(e), max_length) for e in enc], dtype=np.int64)
            if (lens == 0).any():
                token_lengths(tokenizer, texts[w0:w1])  # raises the explanatory error
            order = np.argsort(-lens, kind="stable")  # longest first: an OOM shows up at once
            for s in range(0, len(order), batch_size):
                sel = order[s: s + batch_size]
                width = int(lens[sel].max())
                ids = np.full((len(sel), width), pad, dtype=np.int64)
                mask = np.zeros((len(sel), width), dtype=np.int64)
                for r, i in enumerate(sel):
                    n = lens[i]
                    if padding_side == "right":
                        ids[r, :n], mask[r, :n] = enc[i][:n], 1
                    else:
                        ids[r, width - n:], mask[r, width - n:] = enc[i][:n], 1
                ids_t = torch.from_numpy(ids).to(device)
                mask_t = torch.from_numpy(mask).to(device)
                pos_t = (mask_t.cumsum(1) - 1).clamp(min=0) if takes_pos else None
                if padding_side == "right":
                    last = torch.from_numpy(lens[sel] - 1).to(device)
                else:
                    last = torch.full((len(sel),), width - 1, dtype=torch.long, device=device)
                res = cap.run(model, ids_t, mask_t, pos_t, last, extra)
                yield w0, w1, sel + w0, {p: v.cpu().numpy() for p, v in res.items()}


def forward_latents(model, tokenizer, texts: Sequence[str], *, layers: Iterable[int] | None = None,
                    position: str = "last", include_embeddings: bool = False, batch_size: int = 16,
                    max_length: int = 512, padding_side: str = "right", sort_window: int = 1024) -> np.ndarray:
    """In-memory extraction: ``(N, n_layers, d)`` float32, layers as :func:`resolve_layers` orders them.

    The same hooks, batching and pooling as :func:`extract`, without any file; for tests, benchmarks
    and small inputs.
    """
    _, blocks = find_blocks(model)
    sel = resolve_layers(len(blocks), layers, include_embeddings)
    token_lengths(tokenizer, texts)
    out = None
    for _, _, rows, res in iter_batches(model, tokenizer, texts, layers=sel, positions=(position,),
                                        batch_size=batch_size, max_length=max_length, padding_side=padding_side,
                                        sort_window=sort_window, blocks=blocks):
        v = res[position]
        if out is None:
            out = np.zeros((len(texts), v.shape[1], v.shape[2]), dtype=np.float32)
        out[rows] = v
    if out is None:
        raise ValueError("forward_latents: no texts")
    return out


# =========================================================================== files
def shard_path(outdir: str | os.PathLike, layer: int, position: str = "last") -> Path:
    if position not in POSITIONS:
        raise ValueError(f"position: {position!r} is not one of {POSITIONS}")
    outdir = Path(outdir)
    return (outdir if position == "last" else outdir / position) / f"layer_{int(layer):02d}.h5"


_SHARD_RE = re.compile(r"^layer_(\d+)\.h5$")
_FAST_READS = [0]  # how many reads took the direct path (for tests)


def list_layers(outdir: str | os.PathLike, position: str = "last") -> list[int]:
    """Layer indices of the finished shards in ``outdir`` for ``position`` (temporary files never match)."""
    d = shard_path(outdir, 0, position).parent
    if not d.is_dir():
        return []
    return sorted(int(m.group(1)) for p in d.iterdir() if (m := _SHARD_RE.match(p.name)))


class _RowSha:
    """Incremental sha256 that equals :func:`repgeom.artifacts.array_sha256` of the rows fed in order."""

    def __init__(self, dtype, shape):
        self.h = hashlib.sha256()
        self.h.update(str(np.dtype(dtype)).encode())
        self.h.update(str(tuple(int(s) for s in shape)).encode())

    def update(self, rows: np.ndarray) -> None:
        self.h.update(memoryview(np.ascontiguousarray(rows)).cast("B"))

    def hexdigest(self) -> str:
        return self.h.hexdigest()


def _sha_array(a: np.ndarray) -> str:
    s = _RowSha(a.dtype, a.shape)
    s.update(a)
    return s.hexdigest()


def _remove_stale_temps(outdir: Path) -> None:
    for d in (outdir, outdir / "mean"):
        if d.is_dir():
            for p in d.glob(".layer_*.h5.*.tmp"):
                with contextlib.suppress(OSError):
                    p.unlink()
                    log.info("removed a temporary file left by an interrupted run: %s", p)


def extract(texts: Sequence[str], ids: Sequence[str], model_dir: str | os.PathLike, outdir: str | os.PathLike, *,
            model: str, layers: Sequence[int] | None = None, positions: Sequence[str] = ("last",),
            include_embeddings: bool = False, batch_size: int = 16, max_length: int = 512,
            dtype: str = "float32", store_dtype: str = "float16", padding_side: str = "right",
            device: str = "auto", compression: str | None = None, sort_window: int = 1024,
            progress: bool = True, extra_attrs: Mapping[str, Any] | None = None) -> dict:
    """Extract the residual stream of ``layers`` for ``texts`` into one HDF5 shard per layer and position.

    ``model_dir`` is a prepared model folder (``manifest.json``, whose fingerprint is recorded) or a
    plain transformers folder (fingerprinted from its files). ``layers`` as in :func:`resolve_layers`
    (``None``: every block). ``dtype`` is the compute dtype, ``store_dtype`` the shards' dtype.
    ``compression``: ``None``, ``"gzip"`` (level 4) or ``"lzf"``. ``sort_window`` (rounded up to whole
    chunks of 256 rows) bounds the memory: rows are sorted by length and buffered per window.
    ``extra_attrs`` are added to every shard's attributes. Shards of other layers already in
    ``outdir`` are left alone (:func:`iter_layers` refuses to mix shards made from other inputs).

    Returns a summary: model, n, n_layers_total, layers (written), positions, d, n_truncated, device,
    dtype, store_dtype, seconds (all), load_seconds, encode_seconds, texts_per_second, files.
    """
    import h5py
    from tqdm.auto import tqdm

    t0 = time.time()
    texts, ids = list(texts), [str(i) for i in ids]
    if len(texts) != len(ids):
        raise ValueError(f"{len(texts)} texts but {len(ids)} ids")
    if not texts:
        raise ValueError("no texts to extract")
    if len(set(ids)) != len(ids):
        raise ValueError("ids are not unique")
    enc_ids = [i.encode("utf-8") for i in ids]  # fixed-length UTF-8: reads 5x faster than variable-length
    if any(not b or b.endswith(b"\0") for b in enc_ids):
        raise ValueError("ids must be non-empty and must not end in NUL characters")
    ids_bytes = np.array(enc_ids, dtype=h5py.string_dtype("utf-8", max(len(b) for b in enc_ids)))
    positions = tuple(dict.fromkeys(positions))
    if not positions or any(p not in POSITIONS for p in positions):
        raise ValueError(f"positions: {list(positions)!r}; each must be one of {POSITIONS}")
    if store_dtype not in STORE_DTYPES:
        raise ValueError(f"store_dtype: {store_dtype!r} is not one of {', '.join(STORE_DTYPES)}")
    if compression not in (None, "gzip", "lzf"):
        raise ValueError(f"compression: {compression!r} is not None, 'gzip' or 'lzf'")
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side: {padding_side!r} is not 'right' or 'left'")
    sort_window = max(CHUNK_ROWS, -(-int(sort_window) // CHUNK_ROWS) * CHUNK_ROWS)  # whole chunks per window

    net, tok, info = load_decoder(model_dir, dtype=dtype, device=device)
    dtype = info["dtype"]  # "auto" resolved
    path, blocks = find_blocks(net, model)
    n_blocks = len(blocks)
    sel = resolve_layers(n_blocks, layers, include_embeddings)
    lens = token_lengths(tok, texts, ids)  # fails fast on empty texts, before any file exists
    n_trunc = int((lens > max_length).sum())
    if n_trunc:
        log.warning("model %s: %d of %d texts exceed max_length=%d tokens and are truncated", model, n_trunc,
                    len(texts), max_length)
    n_tokens = np.minimum(lens, max_length).astype(np.int32)
    d = int(getattr(net.config, "hidden_size", 0) or net.get_input_embeddings().embedding_dim)
    N = len(texts)
    store = np.dtype(store_dtype)
    t_load = time.time() - t0

    outdir = Path(outdir)
    _remove_stale_temps(outdir)
    run_id = hashlib.sha256(f"{now_iso()} {os.getpid()} {time.perf_counter_ns()}".encode()).hexdigest()[:16]
    base_attrs = {
        "kind": "activations", "format_version": FORMAT_VERSION, "run_id": run_id,
        "model": model, "model_fingerprint": info["fingerprint"], "model_source": info["source"],
        "model_revision": info["revision"], "architecture": type(net).__name__, "blocks_path": path,
        "n_layers_total": n_blocks, "layers_in_run": sel, "padding_side": padding_side,
        "max_length": int(max_length), "n_truncated": n_trunc, "add_special_tokens": True,
        "compute_dtype": dtype, "store_dtype": store_dtype, "device": info["device"], "batch_size": int(batch_size),
        "sort_window": sort_window, "compression": compression, "n": N, "d": d,
        "texts_sha256": texts_sha256(texts), "ids_sha256": texts_sha256(ids), "versions": library_versions(),
        **(extra_attrs or {}),
    }
    keys = [(p, L) for p in positions for L in sel]
    comp = {"compression": compression, "compression_opts": 4 if compression == "gzip" else None} if compression else {}
    wrows = min(sort_window, N)
    log.info("model %s: %d texts, layers %s of %d, positions %s, batch %d, %s on %s", model, N,
             _ranges(sel), n_blocks, list(positions), batch_size, dtype, info["device"])
    with contextlib.ExitStack() as stack:
        tmps, files, dsets, shas = {}, {}, {}, {}
        for key in keys:
            final = shard_path(outdir, key[1], key[0])
            tmps[key] = (final, stack.enter_context(atomic_path(final)))
            # no chunk cache: whole chunks are written window by window (HDF5 2's default 8 MiB cache per
            # file would hold ~8 MiB of every shard in memory for the whole run); no file lock: the file is this
            # job's own unique dot-named temporary, opened by no one else before its rename, and NFS/Lustre
            # mounts without locks refuse them (ENOLCK/ENOSYS)
            f = h5py.File(tmps[key][1], "w", libver="latest", rdcc_nbytes=0, locking=False)
            stack.callback(f.close)  # runs before atomic_path's cleanup (LIFO)
            files[key] = f
            dsets[key] = f.create_dataset("activations", shape=(N, d), dtype=store,
                                          chunks=(min(CHUNK_ROWS, N), d), **comp)
            f.create_dataset("ids", data=ids_bytes)
            f.create_dataset("n_tokens", data=n_tokens)
            shas[key] = _RowSha(store, (N, d))
        bufs = {p: np.zeros((len(sel), wrows, d), dtype=store) for p in positions}
        nonfinite = {key: 0 for key in keys}
        bar = tqdm(total=N, desc=f"activations {model}", unit="text", disable=not progress, file=sys.stderr)
        t1 = time.time()
        cur = None

        def flush(w0: int, w1: int) -> None:
            for (p, L), ds in dsets.items():
                rows = bufs[p][sel.index(L), : w1 - w0]
                ds[w0:w1] = rows
                shas[(p, L)].update(rows)
                nonfinite[(p, L)] += int((~np.isfinite(rows)).any(axis=1).sum())

        for w0, w1, rows, res in iter_batches(net, tok, texts, layers=sel, positions=positions,
                                              batch_size=batch_size, max_length=max_length,
                                              padding_side=padding_side, sort_window=sort_window, blocks=blocks):
            if cur is not None and cur != (w0, w1):
                flush(*cur)
            cur = (w0, w1)
            for p in positions:
                bufs[p][:, rows - w0] = res[p].transpose(1, 0, 2)  # cast to the storage dtype here
            bar.update(len(rows))
        flush(*cur)
        bar.close()
        t_enc = time.time() - t1
        for key, f in files.items():
            p, L = key
            nf = nonfinite[key]
            if nf:
                log.warning("model %s layer %d (%s): %d rows hold NaN/inf (overflow in %s?)", model, L, p, nf,
                            store_dtype)
            attrs = {**base_attrs, "layer": L, "layer_meaning": layer_meaning(L), "position": p,
                     "n_nonfinite_rows": nf, "sha256_activations": shas[key].hexdigest(),
                     "encode_seconds": round(t_enc, 3), "texts_per_second": round(N / max(t_enc, 1e-9), 2),
                     "load_seconds": round(t_load, 2), "created": now_iso()}
            for k, v in attrs.items():
                f.attrs[k] = attr_value(v)
            f.attrs["provenance"] = json.dumps(attrs, sort_keys=True, default=json_default)
            f.attrs["complete"] = True
            f.close()
        for key, (final, tmp) in tmps.items():  # verify what is on disk before anything gets its final name
            check_shard(tmp, {k: base_attrs[k] for k in ("model_fingerprint", "texts_sha256", "ids_sha256", "n",
                                                         "d", "run_id")}, verify=True, _label=final)
    for d_ in {shard_path(outdir, 0, p).parent for p in positions}:
        fsync_dir(d_)
    secs = time.time() - t0
    summary = {"model": model, "n": N, "n_layers_total": n_blocks, "layers": sel, "positions": list(positions),
               "d": d, "n_truncated": n_trunc, "device": info["device"], "dtype": dtype,
               "store_dtype": store_dtype, "seconds": round(secs, 3), "load_seconds": round(t_load, 3),
               "encode_seconds": round(t_enc, 3),
               "texts_per_second": round(N / max(t_enc, 1e-9), 2),
               "files": [str(shard_path(outdir, L, p)) for p, L in keys]}
    log.info("model %s: wrote %d shards (%d × %d) to %s in %.1f s (%.1f texts/s)", model, len(keys), N, d, outdir,
             secs, summary["texts_per_second"])
    return summary


def _ranges(xs: Sequence[int]) -> str:
    out, i = [], 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(f"{xs[i]}" if i == j else f"{xs[i]}-{xs[j]}")
        i = j + 1
    return ",".join(out)


# =========================================================================== reading
def _open(path: Path):
    import h5py

    if not path.exists():
        raise ArtifactError(f"{path}: missing")
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as e:
        raise ArtifactError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {e}") from None


def _shard_attrs(f) -> dict:
    """The attributes, from the one ``provenance`` JSON attribute where present (one read instead of ~35)."""
    try:
        attrs = json.loads(decode_attr(f.attrs["provenance"]))
    except KeyError:
        return h5_attrs(f)
    except ValueError:
        raise ArtifactError("the 'provenance' attribute is not valid JSON (corrupt?)") from None
    try:
        attrs["complete"] = bool(decode_attr(f.attrs["complete"]))
    except KeyError:
        attrs["complete"] = False
    return attrs


def _check_open(f, path, expect: Mapping[str, Any] | None) -> tuple[dict, Any, Any]:
    """``(attrs, activations dataset, ids dataset)`` after the checks that need no data."""
    try:
        attrs = _shard_attrs(f)
    except ArtifactError as e:
        raise ArtifactError(f"{path}: {e}") from None
    if not attrs.get("complete"):
        raise ArtifactError(f"{path}: incomplete shard (no 'complete' mark); delete it and rerun")
    if attrs.get("kind") != "activations":
        raise ArtifactError(f"{path}: not an activations shard (kind={attrs.get('kind')!r})")
    check_expected(path, attrs, expect or {})
    dsets = []
    for name in ("activations", "ids"):
        try:
            dsets.append(f[name])
        except KeyError:
            raise ArtifactError(f"{path}: dataset {name!r} missing") from None
    acts, ids = dsets
    n, d = attrs.get("n"), attrs.get("d")
    if acts.shape != (n, d) or ids.shape != (n,):
        raise ArtifactError(f"{path}: shapes {acts.shape} / {ids.shape} do not match n={n}, d={d} (corrupt?)")
    if "sha256_activations" not in attrs or "ids_sha256" not in attrs:
        raise ArtifactError(f"{path}: no checksum attributes")
    return attrs, acts, ids


def _read_ids(ds, path, attrs, verify: bool = True) -> np.ndarray:
    raw = ds[()]
    ids = [x.decode("utf-8") for x in raw.tolist()] if raw.dtype.kind == "S" else [
        x.decode("utf-8") if isinstance(x, bytes) else x for x in raw.tolist()]
    if verify and texts_sha256(ids) != attrs["ids_sha256"]:
        raise ArtifactError(f"{path}: ids do not match their stored checksum (the file is corrupt)")
    return np.array(ids, dtype=object)


def _read_activations(ds, path: Path) -> np.ndarray:
    """The whole dataset; unfiltered row chunks are read straight from the file by their offsets."""
    n, d = ds.shape
    if (ds.chunks and ds.chunks[1] == d and not ds.compression and not ds.shuffle and not ds.fletcher32
            and ds.scaleoffset is None and ds.dtype.isnative and n > 0):
        infos: list = []
        try:
            ds.id.chunk_iter(infos.append)
        except Exception:  # older HDF5: one call per chunk
            with contextlib.suppress(Exception):
                infos = [ds.id.get_chunk_info(i) for i in range(ds.id.get_num_chunks())]
        rows = ds.chunks[0]
        row_bytes = d * ds.dtype.itemsize
        if (len(infos) == -(-n // rows)
                and all(ci.byte_offset is not None and ci.filter_mask == 0 and ci.size == rows * row_bytes
                        for ci in infos)):
            infos.sort(key=lambda ci: ci.chunk_offset[0])
            if [ci.chunk_offset[0] for ci in infos] == list(range(0, n, rows)):
                out = np.empty((n, d), dtype=ds.dtype)
                with open(path, "rb", buffering=0) as fh:
                    i = 0
                    while i < len(infos):  # one read for chunks that lie back to back in the file
                        j = i
                        while j + 1 < len(infos) and infos[j + 1].byte_offset == infos[j].byte_offset + infos[j].size:
                            j += 1
                        r0, r1 = infos[i].chunk_offset[0], min(infos[j].chunk_offset[0] + rows, n)
                        view = memoryview(out[r0:r1]).cast("B")
                        fh.seek(infos[i].byte_offset)
                        got = 0
                        while got < len(view):
                            k = fh.readinto(view[got:])
                            if not k:
                                raise ArtifactError(f"{path}: file ends inside the activations (truncated)")
                            got += k
                        i = j + 1
                _FAST_READS[0] += 1
                return out
    return ds[()]


def check_shard(path: str | os.PathLike, expect: Mapping[str, Any] | None = None, verify: bool = True,
                _label=None) -> dict:
    """Check one shard without keeping its data: complete, kind, ``expect``, shapes and (``verify``) checksums.

    Returns the attributes; raises :class:`ArtifactError` otherwise.
    """
    path = Path(path)
    label = _label or path
    with _open(path) as f:
        try:
            attrs, ds, ids_ds = _check_open(f, label, expect)
            _read_ids(ids_ds, label, attrs, verify)
            if verify:
                sha = _RowSha(ds.dtype, ds.shape)
                step = max(CHUNK_ROWS, (1 << 24) // max(1, ds.shape[1] * ds.dtype.itemsize))
                for s in range(0, ds.shape[0], step):
                    sha.update(ds[s: s + step])
                if sha.hexdigest() != attrs["sha256_activations"]:
                    raise ArtifactError(f"{label}: activations do not match their stored checksum (the file is "
                                        "corrupt); delete it and rerun the workflow")
        except ArtifactError:
            raise
        except (OSError, KeyError, ValueError) as e:
            raise ArtifactError(f"{label}: unreadable HDF5 content (corrupt?): {e}") from None
    return attrs


def load_layer(path_or_dir: str | os.PathLike, layer: int | None = None, expect: Mapping[str, Any] | None = None,
               position: str = "last", verify: bool = True, dtype=np.float32) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read one shard: ``(X (N, d), ids, attrs)``, refusing incomplete, corrupt or mismatching shards.

    ``path_or_dir`` is a shard file or an extraction's ``outdir`` (then ``layer`` picks the shard).
    ``verify`` checks the sha256 of the activations and of the ids (costs more than reading them);
    the attributes (``complete``, ``kind``, ``expect``, layer, position) and the shapes are always
    checked. ``dtype`` converts ``X`` (``None`` keeps the stored dtype).
    """
    p = Path(path_or_dir)
    if p.is_dir():
        if layer is None:
            raise ValueError("load_layer: a directory needs a layer index")
        p = shard_path(p, layer, position)
    with _open(p) as f:
        try:
            attrs, ds, ids_ds = _check_open(f, p, expect)
            if layer is not None and attrs.get("layer") != int(layer):
                raise ArtifactError(f"{p}: holds layer {attrs.get('layer')}, not {layer}")
            if attrs.get("position") != position:
                raise ArtifactError(f"{p}: holds position {attrs.get('position')!r}, not {position!r}")
            ids = _read_ids(ids_ds, p, attrs, verify)
            X = _read_activations(ds, p)
        except ArtifactError:
            raise
        except (OSError, KeyError, ValueError) as e:
            raise ArtifactError(f"{p}: unreadable HDF5 content (corrupt?): {e}") from None
    if verify and _sha_array(X) != attrs["sha256_activations"]:
        raise ArtifactError(f"{p}: activations do not match their stored checksum (the file is corrupt); "
                            "delete it and rerun the workflow")
    if dtype is not None and X.dtype != np.dtype(dtype):
        X = X.astype(dtype)
    return X, ids, attrs


def iter_layers(outdir: str | os.PathLike, layers: Iterable[int] | None = None,
                expect: Mapping[str, Any] | None = None, position: str = "last", verify: bool = True,
                dtype=np.float32) -> Iterator[tuple[int, np.ndarray, np.ndarray, dict]]:
    """Yield ``(layer, X, ids, attrs)`` for ``layers`` (default: every finished shard), in order.

    Beyond ``expect``, every shard must share :data:`SHARED_ATTRS` with the first one read (same run:
    model, texts, ids, pooling), so shards of different runs are never mixed.
    """
    outdir = Path(outdir)
    todo = list_layers(outdir, position) if layers is None else [int(L) for L in layers]
    if not todo:
        raise ArtifactError(f"{outdir}: no activation shards for position {position!r}")
    want = dict(expect or {})
    for L in todo:
        X, ids, attrs = load_layer(outdir, L, want, position, verify, dtype)
        for k in SHARED_ATTRS:
            want.setdefault(k, attrs.get(k))
        yield L, X, ids, attrs
