"""Loading a decoder LM for its hidden states: the base model (no LM head), its tokenizer and its provenance."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifacts import ArtifactError, sha256_file

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


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
    model_dir: str | os.PathLike, *, dtype: str = "float32", device: str = "auto"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict[str, Any]]:
    """Load ``(model, tokenizer, info)``: the base model (``AutoModel``, eval, no grad) and its tokenizer.

    ``dtype`` ``auto`` is bfloat16 on a GPU and float32 on a CPU (:func:`repgeom.devices.dtype_name`);
    ``info`` is :func:`model_info` plus the ``device`` and the resolved ``dtype``.
    """
    from transformers import AutoModel, AutoTokenizer

    from ..devices import dtype_name, pick_device, torch_dtype

    if dtype not in COMPUTE_DTYPES + ("auto",):
        raise ValueError(f"dtype: {dtype!r} is not one of {', '.join(COMPUTE_DTYPES)} or 'auto'")
    info = model_info(model_dir)
    dev = pick_device(device)
    dtype = dtype_name(dtype, dev)
    trc = info["trust_remote_code"]
    tok = AutoTokenizer.from_pretrained(info["path"], trust_remote_code=trc, local_files_only=True)
    model = AutoModel.from_pretrained(
        info["path"], trust_remote_code=trc, local_files_only=True, dtype=torch_dtype(dtype, dev)
    )
    model.to(dev).eval().requires_grad_(False)
    info.update(device=dev, dtype=dtype)
    return model, tok, info
