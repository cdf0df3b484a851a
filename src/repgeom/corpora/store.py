"""Making one corpus artifact: fetched, parsed, verified and written atomically (reading it: :mod:`.artifact`)."""

from __future__ import annotations

import logging
import os
import tempfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import now_iso, texts_sha256, write_json
from ..params import CorpusSpec
from .artifact import row_texts
from .checks import check_not_empty, check_skipped, handle_duplicates
from .errors import DataError
from .kinds import CORPORA
from .sources import fetch_first

log = logging.getLogger(__name__)


def limit_rows(splits: dict, limits: dict, seed: int | None = None) -> dict:
    """Keep ``limits[split]`` rows of each split (tiny test configs, the tour): the first ones, or with ``seed`` a
    seeded random sample of them, kept in file order (a file ordered by genre, as STS-B's are, is then sampled
    across its genres)."""
    out = {}
    for s, rows in splits.items():
        n = limits.get(s)
        if not n or n >= len(rows):
            out[s] = rows
        elif seed is None:
            out[s] = rows[:n]
        else:
            keep = np.sort(np.random.default_rng([seed, zlib.crc32(s.encode())]).choice(len(rows), n, replace=False))
            out[s] = [rows[i] for i in keep]
    return out


def prepare(name: str, spec: CorpusSpec | Mapping[str, Any], out_path: str | os.PathLike) -> dict:
    """Fetch, parse, verify and normalise one corpus into ``out_path`` (JSON, written atomically). ``spec`` is
    the ``data`` entry; a partial mapping gets the schema's defaults. Its kind is its name unless it says."""
    spec = CorpusSpec.of(spec)
    kind = spec.kind or name
    if kind not in CORPORA:
        raise DataError(CORPORA.unknown(kind, f"data.{name}.kind"))
    with tempfile.TemporaryDirectory(prefix=f".{name}.work-", dir=Path(out_path).parent) as work:
        try:
            root, used = fetch_first(spec.source, Path(work), kind)
            splits, meta = CORPORA[kind](root, spec)
        except DataError as e:
            raise DataError(f"corpus {name!r}: {e}", retryable=getattr(e, "retryable", None)) from None
    check_not_empty(name, splits, meta)
    # the bad rows' share is of the rows read, before a limit keeps some of them
    summary = check_skipped(name, sum(len(r) for r in splits.values()), meta["skipped"], spec.max_bad_fraction)
    splits = limit_rows(splits, spec.limit, spec.limit_seed)
    splits, meta["duplicates"], dup_lines = handle_duplicates(name, splits, spec.on_duplicate)
    meta["summary"] = summary + dup_lines
    texts = [t for rows in splits.values() for r in rows for t in row_texts(r)]
    meta.update(
        kind="corpus",
        corpus=name,
        type=kind,
        source=used,
        params=spec.recorded_params(),
        rows={s: len(r) for s, r in splits.items()},
        n_skipped=len(meta["skipped"]),
        texts_sha256=texts_sha256(texts),
        created=now_iso(),
    )
    for line in meta["summary"]:
        log.warning("%s", line)
    write_json(out_path, {"meta": meta, "splits": splits})
    log.info("corpus %s: %s", name, ", ".join(f"{s} {n}" for s, n in meta["rows"].items()))
    return meta
