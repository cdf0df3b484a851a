"""The layerwise autoencoders (variants ``ae_*``): pretraining on GenericsKB latents, the artifact that holds
them (a torch file per model, pooling and loss, one state per seed), its curves, and loading an encoder into a
siamese probe.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..artifacts import ArtifactError, atomic_path, now_iso
from ..devices import pick_device
from ..params import StsAutoencoderParams
from .data import load_latents
from .errors import STSError
from .nets import build_modules, layer_widths, loss_fn, set_standardisation
from .training import deterministic, progress_bar

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def pretrain_autoencoders(
    X: np.ndarray,
    *,
    widths: Sequence[int],
    activation: str,
    loss: str,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    holdout: float = 0.05,
    device: str = "auto",
    progress: bool = True,
) -> tuple[dict, dict]:
    """Train one autoencoder per layer on ``X`` (n_layers, N, d), all layers at once.

    Returns ``(state_dict, curves)``: the encoders' and decoders' weights with the standardisation, and
    per layer and epoch the held-out reconstruction MSE (in standardised units) and the training loss.
    """
    import torch

    dev = torch.device(pick_device(device))
    L, N, d = X.shape
    rng = np.random.default_rng(seed)
    perm = rng.permutation(N)
    n_hold = max(1, int(round(N * holdout)))
    hold, train = np.sort(perm[:n_hold]), perm[n_hold:]
    with deterministic(seed):
        net = build_modules(d, widths, activation, None, with_decoders=True)
        set_standardisation(net, X, train)
        net.to(dev)
        params = list(net.encoders.parameters()) + list(net.decoders.parameters())
        opt = torch.optim.Adam(params, lr=lr)
        lf = loss_fn(loss)
        Xt = torch.from_numpy(X)
        curves = {"heldout_mse": [], "train_loss": []}
        gen = torch.Generator().manual_seed(seed)
        bar = progress_bar(epochs, f"autoencoders ({loss}, seed {seed})", progress)
        for _ in range(epochs):
            order = torch.from_numpy(train)[torch.randperm(len(train), generator=gen)]
            curves["train_loss"].append(_train_epoch(net, opt, lf, Xt, order, batch_size, dev).tolist())
            curves["heldout_mse"].append(heldout_mse(net, Xt, hold, dev).tolist())
            bar.set_postfix(heldout_mse=f"{np.mean(curves['heldout_mse'][-1]):.3f}")
            bar.update()
        bar.close()
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    return state, curves


def _train_epoch(net, opt, lf, Xt, order, batch_size: int, dev) -> np.ndarray:
    """One epoch over the rows ``order`` of ``Xt``; the mean training loss per layer."""
    import torch

    net.train()
    tot, nb = np.zeros(Xt.shape[0]), 0
    for s in range(0, len(order), batch_size):
        xb = Xt[:, order[s : s + batch_size]].to(dev)
        target, recon = net.reconstruct(xb)
        per_layer = torch.stack([lf(r, target[j]) for j, r in enumerate(recon)])
        opt.zero_grad()
        per_layer.sum().backward()
        opt.step()
        tot += per_layer.detach().cpu().numpy()
        nb += 1
    return tot / max(nb, 1)


def heldout_mse(
    net: torch.nn.Module, Xt: torch.Tensor, rows: np.ndarray, dev: torch.device, chunk: int = 2048
) -> np.ndarray:
    """Per layer, the mean over ``rows`` of the squared reconstruction error summed over dimensions."""
    import torch

    net.eval()
    tot = None
    with torch.no_grad():
        for s in range(0, len(rows), chunk):
            target, recon = net.reconstruct(Xt[:, rows[s : s + chunk]].to(dev))
            e = torch.stack([((r - target[j]) ** 2).sum(dim=0).mean() for j, r in enumerate(recon)]).cpu().numpy()
            tot = e if tot is None else tot + e
    return tot / len(rows)


def train_autoencoders(
    shard_dir: str | os.PathLike,
    *,
    position: str,
    params: StsAutoencoderParams,
    loss: str,
    out_path: str | os.PathLike,
    progress: bool = True,
    model: str = "",
    provenance: Mapping[str, Any] | None = None,
    template: str = "plain",
) -> dict:
    """Pretrain the layerwise autoencoders for every seed and save them (torch file, written atomically).
    ``template`` names the prompt template the shards were extracted with (recorded)."""
    import torch

    train = params.train
    got, _, X = load_latents(shard_dir, position, train.layers or None, expect={"template": template})
    widths = layer_widths(len(got), train.bottleneck, train.bottleneck_late)
    states, curves = {}, {}
    t0 = time.time()
    for seed in params.seeds:
        st, cv = pretrain_autoencoders(
            X,
            widths=widths,
            activation=train.activation,
            loss=loss,
            epochs=train.ae_epochs,
            lr=train.ae_lr,
            batch_size=train.ae_batch_size,
            seed=int(seed),
            device=params.device,
            progress=progress,
        )
        states[str(seed)], curves[str(seed)] = st, cv
        log.info(
            "%s/%s/%s autoencoders (%s) seed %s: held-out MSE by layer %s",
            model,
            template,
            position,
            loss,
            seed,
            np.round(cv["heldout_mse"][-1], 3).tolist(),
        )
    blob = {
        "kind": "sts_autoencoders",
        "model": model,
        "template": template,
        "position": position,
        "loss": loss,
        "layers": got,
        "widths": widths,
        "n_sentences": int(X.shape[1]),
        "d": int(X.shape[2]),
        "states": states,
        "curves": curves,
        "seconds": round(time.time() - t0, 2),
        "created": now_iso(),
        "provenance": dict(provenance or {}),
    }
    with atomic_path(out_path) as tmp:
        torch.save(blob, tmp)
    return blob


def load_autoencoders(path: str | os.PathLike) -> dict:
    """The artifact of :func:`train_autoencoders`; :class:`ArtifactError` when it is damaged or another kind."""
    import torch

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - torch raises many kinds on a damaged file
        raise ArtifactError(f"{path}: unreadable autoencoder file (corrupt?): {e}") from None
    if not isinstance(blob, dict) or blob.get("kind") != "sts_autoencoders":
        raise ArtifactError(f"{path}: not an autoencoder artifact")
    return blob


def autoencoder_curve_rows(blob: Mapping[str, Any]) -> list[dict]:
    """One row per (seed, layer): the final held-out reconstruction MSE (the paper's Figure 2)."""
    out = []
    for seed, cv in blob["curves"].items():
        for j, L in enumerate(blob["layers"]):
            out.append(
                {
                    "model": blob["model"],
                    "template": blob.get("template", "plain"),
                    "position": blob["position"],
                    "loss": blob["loss"],
                    "seed": int(seed),
                    "layer": L,
                    "width": blob["widths"][j],
                    "heldout_mse": cv["heldout_mse"][-1][j],
                    "heldout_mse_first_epoch": cv["heldout_mse"][0][j],
                }
            )
    return out


def load_into_probe(net: torch.nn.Module, path: str | os.PathLike | None, seed: int, layers: Sequence[int]) -> dict:
    """Initialise ``net``'s encoders and standardisation from the autoencoders of ``seed`` in ``path``, checking
    that they were made for these ``layers`` and widths. Returns what the run records about them."""
    if path is None:
        raise STSError("an autoencoder variant needs the pretrained autoencoders (sts_autoencoders output)")
    blob = load_autoencoders(path)
    if blob["layers"] != list(layers):
        raise STSError(f"{path}: autoencoders for layers {blob['layers']}, the probe uses {list(layers)}")
    key = str(seed)
    if key not in blob["states"]:
        raise STSError(f"{path}: no autoencoder for seed {seed} (has {sorted(blob['states'])})")
    own = {k: v for k, v in blob["states"][key].items() if k.startswith(("encoders.", "mean", "std"))}
    mine = net.state_dict()
    shapes = [
        f"{k} {tuple(v.shape)} vs {tuple(mine[k].shape)}"
        for k, v in own.items()
        if k in mine and v.shape != mine[k].shape
    ]
    if shapes:
        raise STSError(
            f"{path}: autoencoder weights do not fit the probe ({'; '.join(shapes[:3])}); were they "
            "trained with other widths?"
        )
    missing, unexpected = net.load_state_dict(own, strict=False)
    bad = [k for k in missing if not k.startswith("head.")]
    if bad or unexpected:
        raise STSError(
            f"{path}: autoencoder weights do not fit the probe (missing {bad}, unexpected {unexpected}); "
            "were they trained with other widths?"
        )
    return {"path": str(path), "final_heldout_mse": blob["curves"][key]["heldout_mse"][-1]}
