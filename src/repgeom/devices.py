"""Where torch runs and in which dtype: one helper for every stage that loads a model."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


def pick_device(device: str = "auto") -> str:
    """``"cuda"`` or ``"cpu"``: ``auto`` takes the GPU when torch sees one; ``cuda`` without one is an error that
    shows ``CUDA_VISIBLE_DEVICES``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device: cuda was asked for, but torch sees no GPU "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
        )
    return device


def dtype_name(name: str, device: str) -> str:
    """The compute dtype's name: ``auto`` is bfloat16 on a GPU and float32 on a CPU (many CPUs lack bf16 units)."""
    if name == "auto":
        return "bfloat16" if device == "cuda" else "float32"
    return name


def torch_dtype(name: str, device: str) -> torch.dtype:
    """The ``torch.dtype`` for :func:`dtype_name`."""
    import torch

    return getattr(torch, dtype_name(name, device))
