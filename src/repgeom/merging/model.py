"""The base model the study fine-tunes: a prepared sentence-transformers folder, and its transformer module."""

from __future__ import annotations

import os
from typing import Any

from ..models import load_manifest, resolve_model_path
from .errors import MergeError


def load_base(model_dir: str | os.PathLike, device: str = "cpu") -> tuple[Any, dict]:
    """The prepared sentence-transformers model and its manifest (refusing another runtime)."""
    from sentence_transformers import SentenceTransformer

    manifest = load_manifest(model_dir)
    if manifest["runtime"] != "sentence-transformers":
        raise MergeError(
            f"model {manifest['name']!r}: the merging study fine-tunes sentence-transformers models, "
            f"not runtime {manifest['runtime']!r}"
        )
    model = SentenceTransformer(
        str(resolve_model_path(model_dir, manifest)),
        device=device,
        local_files_only=True,
        trust_remote_code=manifest.get("trust_remote_code", False),
    )
    return model, manifest


def transformer_module(model: Any) -> Any:
    """The Hugging Face transformer inside a sentence-transformers model (what LoRA adapts and merges change)."""
    return model[0].auto_model


def set_transformer_module(model: Any, module: Any) -> None:
    """Put ``module`` (e.g. the PEFT-wrapped transformer) in place of the model's transformer."""
    model[0].auto_model = module
