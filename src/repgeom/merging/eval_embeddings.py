"""The merging study's evaluation-set embeddings file: every variant of one run embedding the same held-out
sequences (its output embedding, and each layer's token mean), written by the scores stage and read by the t-SNE
maps and the similarity stage (its own module, so that their code version does not cover the scoring code)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..artifacts import ArtifactError, read_h5, write_h5


def write_eval_embeddings(
    path: str | os.PathLike,
    run: str,
    variants: Sequence[str],
    embeddings: Sequence[np.ndarray],
    eval_meta: Mapping[str, Any],
    eval_records: Sequence[Mapping[str, Any]],
    layers: Sequence[np.ndarray] | None = None,
) -> None:
    """The evaluation set's embeddings of every variant of a run (for the t-SNE maps), read back by
    :func:`load_eval_embeddings`; with ``layers``, each variant's ``(L + 1, N, d)`` per-layer token means, read back
    by :func:`load_eval_layers`."""
    data = {"embeddings": np.stack(embeddings).astype(np.float32)}
    if layers is not None:
        data["layers"] = np.stack(layers).astype(np.float32)
    write_h5(
        path,
        {
            **data,
            "variants": np.array(list(variants), dtype=object),
            "ids": np.array([r["id"] for r in eval_records], dtype=object),
            "labels": np.array([r["family"] for r in eval_records], dtype=object),
        },
        {"kind": "merging-embeddings", "run": run, "texts_sha256": eval_meta["texts_sha256"]},
        checksum=tuple(data),
    )


def read_eval_file(
    path: str | os.PathLike, expect: Mapping[str, Any] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None, list[str], dict]:
    """One verified read of a :func:`write_eval_embeddings` file: ``({variant: embeddings}, {variant: (L + 1, N, d)
    per-layer token means} or None when the file has none, labels, attributes)."""
    data, attrs = read_h5(path, expect=expect)
    names = [str(v) for v in data["variants"]]
    emb = {n: data["embeddings"][i] for i, n in enumerate(names)}
    layers = {n: data["layers"][i] for i, n in enumerate(names)} if "layers" in data else None
    return emb, layers, [str(x) for x in data["labels"]], attrs


def require_layers(path: str | os.PathLike, layers: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """``layers`` as :func:`read_eval_file` returned them for ``path``, refusing a file written without them."""
    if layers is None:
        raise ArtifactError(f"{path}: no per-layer states (written before they were kept); rerun merging_scores")
    return layers


def load_eval_embeddings(path: str | os.PathLike, expect: Mapping[str, Any] | None = None) -> tuple[dict, list[str]]:
    """``({variant: evaluation-set embeddings}, labels)`` from a :func:`write_eval_embeddings` file."""
    emb, _, labels, _ = read_eval_file(path, expect)
    return emb, labels


def load_eval_layers(path: str | os.PathLike, expect: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """``{variant: (L + 1, N, d) per-layer token means}`` from a :func:`write_eval_embeddings` file that has them."""
    return require_layers(path, read_eval_file(path, expect)[1])
