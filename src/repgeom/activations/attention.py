"""Attention mode and kernel of a loaded decoder: causal (as trained for generation) or bidirectional (as
GritLM and llama-embed-nemotron embed), and the kernel it runs (``sdpa`` where the class has it).

A decoder is made bidirectional the way transformers itself supports it: ``config.is_causal = False`` (its mask
functions then build a bidirectional padding mask) and ``is_causal = False`` on every attention module (the
``sdpa`` kernel otherwise falls back to its causal flag when no mask is needed). Whether that took is not assumed
but observed: :func:`attends_ahead` changes a later token and looks whether the first token's state moves, and
:func:`set_attention` refuses a model that stays causal, naming its class.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

ATTENTIONS = ("causal", "bidirectional")
#: the attention kernel asked for at load; a class without it loads with transformers' own default
ATTN_IMPLEMENTATION = "sdpa"

log = logging.getLogger(__name__)


class AttentionModeError(RuntimeError):
    """The model does not run in the attention mode the configuration asks for."""


def attends_ahead(model: torch.nn.Module, tol: float = 1e-4) -> bool:
    """Whether a token's final state depends on tokens after it: two 3-token inputs that differ only in their
    last token, compared at the first position (relative difference above ``tol``)."""
    import torch

    vocab = int(model.get_input_embeddings().num_embeddings)
    device = next(model.parameters()).device
    ids = torch.tensor([[1, 2, 3], [1, 2, min(vocab - 1, 7)]], device=device) % vocab
    kwargs = {"attention_mask": torch.ones_like(ids)}
    with torch.inference_mode():
        h = model(input_ids=ids, **kwargs).last_hidden_state.float()
    first = h[:, 0]
    diff = (first[0] - first[1]).abs().max()
    return bool(diff > tol * first.abs().max().clamp(min=1e-12))


def _make_bidirectional(model: torch.nn.Module) -> int:
    """Switch the model (and its sub-configs) and each attention module to non-causal; the number of modules."""
    for cfg in {id(c): c for c in (model.config, getattr(model.config, "text_config", None)) if c}.values():
        cfg.is_causal = False
    n = 0
    for mod in model.modules():
        if mod is not model and hasattr(mod, "is_causal") and isinstance(mod.is_causal, bool):
            mod.is_causal = False
            n += 1
    return n


def set_attention(model: torch.nn.Module, attention: str, name: str = "", own_code: bool = False) -> dict:
    """Put the model in ``attention`` mode; returns the provenance (``attention``, ``attn_implementation``).

    The mode is observed (:func:`attends_ahead`, one tiny forward pass) where it is not simply the shipped class's
    causal one: when bidirectional is asked for, and for a model that runs its own code (``own_code``)."""
    if attention not in ATTENTIONS:
        raise ValueError(f"attention: {attention!r} is not one of {', '.join(ATTENTIONS)}")
    who = f"model {name!r} ({type(model).__name__})" if name else type(model).__name__
    if attention == "bidirectional":
        n = _make_bidirectional(model)
        log.info("%s: bidirectional attention (%d attention modules switched)", who, n)
    ahead = attends_ahead(model) if attention == "bidirectional" or own_code else False
    if attention == "bidirectional" and not ahead:
        raise AttentionModeError(
            f"{who}: attention: bidirectional was asked for, but the first token's state still ignores later "
            "tokens (this class builds its causal mask without reading config.is_causal). Run it with "
            "attention: causal, or load the model's own bidirectional code (trust_remote_code with a pinned "
            "revision)."
        )
    if attention == "causal" and ahead:
        log.warning("%s: attention: causal, but the model attends ahead (its own code is bidirectional)", who)
    impl = getattr(model.config, "_attn_implementation", None)
    return {"attention": "bidirectional" if ahead else "causal", "attn_implementation": impl}
