"""One variant's job: its spec and hyper-parameters, the STS-B pairs and latents loaded once, and where it runs.

Every head and pretraining kind (:mod:`.heads`, :mod:`.pretrain`) takes a :class:`Job`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..params import StsTrain, StsVariant


@dataclass
class Job:
    """What one variant's runs share. ``X`` is (n_layers, N, d); ``rows[split]`` the two row arrays of its pairs."""

    name: str
    variant: StsVariant
    hp: StsTrain  # the variant's own overrides applied
    pairs: dict
    rows: dict
    layers: list[int]
    X: np.ndarray
    seeds: Sequence[int]
    position: str
    model: str = ""
    template: str = "plain"
    device: str = "auto"
    progress: bool = True
    autoencoder: str | os.PathLike | None = None
    snli_shards: Any = None
    snli_corpus: Any = None
    features: dict = field(default_factory=dict)  # the shards' attributes a saved probe's inputs must match

    def probe_meta(self, kind: str, layers: Sequence[int], arch: dict, **stats: Any) -> dict:
        """What a saved probe (:class:`~.probes.Probe`) records besides its weights: its kind and architecture, the
        layers, template and pooling it reads, the chosen hyper-parameters, the features' fingerprint and (``stats``)
        its standardisation."""
        return {
            "kind": kind,
            "variant": self.name,
            "spec": self.variant.params(),
            "hyper": self.hp.params(),
            "model": self.model,
            "template": self.template,
            "position": self.position,
            "layers": [int(L) for L in layers],
            "d": int(self.X.shape[2]),
            "arch": dict(arch),
            "features": dict(self.features),
            **stats,
        }

    def desc(self, seed: int) -> str:
        """The progress bar's label for ``seed``."""
        return f"{self.model}/{self.template}/{self.position} {self.name} seed {seed}"

    def train_rows(self) -> np.ndarray:
        """Every row the train pairs use (both sides; the statistics of standardisation come from these)."""
        return np.concatenate(self.rows["train"])
