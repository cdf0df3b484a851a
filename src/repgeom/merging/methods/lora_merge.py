"""The LoRA merge: one PEFT adapter folded into the base transformer's weights (the ``final`` variant)."""

from __future__ import annotations

import copy
import os
from typing import Any


def merged_state(base_module: Any, adapter_dir: str | os.PathLike) -> dict:
    """The transformer's state dict with one PEFT adapter merged in (``merge_and_unload``)."""
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(copy.deepcopy(base_module), str(adapter_dir))
    merged = peft_model.merge_and_unload()
    return {k: v.detach().clone() for k, v in merged.state_dict().items()}
