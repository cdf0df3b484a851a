"""Trained probes as artifacts: what one variant learned, saved once, loaded with one call that maps latents to scores.

A probe file (``results/sts/{model}/{template}/{position}/{variant}.probe.pt``, a torch file written atomically)
holds, for every seed, everything that turns two sentences' latents into a similarity score in [0, 1]:

``cosine``   (``best_layer``) the layer chosen on dev; the score is ``(cos + 1) / 2`` of the two latents there
``mlp``      the MLP over the per-layer cosines, scaled per layer with the train pairs' statistics (its weights)
``siamese``  the per-layer networks and the MLP on top (the whole trained network)

with the standardisation the probe applies first (train-split statistics; none for raw cosines), the
calibration line of a log-variance run, the layers, template and pooling it reads, the chosen hyper-parameters
and the features' fingerprint (model, its weights' fingerprint, template, pooling, dtypes), so that applying it
to other sentences' latents (:meth:`Probe.score_shards`) refuses features of another model or template.

The variant's reported predictions are this module's :meth:`Probe.predict` of the saved state, so a reloaded
probe reproduces them exactly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..artifacts import ArtifactError, atomic_path
from .data import cosines, scale_cosines, standardise
from .errors import STSError

FORMAT = 1
KINDS = ("cosine", "mlp", "siamese")
#: the shard attributes a probe's features must share with the shards it was trained on
FEATURE_KEYS = ("model", "model_fingerprint", "template", "template_format", "position", "compute_dtype", "store_dtype")


@dataclass
class Probe:
    """A loaded probe file: ``meta`` (kind, layers, template, position, hyper-parameters, features), one state per
    seed. :meth:`predict` maps latents to scores."""

    meta: dict
    seeds: dict[int, dict] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def layers(self) -> list[int]:
        return list(self.meta["layers"])

    def predict(self, xa: np.ndarray, xb: np.ndarray, seed: int | None = None) -> np.ndarray:
        """Scores of the pairs ``(xa[:, i], xb[:, i])``: latents (L, n, d) at :attr:`layers`, in that order.
        Returns ``(n_seeds, n)`` (seeds in file order), or ``(n,)`` for one ``seed``."""
        xa, xb = np.asarray(xa, dtype=np.float32), np.asarray(xb, dtype=np.float32)
        if xa.shape != xb.shape:
            raise STSError(f"probe: the two sides' latents differ in shape, {xa.shape} and {xb.shape}")
        rows = np.arange(xa.shape[1] if xa.ndim == 3 else 0)
        return self.predict_rows(np.concatenate([xa, xb], axis=1), rows, rows + len(rows), seed)

    def predict_rows(
        self, X: np.ndarray, r1: np.ndarray, r2: np.ndarray, seed: int | None = None, chunk: int = 1024
    ) -> np.ndarray:
        """Scores of the pairs of rows ``(r1[i], r2[i])`` of ``X`` (L, N, d) (latents at :attr:`layers`), in chunks
        of ``chunk`` pairs (the memory of one chunk's latents). ``(n_seeds, n)``, or ``(n,)`` for one ``seed``."""
        L, d = len(self.layers), self.meta["d"]
        if X.ndim != 3 or X.shape[0] != L or X.shape[2] != d:
            raise STSError(f"probe expects latents (n_layers={L}, n, d={d}); got {X.shape}")
        seeds = [int(seed)] if seed is not None else list(self.seeds)
        out = np.zeros((len(seeds), len(r1)), dtype=np.float32)
        for k, s in enumerate(seeds):
            model = self._model(self.seeds[s])
            for c in range(0, len(r1), chunk):
                xa = np.asarray(X[:, r1[c : c + chunk]], dtype=np.float32)
                xb = np.asarray(X[:, r2[c : c + chunk]], dtype=np.float32)
                out[k, c : c + chunk] = model(xa, xb)
            cal = self.seeds[s].get("calibration")
            if cal:  # float64 coefficients, as the calibration applied them
                out[k] = (np.float64(cal["slope"]) * out[k] + np.float64(cal["intercept"])).astype(np.float32)
        return out[0] if seed is not None else out

    def _model(self, st: Mapping[str, Any]):
        """``(xa, xb) -> scores`` of one seed's state, for one chunk of pairs."""
        import torch

        if self.kind == "siamese":
            net = _siamese_net(self.meta, st["state"])

            def run(xa, xb):
                with torch.no_grad():
                    return net(torch.from_numpy(xa), torch.from_numpy(xb)).numpy()

            return run
        mean, std = self.meta.get("std_mean"), self.meta.get("std_std")
        mean, std = (None, None) if mean is None else (np.asarray(mean), np.asarray(std))
        if self.kind == "cosine":
            return lambda xa, xb: (cosines(standardise(xa, mean, std), standardise(xb, mean, std))[:, 0] + 1) / 2
        head = _mlp_head(self.meta, st["state"])
        cmean, cstd = np.asarray(self.meta["cos_mean"]), np.asarray(self.meta["cos_std"])

        def run(xa, xb):
            cos = cosines(standardise(xa, mean, std), standardise(xb, mean, std))
            cos = torch.from_numpy(scale_cosines(cos, cmean, cstd))[None]
            with torch.no_grad():
                return head(cos, None).numpy()

        return run

    def score_shards(
        self, shard_dir: str | os.PathLike, ids1: Sequence[str], ids2: Sequence[str], seed: int | None = None
    ) -> np.ndarray:
        """Scores of sentence pairs given by id, their latents read (verified) from an extraction's shards, which
        must be features of the same kind as the probe's (:data:`FEATURE_KEYS`: same model weights, template,
        pooling, dtypes)."""
        from .data import load_latents, rows_for

        f = self.meta["features"]
        expect = {k: f[k] for k in FEATURE_KEYS if k in f and k != "position"}
        got, row_of_id, X = load_latents(shard_dir, f["position"], self.layers, expect=expect)
        r1, r2 = rows_for(row_of_id, list(ids1), "first"), rows_for(row_of_id, list(ids2), "second")
        return self.predict_rows(X, r1, r2, seed)


def _siamese_net(meta: Mapping[str, Any], state: Mapping[str, Any]):
    from .nets import build_modules

    a = meta["arch"]
    net = build_modules(meta["d"], a["widths"], a["activation"], a["head_hidden"])
    net.load_state_dict(state)
    return net.eval()


def _mlp_head(meta: Mapping[str, Any], state: Mapping[str, Any]):
    from .nets import cosine_head

    net = cosine_head(len(meta["layers"]), meta["arch"]["head_hidden"])
    net.load_state_dict(state)
    return net.eval()


def save_probe(path: str | os.PathLike, probe: Probe) -> None:
    """Write ``probe`` (torch file, atomically)."""
    import torch

    meta = {
        k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v for k, v in probe.meta.items()
    }
    blob = {"kind": "sts_probe", "format": FORMAT, "meta": meta, "seeds": {str(s): v for s, v in probe.seeds.items()}}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_probe(path: str | os.PathLike) -> Probe:
    """A probe file, checked: its kind, format and keys; a truncated or foreign file is an :class:`ArtifactError`."""
    import torch

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; rerun the workflow to train the probe") from None
    except Exception as e:
        raise ArtifactError(f"{path}: not a readable probe file (truncated or corrupt?): {e}") from None
    if not isinstance(blob, dict) or blob.get("kind") != "sts_probe":
        raise ArtifactError(f"{path}: not an STS probe file")
    if blob.get("format") != FORMAT:
        raise ArtifactError(
            f"{path}: probe format {blob.get('format')!r}, this code reads {FORMAT}; rerun the workflow"
        )
    meta = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in blob["meta"].items()}
    if meta.get("kind") not in KINDS or not blob["seeds"]:
        raise ArtifactError(f"{path}: probe of unknown kind {meta.get('kind')!r} or without seeds")
    return Probe(meta=meta, seeds={int(s): v for s, v in blob["seeds"].items()})
