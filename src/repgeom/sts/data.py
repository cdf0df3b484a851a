"""The probes' inputs: per-layer latents from the activation shards, pair rows, and the cosine of each pair.

``X`` is always ``(n_layers, N, d)`` float32, one row per distinct sentence; a pair is two row indices into it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..artifacts import texts_sha256
from ..corpora import corpus_sentences, stsb_pairs
from ..metrics import correlations
from .errors import STSError

__all__ = [
    "STSError",
    "cosine_scaling",
    "cosines",
    "layer_curve",
    "load_latents",
    "pair_cosines",
    "rows_for",
    "scale_cosines",
    "standardisation",
    "standardise",
    "standardised",
    "stsb_latents",
]


def load_latents(
    shard_dir: str | os.PathLike,
    position: str = "last",
    layers: Iterable[int] | None = None,
    expect: Mapping[str, Any] | None = None,
) -> tuple[list[int], dict[str, int], np.ndarray]:
    """``(layers, row_of_id, X (n_layers, N, d) float32)`` from one extraction's shards (checksums verified)."""
    from ..activations import iter_layers, list_layers

    todo = list(layers) if layers else [L for L in list_layers(shard_dir, position) if L > 0]
    X, ids0, got = None, None, []
    for i, (L, x, ids, _attrs) in enumerate(iter_layers(shard_dir, todo, expect=expect, position=position)):
        if X is None:
            X = np.empty((len(todo), *x.shape), dtype=np.float32)
            ids0 = ids
        X[i] = x
        got.append(L)
    row = {str(s): i for i, s in enumerate(ids0)}
    return got, row, X


def stsb_latents(
    shard_dir: str | os.PathLike,
    corpus_path: str | os.PathLike,
    position: str,
    layers: Iterable[int] | None = None,
    template: str | None = None,
) -> tuple[dict[str, dict], dict[str, tuple[np.ndarray, np.ndarray]], list[int], np.ndarray]:
    """``(pairs, rows, layers, X)``: the STS-B pairs by split, the rows of ``X`` of their two sentences, and the
    latents. The shards must be made from exactly this corpus's sentences (not an older or differently limited
    copy) and, where ``template`` is given, presented by that prompt template."""
    pairs = stsb_pairs(corpus_path)
    _, texts = corpus_sentences(corpus_path)
    expect: dict[str, Any] = {"texts_sha256": texts_sha256(texts)}
    if template is not None:
        expect["template"] = template
    got, row_of_id, X = load_latents(shard_dir, position, layers, expect=expect)
    rows = {s: (rows_for(row_of_id, p["id1"], s), rows_for(row_of_id, p["id2"], s)) for s, p in pairs.items()}
    return pairs, rows, got, X


def standardisation(X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The per-layer, per-dimension mean and std (each (L, 1, d)) of ``X[:, rows]`` (rows counted once)."""
    sub = X[:, np.unique(rows)]
    return sub.mean(axis=1, keepdims=True), sub.std(axis=1, keepdims=True)


def standardise(X: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None) -> np.ndarray:
    """``X`` (L, n, d) standardised with :func:`standardisation`'s statistics (``None``: unchanged)."""
    if mean is None:
        return X
    return ((X - mean) / np.where(std > 1e-12, std, 1.0)).astype(np.float32)


def standardised(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``X`` standardised per layer and dimension with the mean and std of ``X[:, rows]``."""
    return standardise(X, *standardisation(X, rows))


def rows_for(row_of_id: Mapping[str, int], ids: Sequence[str], what: str) -> np.ndarray:
    """The rows of ``X`` holding the sentences ``ids``; :class:`STSError` names the ``what`` sentences missing."""
    missing = [i for i in ids if i not in row_of_id]
    if missing:
        raise STSError(
            f"{len(missing)} {what} sentences have no activations (first id {missing[0]}); the shards "
            "were made from other texts: rerun the activations stage"
        )
    return np.fromiter((row_of_id[i] for i in ids), dtype=np.int64, count=len(ids))


def pair_cosines(X: np.ndarray, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Cosine of each pair at each layer: ``(n_pairs, n_layers)``. ``X`` is (n_layers, N, d)."""
    return cosines(X[:, r1], X[:, r2])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of ``a[:, i]`` and ``b[:, i]`` at each layer, ``(n, n_layers)``; ``a``, ``b`` are (n_layers, n, d)."""
    num = np.einsum("lnd,lnd->ln", a, b)
    den = np.linalg.norm(a, axis=2) * np.linalg.norm(b, axis=2)
    return (num / np.maximum(den, 1e-12)).T.astype(np.float32)


def cosine_scaling(cos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer mean and std (each ``(n_layers,)`` float32) of pair cosines ``(n_pairs, n_layers)`` (the train
    pairs'), a std of 0 replaced by 1."""
    mean, std = cos.mean(axis=0), cos.std(axis=0)
    return mean.astype(np.float32), np.where(std > 1e-12, std, 1.0).astype(np.float32)


def scale_cosines(cos: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Pair cosines scaled with :func:`cosine_scaling`'s statistics (the MLP head's inputs)."""
    return ((cos - mean) / std).astype(np.float32)


def layer_curve(
    X: np.ndarray, layers: Sequence[int], pairs: Mapping[str, dict], rows: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> list[dict]:
    """Pearson/Spearman of the raw cosine at every layer, per split (the paper's Figure 1)."""
    out = [{"layer": int(L)} for L in layers]
    for split, (r1, r2) in rows.items():
        cos = pair_cosines(X, r1, r2)
        for j in range(len(layers)):
            p, s = correlations(cos[:, j], pairs[split]["y"])
            out[j][f"{split}_pearson"], out[j][f"{split}_spearman"] = p, s
    return out
