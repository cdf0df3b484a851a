"""Reading a corpus artifact (``resources/data/<corpus>.json``): its rows, and its distinct sentences with stable
ids. Apart from :mod:`.store`, which makes it, so that the jobs that read corpora do not run (nor have in their
code version) the sources and parsers that made them: an edited parser reruns the corpora job only, and the jobs
downstream restore from the action cache when the rows come out the same."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

from ..artifacts import read_json
from .errors import DataError


def row_texts(row: dict) -> Iterator[str]:
    """The sentences of one corpus row (a sentence, or a pair)."""
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
            for t in row_texts(row):
                if t not in seen:
                    sid = sentence_id(t)
                    if sid in sids:  # pragma: no cover - a 64-bit sha1 prefix collision
                        raise DataError(f"{path}: two sentences share the id {sid}")
                    seen[t] = sid
                    sids.add(sid)
    return list(seen.values()), list(seen)
