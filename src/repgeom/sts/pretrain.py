"""How a siamese probe's per-layer networks start: :data:`PRETRAIN`, the registry of the variants' ``pretrain``.

An entry is called as ``entry(net, job, seed, dev)`` after the probe is built and standardised on the STS-B
train rows, and before it is trained on STS-B; it changes ``net`` in place and returns what the run records
about it (extra keys of the run's result).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..corpora import snli_pairs
from ..registry import Registry
from .autoencoders import load_into_probe
from .data import load_latents, rows_for
from .errors import STSError
from .job import Job
from .training import train_pairs

if TYPE_CHECKING:
    import torch

Pretrain = Callable[[Any, Job, int, Any], dict]
PRETRAIN: Registry[Pretrain] = Registry("STS pretraining")


@PRETRAIN.register("none")
def no_pretraining(net: torch.nn.Module, job: Job, seed: int, dev: torch.device) -> dict:
    """``none``: the networks start from their random initialisation."""
    return {}


@PRETRAIN.register("autoencoder")
def from_autoencoders(net: torch.nn.Module, job: Job, seed: int, dev: torch.device) -> dict:
    """``autoencoder``: each layer's network is the encoder of that layer's autoencoder (same seed)."""
    return {"autoencoder": load_into_probe(net, job.autoencoder, seed, job.layers)}


@PRETRAIN.register("snli")
def from_snli(net: torch.nn.Module, job: Job, seed: int, dev: torch.device) -> dict:
    """``snli``: the whole probe is first trained on SNLI pairs (entailment 1, neutral 0.5, contradiction 0)."""
    import torch

    if job.snli_shards is None or job.snli_corpus is None:
        raise STSError("an snli variant needs the SNLI corpus and its activations")
    p = snli_pairs(job.snli_corpus)
    got, row_of_id, Xs = load_latents(job.snli_shards, job.position, job.layers, expect={"template": job.template})
    if got != list(job.layers):
        raise STSError(f"{job.snli_shards}: SNLI shards hold layers {got}, the probe uses {list(job.layers)}")
    r1, r2 = rows_for(row_of_id, p["id1"], "SNLI"), rows_for(row_of_id, p["id2"], "SNLI")
    net.to(dev)
    hp = job.hp
    hist = train_pairs(
        net,
        torch.from_numpy(Xs),
        r1,
        r2,
        p["y"],
        params=net.parameters(),
        loss=hp.loss,
        epochs=hp.snli_epochs,
        lr=hp.lr,
        weight_decay=hp.weight_decay,
        batch_size=hp.batch_size,
        seed=seed,
        dev=dev,
        progress=job.progress,
        desc=f"SNLI pretraining seed {seed}",
    )
    return {"snli": {"pairs": len(p["y"]), "epochs": hist["epochs_run"], "final_loss": hist["train_loss"][-1]}}
