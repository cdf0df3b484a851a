"""The shards' layout on disk: format constants, file names, the attributes one run shares, the row checksum.

::

    {outdir}/layer_{LL:02d}.h5          position "last" (LL = 00 embedding output, 01 .. n_blocks)
    {outdir}/mean/layer_{LL:02d}.h5     position "mean", same layout, in a subfolder so that
                                        ``layer_*.h5`` in ``outdir`` are always "last" shards

Temporaries are dot-files beside their final names (``.layer_LL.h5.….tmp``) that no reader globs for.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from .pooling import POSITIONS

FORMAT_VERSION = 2  # 2: an xxh3-128 checksum beside the sha256; gathered row-parts
STORE_DTYPES = ("float16", "float32")
CHUNK_ROWS = 256

#: attributes that every shard of one run shares (checked across shards by :func:`.reader.iter_layers`)
SHARED_ATTRS = (
    "model",
    "model_fingerprint",
    "texts_sha256",
    "ids_sha256",
    "n",
    "d",
    "position",
    "padding_side",
    "max_length",
    "compute_dtype",
    "store_dtype",
    "template_format",
    "template_chat",
)


def window_rows(sort_window: int) -> int:
    """The length-sorting window an extraction really uses: ``sort_window`` rounded up to whole chunks."""
    return max(CHUNK_ROWS, -(-int(sort_window) // CHUNK_ROWS) * CHUNK_ROWS)


_SHARD_RE = re.compile(r"^layer_(\d+)\.h5$")


def shard_path(outdir: str | os.PathLike, layer: int, position: str = "last") -> Path:
    """The final path of the shard of ``layer`` and ``position`` in ``outdir``."""
    if position not in POSITIONS:
        raise ValueError(f"position: {position!r} is not one of {POSITIONS}")
    outdir = Path(outdir)
    return (outdir if position == "last" else outdir / position) / f"layer_{int(layer):02d}.h5"


def list_layers(outdir: str | os.PathLike, position: str = "last") -> list[int]:
    """Layer indices of the finished shards in ``outdir`` for ``position`` (temporary files never match)."""
    d = shard_path(outdir, 0, position).parent
    if not d.is_dir():
        return []
    return sorted(int(m.group(1)) for p in d.iterdir() if (m := _SHARD_RE.match(p.name)))


class _RowSha:
    """Incremental sha256 that equals :func:`repgeom.artifacts.array_sha256` of the rows fed in order."""

    def __init__(self, dtype, shape, algorithm: str = "sha256"):
        self.h = _HASHES[algorithm]()
        self.h.update(str(np.dtype(dtype)).encode())
        self.h.update(str(tuple(int(s) for s in shape)).encode())

    def update(self, rows: np.ndarray) -> None:
        self.h.update(memoryview(np.ascontiguousarray(rows)).cast("B"))

    def hexdigest(self) -> str:
        return self.h.hexdigest()


def _xxh3() -> object:
    import xxhash

    return xxhash.xxh3_128()


def have_fast_checksum() -> bool:
    """Whether the ``xxhash`` package is there (without it shards carry, and readers verify, sha256 only)."""
    import importlib.util

    return importlib.util.find_spec("xxhash") is not None


#: the activations' checksums, each over the same bytes (dtype, shape, then the rows): sha256, the durable one
#: every shard carries, and xxh3-128, ~20x faster, which shards written since format 2 also carry and readers
#: verify with when present (attribute ``<algorithm>_activations``)
_HASHES = {"sha256": hashlib.sha256, "xxh3": _xxh3}
FAST_CHECKSUM = "xxh3"


def _sha_array(a: np.ndarray, algorithm: str = "sha256") -> str:
    s = _RowSha(a.dtype, a.shape, algorithm)
    s.update(a)
    return s.hexdigest()


def checksum_key(attrs: dict) -> tuple[str, str]:
    """``(algorithm, attribute)`` a reader verifies a shard's activations with: xxh3 where the shard has it."""
    for alg in (FAST_CHECKSUM, "sha256") if have_fast_checksum() else ("sha256",):
        if f"{alg}_activations" in attrs:
            return alg, f"{alg}_activations"
    return "sha256", "sha256_activations"
