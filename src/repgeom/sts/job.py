"""One variant's job: its spec and hyper-parameters, the STS-B pairs and latents loaded once, and where it runs.

Every head and pretraining kind (:mod:`.heads`, :mod:`.pretrain`) takes a :class:`Job`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
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
    device: str = "auto"
    progress: bool = True
    autoencoder: str | os.PathLike | None = None
    snli_shards: Any = None
    snli_corpus: Any = None

    def desc(self, seed: int) -> str:
        """The progress bar's label for ``seed``."""
        return f"{self.model}/{self.position} {self.name} seed {seed}"

    def train_rows(self) -> np.ndarray:
        """Every row the train pairs use (both sides; the statistics of standardisation come from these)."""
        return np.concatenate(self.rows["train"])
