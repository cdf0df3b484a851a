"""Converting a block of stored rows into the dtype a reader asks for: :func:`converter`.

Shards store float16 by default and readers ask for float32 by default, so every default read converts. numpy's
float16 cast takes one value at a time on CPUs without AVX512-FP16 (measured on AMD Zen 3: 3 ns a value, five times
as long as reading the layer from the page cache). Two faster ways give the same bits (tested on all 65 536):

- torch's cast, which uses the CPU's conversion instructions (F16C): ~20x numpy's. It quiets a signalling NaN
  (a NaN either way; a model's NaNs are quiet ones). Used where this process has loaded torch already (every stage
  that extracts or trains); importing it for this alone (3.4 s on that machine) would cost more than it saves.
- otherwise numpy's own conversion of all 65 536 float16 values, looked up (:data:`_F16_TABLE`): 1.5-2x numpy's
  cast.

Any other pair of dtypes is numpy's cast (``astype``'s ``unsafe`` casting).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

_F16_TABLE: list = []  # [numpy's float32 of each float16 bit pattern], built on first use (256 KiB)


def _f16_table() -> np.ndarray:
    if not _F16_TABLE:
        _F16_TABLE.append(np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32))
    return _F16_TABLE[0]


def _numpy_cast(src: np.ndarray, dst: np.ndarray) -> None:
    np.copyto(dst, src, casting="unsafe")


#: values looked up at a time: ``np.take`` widens the indices to a temporary array of ``intp`` (8 bytes a value),
#: which at this size stays in the cache instead of being mapped afresh for each block (measured: 2.0 ms a million
#: values against 2.6 in one call, and 3.1 for numpy's cast)
_LOOKUP_PIECE = 1 << 16


def _f16_lookup(src: np.ndarray, dst: np.ndarray) -> None:
    table, bits, flat = _f16_table(), src.reshape(-1).view(np.uint16), dst.reshape(-1)
    for s in range(0, bits.size, _LOOKUP_PIECE):  # "wrap": no bounds check (every index is in range)
        np.take(table, bits[s : s + _LOOKUP_PIECE], out=flat[s : s + _LOOKUP_PIECE], mode="wrap")


def _f16_torch(src: np.ndarray, dst: np.ndarray) -> None:
    torch = sys.modules["torch"]
    torch.from_numpy(dst).copy_(torch.from_numpy(src))


def converter(src_dtype, dst_dtype) -> Callable[[np.ndarray, np.ndarray], None]:
    """``convert(src, dst)``: fill ``dst`` (C-contiguous, ``dst_dtype``) with ``src`` (same shape, ``src_dtype``)
    cast as ``src.astype(dst_dtype)`` would, bit for bit (torch's cast quiets a signalling NaN). Each releases the
    GIL while it runs."""
    src_dtype, dst_dtype = np.dtype(src_dtype), np.dtype(dst_dtype)
    if src_dtype == np.float16 and dst_dtype == np.float32:
        return _f16_torch if "torch" in sys.modules else _f16_lookup
    return _numpy_cast
