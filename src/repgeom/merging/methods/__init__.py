"""Merge methods, one file each (mergekit's merge_methods layout), all in one registry, :data:`METHODS`.

- :mod:`.registry`: :data:`METHODS`, name → ``fn(base, *inputs, t, threshold) -> (state dict, stats)``
- :mod:`.tensors`: the state-dict helpers they share (changed tensors, shape checks, quantiles)
- :mod:`.linear`: ``linear`` (:func:`~.linear.lerp` per tensor, the control line)
- :mod:`.slerp`: ``slerp`` (:func:`~.slerp.slerp` per tensor, with its near-parallel fallback)
- :mod:`.interpolate`: :func:`~.interpolate.merge_interpolate`, linear or SLERP picked by name
- :mod:`.task_vector`: ``tv_linear`` and ``tv_slerp`` (task vectors combined, added back to the base)
- :mod:`.soup`: :func:`~.soup.average`, the model soup (a list of checkpoints; not a registry entry)
- :mod:`.lora_merge`: :func:`~.lora_merge.merged_state`, an adapter merged into the base (not a registry entry)

Importing this package registers every method. The functions are re-exported by :mod:`repgeom.merging`, not
here, so ``methods.slerp`` etc. stay the submodules. The arithmetic is plain torch on state dicts; torch is
imported on first use.
"""

from __future__ import annotations

from . import interpolate, linear, lora_merge, slerp, soup, task_vector, tensors  # noqa: F401  (registers)
from .registry import METHODS

__all__ = ["METHODS"]
