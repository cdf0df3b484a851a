"""The registry of merge methods a variant recipe names (``"method"``), as mergekit keeps its merge_methods.

Every entry is called ``(base, <inputs…>, t, threshold) → (state dict, stats)``: the interpolations base → final
(``linear``, ``slerp``) take one fine-tuned state dict, the task-vector merges (``tv_linear``, ``tv_slerp``) two.
The soup (:mod:`.soup`) and the LoRA merge (:mod:`.lora_merge`) take other inputs (a list of checkpoints, an
adapter folder) and are called by name where the variants are built, so they are not entries here.
"""

from __future__ import annotations

from collections.abc import Callable

from ...registry import Registry

#: merge method name → ``fn(base, *inputs, t, threshold) -> (state dict, stats)``
METHODS: Registry[Callable[..., tuple[dict, dict]]] = Registry("merge method")
