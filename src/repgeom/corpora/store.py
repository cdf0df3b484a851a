"""One corpus artifact: fetched, parsed, verified and written atomically; read back, and its distinct sentences."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..artifacts import now_iso, read_json, texts_sha256, write_json
from ..params import CorpusSpec
from .errors import DataError
from .kinds import CORPORA
from .sources import fetch_first

log = logging.getLogger(__name__)


def limit_rows(splits: dict, limits: dict) -> dict:
    """Keep the first ``limits[split]`` rows of each split (for tiny test configs)."""
    return {s: rows[: limits[s]] if limits.get(s) else rows for s, rows in splits.items()}


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
            raise DataError(f"corpus {name!r}: {e}") from None
    splits = limit_rows(splits, spec.limit)
    texts = [t for rows in splits.values() for r in rows for t in _texts(r)]
    meta.update(
        kind="corpus",
        corpus=name,
        type=kind,
        source=used,
        params=spec.params(),
        rows={s: len(r) for s, r in splits.items()},
        n_skipped=len(meta["skipped"]),
        texts_sha256=texts_sha256(texts),
        created=now_iso(),
    )
    if meta["n_skipped"]:
        log.warning("corpus %s: skipped %d bad rows", name, meta["n_skipped"])
    write_json(out_path, {"meta": meta, "splits": splits})
    log.info("corpus %s: %s", name, ", ".join(f"{s} {n}" for s, n in meta["rows"].items()))
    return meta


def _texts(row: dict) -> Iterator[str]:
    for k in ("sentence", "sentence1", "sentence2"):
        if k in row:
            yield row[k]


def load_corpus(path: str | os.PathLike) -> tuple[dict, dict]:
    obj = read_json(path)
    return obj["meta"], obj["splits"]


def sentence_id(text: str) -> str:
    """A stable id for a sentence: the first 16 hex digits of its sha1 (order-free, so pair tables and
    activation shards agree without sharing row numbers)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def corpus_sentences(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``(ids, texts)``: every distinct sentence of a normalised corpus, in first-appearance order over the
    splits (sorted by name), for the activation stage."""
    _, splits = load_corpus(path)
    seen: dict[str, str] = {}
    sids: set[str] = set()
    for split in sorted(splits):
        for row in splits[split]:
            for t in _texts(row):
                if t not in seen:
                    sid = sentence_id(t)
                    if sid in sids:  # pragma: no cover - a 64-bit sha1 prefix collision
                        raise DataError(f"{path}: two sentences share the id {sid}")
                    seen[t] = sid
                    sids.add(sid)
    return list(seen.values()), list(seen)
