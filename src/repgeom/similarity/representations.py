"""The representations one model has of one text set, as the similarity stage sees them.

A decoder's activation shards give one representation per (position, layer), read one layer at a time through the
verified reading API (:func:`repgeom.activations.reader.load_layer`); an embedding model's embeddings file gives one
(``embedding``). Rows are put in one shared text order by id, so two models' representations are compared text by
text; a model whose texts differ from the other's is refused, naming both files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifacts import ArtifactError, read_embeddings

POSITIONS = ("last", "mean")


@dataclass(frozen=True)
class Rep:
    """One representation: a layer at a position of a decoder's shards, or a model's final embedding."""

    model: str
    source: str  # the shards' folder or the embeddings file
    position: str | None = None  # None: the final embedding
    layer: int | None = None
    n_layers: int | None = None  # the model's block count (depth = layer / n_layers)

    @property
    def label(self) -> str:
        return "embedding" if self.layer is None else f"{self.position}:{self.layer}"

    @property
    def depth(self) -> float:
        """Relative depth in [0, 1] (0: the embedding output, 1: after the last block; 1 for the final embedding)."""
        if self.layer is None:
            return 1.0
        return self.layer / self.n_layers if self.n_layers else float("nan")

    def record(self) -> dict:
        return {"label": self.label, "position": self.position, "layer": self.layer, "depth": self.depth}

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """``(X float32 (N, d), ids)`` of this representation, verified."""
        if self.layer is None:
            X, ids, _, _ = read_embeddings(self.source)
            return X, np.asarray(ids)
        from ..activations.reader import load_layer

        X, ids, _ = load_layer(self.source, self.layer, expect={"model": self.model}, position=self.position)
        return X, np.asarray(ids)


def model_reps(
    model: str, shards: str | os.PathLike | None = None, embeddings: str | os.PathLike | None = None
) -> list[Rep]:
    """Every representation of ``model``: the final embedding (if ``embeddings``), then each position's layers of
    ``shards`` in depth order. Refuses a model with none."""
    reps = [Rep(model, str(embeddings))] if embeddings else []
    if shards:
        from ..activations.layout import list_layers, shard_path
        from ..activations.reader import check_shard

        for pos in POSITIONS:
            layers = list_layers(shards, pos)
            if not layers:
                continue
            attrs = check_shard(shard_path(shards, layers[0], pos), {"model": model}, verify=False)
            n = int(attrs.get("n_layers_total") or max(layers))
            reps += [Rep(model, str(shards), pos, L, n) for L in layers]
    if not reps:
        raise ArtifactError(f"{model}: no representations (no embeddings file, no activation shards in {shards})")
    return reps


def final_rep(reps: Sequence[Rep]) -> Rep:
    """The representation that stands for a model at its output: its embedding, else its deepest last-token
    layer, else its deepest layer of any position."""
    for r in reps:
        if r.layer is None:
            return r
    pool = [r for r in reps if r.position == "last"] or list(reps)
    return max(pool, key=lambda r: (r.layer, r.position))


class TextOrder:
    """The text order every representation of a comparison is put in: the first ids seen."""

    def __init__(self) -> None:
        self.ids: np.ndarray | None = None
        self._first: str = ""
        self._perm: dict[str, np.ndarray | None] = {}

    def align(self, rep: Rep, X: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """``X``'s rows in the shared order (the permutation is found once per source)."""
        ids = np.asarray([str(i) for i in ids])
        if self.ids is None:
            self.ids, self._first = ids, rep.source
            return X
        if rep.source not in self._perm:
            if len(ids) != len(self.ids) or set(ids) != set(self.ids):
                extra = sorted(set(ids) ^ set(self.ids))[:3]
                raise ArtifactError(
                    f"{rep.source}: holds {len(ids)} texts, {self._first} holds {len(self.ids)}, not the same texts "
                    f"(ids in one only, e.g. {extra}); both must be representations of one text set"
                )
            if np.array_equal(ids, self.ids):
                self._perm[rep.source] = None
            else:
                where = {t: i for i, t in enumerate(ids)}
                self._perm[rep.source] = np.array([where[t] for t in self.ids])
        perm = self._perm[rep.source]
        return X if perm is None else X[perm]


def subsample(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded subsample of ``size`` of ``n`` texts (all rows when ``n ≤ size``)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def reps_from_paths(model: str, paths: Sequence[str | os.PathLike]) -> list[Rep]:
    """:func:`model_reps` from a rule's inputs: a folder is shards, a file is embeddings."""
    shards = next((p for p in paths if Path(p).is_dir()), None)
    emb = next((p for p in paths if Path(p).is_file()), None)
    return model_reps(model, shards, emb)
