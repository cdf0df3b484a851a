"""Training on sentence pairs: deterministic seeding, progress bars, the epoch loop with the best-on-dev state,
prediction in chunks, and the calibration of log-variance predictions.

A pair is two rows ``r1[i]``, ``r2[i]`` of a latent tensor ``Xt`` (n_layers, N, d); the network maps the two
(n_layers, batch, d) slices to one prediction per pair.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from .nets import loss_fn

if TYPE_CHECKING:
    import torch
    from tqdm.auto import tqdm


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch's global generator and turn on deterministic algorithms (warn-only) for the block."""
    import torch

    torch.manual_seed(seed)
    old = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old)


def progress_bar(total: int, desc: str, progress: bool) -> tqdm:
    """A tqdm bar on stderr, updated at most every 2 s; a silent one when ``progress`` is false."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, file=sys.stderr, mininterval=2)


def predict(
    net: torch.nn.Module, Xt: torch.Tensor, r1: np.ndarray, r2: np.ndarray, dev: torch.device, chunk: int = 1024
) -> np.ndarray:
    """``net``'s predictions for the pairs ``(r1[i], r2[i])`` of ``Xt``, in eval mode and chunks of ``chunk``."""
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(r1), chunk):
            out.append(net(Xt[:, r1[s : s + chunk]].to(dev), Xt[:, r2[s : s + chunk]].to(dev)).cpu().numpy())
    return np.concatenate(out)


def train_pairs(
    net: torch.nn.Module,
    Xt: torch.Tensor,
    r1: np.ndarray,
    r2: np.ndarray,
    y: np.ndarray,
    *,
    params: Iterable[torch.nn.Parameter],
    loss: str,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    seed: int,
    dev: torch.device,
    evaluate: Callable[[], float] | None = None,
    patience: int | None = None,
    progress: bool = True,
    desc: str = "train",
) -> dict:
    """Train ``net`` on pairs (rows ``r1``, ``r2`` of ``Xt``; targets ``y``), keeping the state with the best
    ``evaluate()`` (dev Pearson) when given. Returns the history.

    One loop on purpose: the order of the draws (one permutation per epoch from a generator seeded with ``seed``)
    and of the optimiser steps is what makes a run reproducible, and it reads best in one place."""
    import torch

    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    lf = loss_fn(loss)
    gen = torch.Generator().manual_seed(seed)
    yt = torch.from_numpy(np.asarray(y, dtype=np.float32))
    r1t, r2t = torch.from_numpy(r1), torch.from_numpy(r2)
    hist = {"train_loss": [], "dev_pearson": []}
    best, best_state, best_epoch, since = -math.inf, None, 0, 0
    bar = progress_bar(epochs, desc, progress)
    for ep in range(1, epochs + 1):
        net.train()
        order = torch.randperm(len(y), generator=gen)
        tot, nb = 0.0, 0
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            if len(idx) < 2:
                continue
            pred = net(Xt[:, r1t[idx]].to(dev), Xt[:, r2t[idx]].to(dev))
            loss_v = lf(pred, yt[idx].to(dev))
            opt.zero_grad()
            loss_v.backward()
            opt.step()
            tot += loss_v.item()
            nb += 1
        hist["train_loss"].append(tot / max(nb, 1))
        if evaluate is not None:
            score = evaluate()
            hist["dev_pearson"].append(score)
            if score > best:
                best, best_epoch, since = score, ep, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                since += 1
            bar.set_postfix(dev_pearson=f"{score:.2f}", best=f"{best:.2f}@{best_epoch}")
        bar.update()
        if patience and since >= patience:
            break
    bar.close()
    if best_state is not None:
        net.load_state_dict(best_state)
    hist["best_epoch"] = best_epoch
    hist["epochs_run"] = len(hist["train_loss"])
    return hist


def calibrate(preds: dict, y_train: np.ndarray) -> dict:
    """A log-variance loss leaves the predictions' offset and scale free (Pearson and Spearman do not see them);
    map them onto the score scale with a least-squares line fitted on the *train* split, in place, so that the
    scatter and the worst-errors table read in score units. A positive slope changes no correlation."""
    a, b = np.polyfit(preds["train"].astype(np.float64), y_train.astype(np.float64), 1)
    for k in preds:
        preds[k] = (a * preds[k] + b).astype(np.float32)
    return {"slope": float(a), "intercept": float(b)}
