"""The fine-tuning data: windows of the evaluation set's families from a term-index range after its windows.

Disjoint from the evaluation windows by construction (and checked), with random lengths, split by window into
``train`` (fits the adapters) and ``heldout`` (a second task score beside the evaluation set).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..artifacts import ArtifactError, now_iso, read_json, texts_sha256, write_json
from ..params import MergingDataSpec
from .errors import MergeError

log = logging.getLogger(__name__)


def eval_ranges(eval_meta: Mapping[str, Any], eval_records: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
    """Per family, the term-index range ``[first, end)`` the evaluation windows cover."""
    out: dict[str, list[int]] = {}
    for r in eval_records:
        lo, hi = r["first_index"], r["first_index"] + eval_meta["params"]["length"]
        cur = out.setdefault(r["family"], [lo, hi])
        cur[0], cur[1] = min(cur[0], lo), max(cur[1], hi)
    return out


def data_problems(spec: MergingDataSpec) -> list[str]:
    """What makes ``merging.data`` unusable (window lengths, a split too small), each naming its config key; the
    config validator reports them before any job, the stage refuses them when called directly."""
    problems = []
    if not 1 <= spec.min_length <= spec.max_length:
        problems.append(
            f"config key 'merging.data.min_length' = {spec.min_length}: must satisfy 1 <= min_length <= "
            f"merging.data.max_length = {spec.max_length}"
        )
    n = spec.n_sequences
    n_held = int(round(n * spec.heldout_fraction))
    if n_held < 2 or n - n_held < 2:
        problems.append(
            f"config key 'merging.data.heldout_fraction' = {spec.heldout_fraction}: with n_sequences {n} it "
            f"leaves {n - n_held} train and {n_held} held-out windows per family; each split needs at least 2"
        )
    return problems


def _split_sizes(spec: MergingDataSpec) -> tuple[int, int]:
    """``(windows per family, held-out windows per family)``, refusing lengths or splits that cannot work."""
    problems = data_problems(spec)
    if problems:
        raise MergeError("; ".join(problems))
    return spec.n_sequences, int(round(spec.n_sequences * spec.heldout_fraction))


def training_windows(
    families: Sequence[str], spec: MergingDataSpec | Mapping[str, Any], avoid: Mapping[str, Sequence[int]]
) -> list[dict]:
    """Windows of random length from a term-index range disjoint from ``avoid`` (the evaluation windows).

    Per family, windows are consecutive and non-overlapping from ``start_offset`` (default: the end of that
    family's evaluation range), lengths drawn uniformly from ``[min_length, max_length]`` with ``data_seed``; a
    ``heldout_fraction`` of each family's windows, drawn at random, forms the held-out split. ``spec`` may be
    partial (the schema fills the rest).
    """
    from ..sequences import FAMILIES, render

    spec = MergingDataSpec.of(spec)
    rng = np.random.default_rng(spec.seed)
    n, n_held = _split_sizes(spec)
    records = []
    for fam in families:
        start = spec.start_offset
        ev = avoid.get(fam)
        if start is None:
            start = ev[1] if ev else 0
        lengths = rng.integers(spec.min_length, spec.max_length + 1, size=n)
        end = start + int(lengths.sum())
        if ev and start < ev[1] and ev[0] < end:
            raise MergeError(
                f"merging.data.start_offset = {start}: training windows of {fam!r} would cover term "
                f"indices [{start}, {end}), which overlap the evaluation windows [{ev[0]}, {ev[1]}); "
                "start after the evaluation range (leave start_offset unset for that)"
            )
        held = set(rng.choice(n, size=n_held, replace=False).tolist())
        terms = FAMILIES[fam].terms(end - start, start)
        pos = 0
        for j, L in enumerate(lengths.tolist()):
            text, n_terms, cut = render(terms[pos : pos + L], spec.max_chars)
            records.append(
                {
                    "id": f"{fam}_train_{j:03d}",
                    "family": fam,
                    "split": "heldout" if j in held else "train",
                    "window": j,
                    "first_index": start + pos,
                    "n_terms": n_terms,
                    "truncated": cut,
                    "text": text,
                }
            )
            pos += L
    return records


def write_training_data(
    eval_path: str | os.PathLike, spec: MergingDataSpec | Mapping[str, Any], out_path: str | os.PathLike
) -> dict:
    """The fine-tuning data beside its evaluation set: ``{"meta", "records"}`` with a ``split`` per record."""
    from ..sequences import load_dataset

    spec = MergingDataSpec.of(spec)
    eval_meta, eval_records = load_dataset(eval_path)
    families = list(eval_meta["families"])
    ranges = eval_ranges(eval_meta, eval_records)
    records = training_windows(families, spec, ranges)
    counts = {s: sum(r["split"] == s for r in records) for s in ("train", "heldout")}
    train_ranges = {
        f: [
            min(r["first_index"] for r in records if r["family"] == f),
            max(r["first_index"] + r["n_terms"] for r in records if r["family"] == f),
        ]
        for f in families
    }
    meta = {
        "kind": "merging-data",
        "families": families,
        "params": spec.params(),
        "n": len(records),
        "counts": counts,
        "eval_dataset": eval_meta["dataset"],
        "eval_texts_sha256": eval_meta["texts_sha256"],
        "eval_term_ranges": ranges,
        "train_term_ranges": train_ranges,
        "split": (
            f"per family, {spec.n_sequences} consecutive windows of {spec.min_length}-{spec.max_length} "
            f"terms from the term-index range after the evaluation windows ({eval_meta['dataset']}: "
            f"{eval_meta['params']['length']} terms each); {counts['heldout']} windows drawn at random are "
            f"held out, {counts['train']} train the adapters; the evaluation set is the spine's dataset"
        ),
        "texts_sha256": texts_sha256([r["text"] for r in records]),
        "created": now_iso(),
    }
    write_json(out_path, {"meta": meta, "records": records})
    log.info("merging data: %s", meta["split"])
    return meta


def load_training_data(path: str | os.PathLike) -> tuple[dict, list[dict]]:
    """``(meta, records)`` of a :func:`write_training_data` artifact, refusing another kind or edited texts."""
    obj = read_json(path)
    meta, records = obj.get("meta", {}), obj.get("records")
    if meta.get("kind") != "merging-data" or records is None:
        raise ArtifactError(f"{path}: not a merging data artifact")
    if texts_sha256([r["text"] for r in records]) != meta.get("texts_sha256"):
        raise ArtifactError(f"{path}: texts do not match the recorded sha256 (edited or corrupt)")
    return meta, records
