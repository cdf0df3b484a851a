"""Loading a decoder LM for its hidden states: the base model (no LM head), its tokenizer and its provenance."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifacts import ArtifactError, sha256_file

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

COMPUTE_DTYPES = ("float32", "bfloat16", "float16")

log = logging.getLogger(__name__)


def model_info(model_dir: str | os.PathLike) -> dict:
    """Provenance of a prepared model folder (with ``manifest.json``) or of a plain transformers folder."""
    from ..models import MANIFEST, load_manifest, resolve_model_path

    model_dir = Path(model_dir)
    if (model_dir / MANIFEST).exists():
        man = load_manifest(model_dir)
        src = man.get("source", {})
        return {
            "path": resolve_model_path(model_dir, man),
            "fingerprint": man["fingerprint"],
            "source": src,
            "revision": src.get("revision"),
            "trust_remote_code": bool(man.get("trust_remote_code", False)),
        }
    if not (model_dir / "config.json").exists():
        raise ArtifactError(
            f"{model_dir}: neither a prepared model folder (manifest.json) nor a transformers folder (config.json)"
        )
    files = {str(p.relative_to(model_dir)): sha256_file(p) for p in sorted(model_dir.rglob("*")) if p.is_file()}
    fp = hashlib.sha256(json.dumps({"files": files}, sort_keys=True).encode()).hexdigest()
    return {
        "path": model_dir,
        "fingerprint": fp,
        "source": {"type": "local", "path": str(model_dir.resolve())},
        "revision": None,
        "trust_remote_code": False,
    }


def load_decoder(
    model_dir: str | os.PathLike, *, dtype: str = "float32", device: str = "auto", attention: str = "causal"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict[str, Any]]:
    """Load ``(model, tokenizer, info)``: the base model (``AutoModel``, eval, no grad) and its tokenizer.

    ``dtype: auto`` is chosen by :func:`repgeom.devices.auto_dtype` (bfloat16 on a GPU with it, float16 on an older
    one; on a CPU with native bf16 matmul, bfloat16 if a calibration batch agrees with float32, else float32).
    The ``sdpa`` attention kernel where the class has it; ``attention`` causal or bidirectional
    (:func:`.attention.set_attention`, which checks the mode took). A model that does not fit one of several
    GPUs is spread over them (:func:`repgeom.devices.device_map`).
    ``info`` is :func:`model_info` plus the ``device``, the resolved ``dtype`` and ``dtype_reason``, the
    ``attention`` observed, ``attn_implementation`` and ``device_map`` (``None``: one device).
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    from ..devices import auto_dtype, device_map, pick_device
    from .attention import set_attention

    if dtype not in COMPUTE_DTYPES + ("auto",):
        raise ValueError(f"dtype: {dtype!r} is not one of {', '.join(COMPUTE_DTYPES)} or 'auto'")
    info = model_info(model_dir)
    dev = pick_device(device)
    reason, calibrate = "asked for", False
    if dtype == "auto":
        dtype, reason, calibrate = auto_dtype(dev)
    trc = info["trust_remote_code"]
    tok = AutoTokenizer.from_pretrained(info["path"], trust_remote_code=trc, local_files_only=True)
    load_dtype = "float32" if calibrate else dtype
    dmap = device_map(info["path"], dev, load_dtype)
    kwargs = dict(
        trust_remote_code=trc, local_files_only=True, dtype=getattr(torch, load_dtype), low_cpu_mem_usage=True
    )
    if dmap:
        kwargs["device_map"] = dmap
    model = _from_pretrained(AutoModel, info["path"], kwargs)
    if not dmap:
        model.to(dev)
    model.eval().requires_grad_(False)
    info.update(set_attention(model, attention, name=Path(str(info["path"])).name, own_code=trc), device_map=dmap)
    if calibrate:
        dtype, reason = _calibrate_bf16(model, tok, reason)
    info.update(device=dev, dtype=dtype, dtype_reason=reason)
    return model, tok, info


def _from_pretrained(cls: Any, path: str | os.PathLike, kwargs: dict) -> PreTrainedModel:
    """``cls.from_pretrained`` with the ``sdpa`` kernel, or the class's default where it has no ``sdpa``."""
    from .attention import ATTN_IMPLEMENTATION

    try:
        return cls.from_pretrained(path, attn_implementation=ATTN_IMPLEMENTATION, **kwargs)
    except ValueError as e:
        if not any(w in str(e) for w in ("attention implementation", ATTN_IMPLEMENTATION, "scaled_dot_product")):
            raise
        log.info("%s: no %s attention for this class; loading its default kernel (%s)", path, ATTN_IMPLEMENTATION, e)
        return cls.from_pretrained(path, **kwargs)


def _calibrate_bf16(model: PreTrainedModel, tok: PreTrainedTokenizerBase, reason: str) -> tuple[str, str]:
    """Run the calibration batch in float32 and in bfloat16; keep the model in bfloat16 only if they agree."""
    import torch

    from ..devices import CALIBRATION_TEXTS, calibrated
    from .batching import iter_pooled

    def run() -> Any:
        out = {}
        for _, _, rows, res in iter_pooled(model, tok, list(CALIBRATION_TEXTS), positions=("mean",), batch_size=4):
            for r, v in zip(rows, res["mean"]):
                out[int(r)] = v
        return torch.stack([out[i] for i in range(len(CALIBRATION_TEXTS))])

    ref = run()
    model.to(torch.bfloat16)
    low = run()
    cos = float(torch.nn.functional.cosine_similarity(ref, low, dim=-1).mean())
    dtype, reason = calibrated(reason, cos)
    if dtype == "float32":
        model.to(torch.float32)
    log.info("dtype auto: %s (%s)", dtype, reason)
    return dtype, reason
