"""Sentence pairs of a normalised corpus, as the probes and the merging study's scores read them."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .artifact import load_corpus, sentence_id
from .errors import DataError

#: SNLI labels as similarity targets for the siamese pretraining
SNLI_TARGET = {"entailment": 1.0, "neutral": 0.5, "contradiction": 0.0}


#: corpus types read as similarity pairs (scores on STS-B's 0–5 scale; ``pairs`` tables are mapped onto it)
PAIR_TYPES = ("stsb", "pairs")


def stsb_pairs(corpus_path: str | os.PathLike, splits: Sequence[str] = ("train", "dev", "test")) -> dict[str, dict]:
    """``{split: {"id", "s1", "s2", "id1", "id2", "y" (score / 5)}}`` from a normalised STS-B corpus, or any
    sentence-pair corpus (kind ``pairs``, whose scores were mapped onto 0–5)."""
    meta, data = load_corpus(corpus_path)
    if meta.get("type") not in PAIR_TYPES:
        raise DataError(f"{corpus_path}: corpus type {meta.get('type')!r}, expected one of {PAIR_TYPES}")
    out = {}
    for split in splits:
        if split not in data or not data[split]:
            raise DataError(f"{corpus_path}: no {split!r} split (has {', '.join(data) or 'none'})")
        rows = data[split]
        out[split] = {
            "id": [r["id"] for r in rows],
            "s1": [r["sentence1"] for r in rows],
            "s2": [r["sentence2"] for r in rows],
            "id1": [sentence_id(r["sentence1"]) for r in rows],
            "id2": [sentence_id(r["sentence2"]) for r in rows],
            "y": np.array([r["score"] / 5.0 for r in rows], dtype=np.float32),
        }
    return out


def snli_pairs(corpus_path: str | os.PathLike) -> dict:
    meta, data = load_corpus(corpus_path)
    rows = [r for split in sorted(data) for r in data[split]]
    if not rows:
        raise DataError(f"{corpus_path}: no SNLI pairs")
    return {
        "id1": [sentence_id(r["sentence1"]) for r in rows],
        "id2": [sentence_id(r["sentence2"]) for r in rows],
        "y": np.array([SNLI_TARGET[r["label"]] for r in rows], dtype=np.float32),
    }
