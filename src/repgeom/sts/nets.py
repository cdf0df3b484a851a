"""The probes' networks and losses: per-layer encoders (and decoders), the MLP head over per-layer cosines.

torch is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

LOSSES = ("mse", "logvar")
ACTIVATIONS = ("tanh", "gelu", "relu", "none")


def layer_widths(n_layers: int, bottleneck: int, bottleneck_late: int | None) -> list[int]:
    """The paper's widths: ``bottleneck`` for the first half of the layers, ``bottleneck_late`` after."""
    late = bottleneck_late or bottleneck
    return [bottleneck if j < n_layers / 2 else late for j in range(n_layers)]


def activation_module(name: str) -> torch.nn.Module:
    """A new activation module by its config name (one of :data:`ACTIVATIONS`)."""
    from torch import nn

    return {"tanh": nn.Tanh, "gelu": nn.GELU, "relu": nn.ReLU, "none": nn.Identity}[name]()


def build_modules(
    d: int, widths: Sequence[int], activation: str, head_hidden: int | None, with_decoders: bool = False
) -> torch.nn.Module:
    """The per-layer encoders (and decoders), and the MLP head over the per-layer cosines (none when
    ``head_hidden`` is None: the autoencoders).

    The modules are created in this order (encoders, decoders, head), which fixes the draws from torch's global
    generator and so the initial weights for a seed.
    """
    import torch
    from torch import nn

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoders = nn.ModuleList(nn.Sequential(nn.Linear(d, w), activation_module(activation)) for w in widths)
            if with_decoders:
                self.decoders = nn.ModuleList(nn.Linear(w, d) for w in widths)
            if head_hidden is not None:
                self.head = nn.Sequential(nn.Linear(len(widths), head_hidden), nn.ReLU(), nn.Linear(head_hidden, 1))
            self.register_buffer("mean", torch.zeros(len(widths), d))
            self.register_buffer("std", torch.ones(len(widths), d))

        def encode(self, x):  # x: (L, B, d) raw latents
            x = (x - self.mean[:, None]) / self.std[:, None]
            return [enc(x[j]) for j, enc in enumerate(self.encoders)]

        def cosines(self, xa, xb):
            za, zb = self.encode(xa), self.encode(xb)
            return torch.stack([nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-8) for a, b in zip(za, zb)], dim=1)

        def forward(self, xa, xb):
            return torch.sigmoid(self.head(self.cosines(xa, xb))).squeeze(-1)

        def reconstruct(self, x):
            xs = (x - self.mean[:, None]) / self.std[:, None]
            return xs, [dec(z) for dec, z in zip(self.decoders, self.encode(x))]

    return Probe()


def cosine_head(n_layers: int, hidden: int) -> torch.nn.Module:
    """Head ``mlp``: the MLP head alone over the fixed per-layer cosines, in :func:`~.training.train_pairs`'
    calling convention (a "latent" tensor of shape (1, n_pairs, n_layers) indexed by pair rows)."""
    import torch
    from torch import nn

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Sequential(nn.Linear(n_layers, hidden), nn.ReLU(), nn.Linear(hidden, 1))

        def forward(self, xa, _xb):
            return torch.sigmoid(self.head(xa[0])).squeeze(-1)

    return Head()


def loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss ``(pred, y) -> scalar`` by name: ``mse``, or ``logvar`` (log Var(pred − y))."""
    import torch

    if name == "mse":
        return lambda pred, y: torch.mean((pred - y) ** 2)
    if name == "logvar":
        return lambda pred, y: torch.log(torch.var(pred - y) + 1e-12)
    raise ValueError(f"unknown loss {name!r} (known: {', '.join(LOSSES)})")


def set_standardisation(net: torch.nn.Module, X: np.ndarray, rows: np.ndarray | None = None) -> None:
    """Set the network's per-layer mean/std from ``X[:, rows]`` (the data it is trained on)."""
    import torch

    sub = X if rows is None else X[:, np.unique(rows)]
    mean = sub.mean(axis=1)
    std = sub.std(axis=1)
    std = np.where(std > 1e-6 * max(1.0, float(std.max())), std, 1.0)
    net.mean.copy_(torch.from_numpy(mean))
    net.std.copy_(torch.from_numpy(std.astype(np.float32)))
